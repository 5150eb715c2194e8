"""MotionBERT (DSTformer) and HoT-MotionBERT: seq2seq video 3D pose lifters.

- MotionBERT: Zhu et al., "MotionBERT: A Unified Perspective on Learning Human
  Motion Representations", ICCV 2023. Its DSTformer runs two streams side by side
  at every depth: spatial-then-temporal (`blocks_st`) and temporal-then-spatial
  (`blocks_ts`), both on the same input, mixed per token by softmax weights that a
  linear layer (`ts_attn`) predicts from the two outputs.
- HoT: Li et al., "Hourglass Tokenizer for Efficient Transformer-Based 3D Human
  Pose Estimation", CVPR 2024. Before depth `layer_index` the Token Pruning Cluster
  keeps `token_num` frames (`hotpose.models.token_pruning`, joints mean-pooled, as
  the official code's AdaptiveAvgPool1d over joints) and a learned embedding
  (`pos_embed_token`) marks their new positions; after the last depth and the final
  norm, the Token Recovering Attention (learnable queries `x_token` attending over
  the kept frames, per joint) restores all `frames` before the head.

Input  [B, T, J, 3]: 2D keypoints in the screen normalisation of HoT-MixSTE
         (`hotpose.models.keypoints.normalize_screen`), then the 2D keypoint
         confidence in 0..1; T == config.frames (the official `maxlen`: the temporal
         embedding is added whole, so a window is always `frames` long).
Output [B, T, J, 3]: root-relative 3D joints, camera frame, in the units of the
         training targets.

State-dict keys, shapes and order equal the official NationalGAILab/HoT
`model/motionbert/motionbert.py` and `model/motionbert/hot_motionbert.py`, so their
checkpoints load with `strict=True`. Inference is deterministic: the official
pruning adds `torch.rand` noise to break density ties; the shared TPC breaks them by
frame index.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from hotpose.models.hot import from_spatial, from_temporal, to_spatial, to_temporal
from hotpose.models.kind import LifterKind
from hotpose.models.layers import Attention, CrossAttention, DropPath, Mlp
from hotpose.models.token_pruning import TokenPruningCluster, check_pruning

# --- blocks --------------------------------------------------------------------


class DSTAttention(Attention):
    """Self-attention over one view of pose tokens [B, T, J, C]: the J joints of each frame
    ("spatial") or the T frames of each joint ("temporal"); returns [B, T, J, C].

    The official attention projects qkv per token and regroups q, k, v by view; projecting
    after the regrouping is the same maths, so this is `layers.Attention` on a view.
    """

    def __init__(self, dim: int, num_heads: int, view: Literal["spatial", "temporal"]) -> None:
        super().__init__(dim, num_heads, qkv_bias=True)
        self.view = view
        # The official registers `proj` before `qkv`; the state_dict lists them in that order.
        qkv = self._modules.pop("qkv")
        self._modules["qkv"] = qkv

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        if self.view == "spatial":
            return from_spatial(super().forward(to_spatial(x)), b)  # attention over J
        return from_temporal(super().forward(to_temporal(x)), b)  # attention over T


class DSTBlock(nn.Module):
    """A spatial (`*_s`) and a temporal (`*_t`) pre-norm transformer sub-block on [B, T, J, C],
    in the order of the stream: "st" spatial then temporal, "ts" temporal then spatial."""

    def __init__(
        self, dim: int, num_heads: int, mlp_hidden_dim: int, order: Literal["st", "ts"], drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.order = order
        self.norm1_s = nn.LayerNorm(dim, eps=1e-6)
        self.norm1_t = nn.LayerNorm(dim, eps=1e-6)
        self.attn_s = DSTAttention(dim, num_heads, "spatial")
        self.attn_t = DSTAttention(dim, num_heads, "temporal")
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2_s = nn.LayerNorm(dim, eps=1e-6)
        self.norm2_t = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_s = Mlp(dim, mlp_hidden_dim)
        self.mlp_t = Mlp(dim, mlp_hidden_dim)

    def spatial(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn_s(self.norm1_s(x)))
        out: Tensor = x + self.drop_path(self.mlp_s(self.norm2_s(x)))
        return out

    def temporal(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn_t(self.norm1_t(x)))
        out: Tensor = x + self.drop_path(self.mlp_t(self.norm2_t(x)))
        return out

    def forward(self, x: Tensor) -> Tensor:
        if self.order == "st":
            return self.temporal(self.spatial(x))
        return self.spatial(self.temporal(x))


# --- config --------------------------------------------------------------------


@dataclass(frozen=True)
class MotionBERTConfig:
    """Defaults are the sizes of the HoT repository's MotionBERT files (an official state_dict
    carries no config and loads into them)."""

    dim_feat: int = 256
    dim_rep: int = 512  # width of the pre-logits (Linear + Tanh) before the 3D head
    depth: int = 5
    num_heads: int = 8
    mlp_ratio: int = 4
    frames: int = 243  # the official `maxlen`
    joints: int = 17
    in_channels: int = 3  # x, y, confidence
    hot: bool = False  # True: HoT-MotionBERT (prune after `layer_index`, recover at the end)
    token_num: int = 81  # frames kept by the Token Pruning Cluster
    layer_index: int = 1  # the pruning happens before this depth
    knn_k: int = 2  # neighbours for the DPC-kNN local density
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.dim_feat % self.num_heads:
            raise ValueError(f"dim_feat {self.dim_feat} is not divisible by num_heads {self.num_heads}")
        if self.hot:
            check_pruning(self.token_num, self.frames, self.layer_index, range(1, self.depth))

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# --- the model -----------------------------------------------------------------


class MotionBERT(nn.Module):
    """The DSTformer lifter, with optional Hourglass Tokenizer pruning and recovery (config.hot).

    With config.hot the kept frames [B, token_num] (time order) are the output of the
    `token_pruning` submodule; read them with a forward hook.
    """

    @property
    def KIND(self) -> LifterKind:
        """Seq2seq, reading the 2D confidence as a third channel (as MotionBERT is trained)."""
        return LifterKind("seq2seq", self.config.in_channels)

    def __init__(self, config: MotionBERTConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        dim = cfg.dim_feat

        # Parameters in the official registration order (the state_dict lists them first).
        if cfg.hot:
            self.pos_embed_token = nn.Parameter(torch.zeros(1, cfg.token_num, dim))
            self.x_token = nn.Parameter(torch.zeros(1, cfg.frames, dim))  # recovery queries
        self.temp_embed = nn.Parameter(torch.zeros(1, cfg.frames, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.joints, dim))

        self.joints_embed = nn.Linear(cfg.in_channels, dim)
        dpr = [r.item() for r in torch.linspace(0, cfg.drop_path_rate, cfg.depth)]
        hidden = dim * cfg.mlp_ratio
        self.blocks_st = nn.ModuleList(DSTBlock(dim, cfg.num_heads, hidden, "st", dpr[i]) for i in range(cfg.depth))
        self.blocks_ts = nn.ModuleList(DSTBlock(dim, cfg.num_heads, hidden, "ts", dpr[i]) for i in range(cfg.depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        if cfg.hot:
            self.cross_attention = CrossAttention(dim, cfg.num_heads)
            self.token_pruning = TokenPruningCluster(cfg.token_num, cfg.knn_k)
        self.pre_logits = nn.Sequential(OrderedDict([("fc", nn.Linear(dim, cfg.dim_rep)), ("act", nn.Tanh())]))
        self.head = nn.Linear(cfg.dim_rep, 3)
        self.ts_attn = nn.ModuleList(nn.Linear(2 * dim, 2) for _ in range(cfg.depth))
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        """The official initialisation (matters for training only): truncated normal (std 0.02)
        embeddings and linear weights, zero biases, unit LayerNorms, and fusion weights that
        start as an equal mix of the two streams."""
        nn.init.trunc_normal_(self.temp_embed, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for fuse in self.ts_attn:
            assert isinstance(fuse, nn.Linear)
            nn.init.zeros_(fuse.weight)
            nn.init.constant_(fuse.bias, 0.5)

    def forward(self, x: Tensor) -> Tensor:
        cfg = self.config
        if x.ndim != 4 or tuple(x.shape[1:]) != (cfg.frames, cfg.joints, cfg.in_channels):
            raise ValueError(
                f"expected input [B, {cfg.frames}, {cfg.joints}, {cfg.in_channels}] (x, y, confidence), "
                f"got {list(x.shape)}"
            )
        b = x.shape[0]

        x = self.joints_embed(x) + self.pos_embed  # [B, T, J, C]
        x = x + self.temp_embed  # [B, T, J, C]
        for i, (block_st, block_ts, fuse) in enumerate(zip(self.blocks_st, self.blocks_ts, self.ts_attn, strict=True)):
            if cfg.hot and i == cfg.layer_index:
                index = self.token_pruning(x)  # [B, t]
                x = x[torch.arange(b, device=x.device)[:, None], index]  # [B, t, J, C]
                x = x + self.pos_embed_token[:, :, None, :]
            x_st = block_st(x)  # [B, T, J, C]
            x_ts = block_ts(x)  # [B, T, J, C]
            alpha = fuse(torch.cat([x_st, x_ts], dim=-1)).softmax(dim=-1)  # [B, T, J, 2]
            x = x_st * alpha[..., 0:1] + x_ts * alpha[..., 1:2]
        x = self.norm(x)

        if cfg.hot:
            tokens = to_temporal(x)  # [B*J, t, C]
            query = self.x_token  # [1, T, C], shared by every (batch, joint)
            x = query + self.cross_attention(query, tokens, tokens)  # [B*J, T, C]
            x = from_temporal(x, b)  # [B, T, J, C]

        out: Tensor = self.head(self.pre_logits(x))  # [B, T, J, 3]
        return out


__all__ = ["DSTAttention", "DSTBlock", "MotionBERT", "MotionBERTConfig"]
