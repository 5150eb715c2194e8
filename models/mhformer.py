"""MHFormer and TPC-MHFormer: seq2frame video 3D pose lifters with multiple hypotheses.

- MHFormer: Li et al., "MHFormer: Multi-Hypothesis Transformer for 3D Human Pose Estimation",
  CVPR 2022. Three stages:
  1. Multi-Hypothesis Generation (MHG): three residual transformer encoders in a chain, each over
     the 2J coordinate channels of the window as tokens (a token's features are its T values),
     give three hypotheses, each embedded per frame to C channels.
  2. Self-Hypothesis Refinement (SHR): each hypothesis attends over its own frames, then one MLP
     mixes the three (concatenated on channels).
  3. Cross-Hypothesis Interaction (CHI): each hypothesis is refined by cross-attention whose
     queries and keys come from the other two; then a regression head maps the 3C channels of
     every frame to J x 3.
- TPC-MHFormer: Li et al., "Hourglass Tokenizer for Efficient Transformer-Based 3D Human Pose
  Estimation", CVPR 2024 (Table 6): before SHR block `layer_index` the Token Pruning Cluster keeps
  `token_num` frames of the three hypotheses (the centre frame always, plus DPC-kNN cluster centres
  of the concatenated hypothesis features), in time order; the rest runs on those frames.

Input  [B, T, J, 2]: 2D keypoints in the official screen normalisation
         (`hotpose.models.keypoints.normalize_screen`), T == config.frames.
Output [B, t, J, 3]: root-relative 3D joints of t frames, camera frame: all T for MHFormer, the
         `token_num` kept frames for TPC-MHFormer. MHFormer is seq2frame: the centre frame
         (T - 1) // 2 is its prediction (`predict_centre`), as in its official evaluation.

The official training's dropout of 0.1 (position embeddings, attention projections, MLPs) is not
modelled: hotpose runs these models, it does not train them, and in eval mode dropout is the
identity; the outputs are the official ones.

State-dict keys, shapes and order equal the official `model/mhformer/mhformer.py` and
`model/mhformer/tpc_mhformer.py` (the pruning adds no parameters), so official checkpoints load
with `strict=True`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from hotpose.models.kind import SEQ2FRAME, LifterKind
from hotpose.models.layers import Attention, Block, CrossAttention, DropPath, Mlp
from hotpose.models.token_pruning import check_pruning, gather_frames, kept_frame, select_frames

# Windows up to this length embed each hypothesis with a BatchNorm and ReLU after the 1x1
# convolution (the official code's branch for its 9- and 27-frame models); longer ones without.
SMALL_WINDOW = 27


@dataclass(frozen=True)
class MHFormerConfig:
    """Defaults are the HoT repository's runs (`main_mhformer.py --frames 351`, and for the TPC
    `main_mhformer_tpc.py --frames 351 --token_num 117 --layer_index 1`)."""

    frames: int = 351
    joints: int = 17
    dim: int = 512  # hypothesis channels (official --channel)
    mlp_hidden_dim: int = 1024  # SHR / CHI MLP width (official --d_hid)
    num_heads: int = 8  # SHR / CHI attention heads
    hypothesis_depth: int = 3  # SHR blocks + the one CHI block
    mhg_depth: int = 4  # blocks per MHG encoder
    mhg_heads: int = 9  # MHG attention heads; their features are the T frames (frames % mhg_heads == 0)
    drop_path_rate: float = 0.2
    tpc: bool = False  # True: TPC-MHFormer (prune frames before SHR block layer_index)
    token_num: int = 117  # frames kept by the Token Pruning Cluster, the centre frame included
    layer_index: int = 1  # the pruning happens before this SHR block
    knn_k: int = 2  # neighbours for the DPC-kNN local density

    def __post_init__(self) -> None:
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.frames % self.mhg_heads:
            raise ValueError(f"frames {self.frames} is not divisible by mhg_heads {self.mhg_heads}")
        if self.hypothesis_depth < 2:
            raise ValueError(f"hypothesis_depth {self.hypothesis_depth} must be at least 2 (SHR blocks + 1 CHI)")
        if self.tpc:
            check_pruning(self.token_num, self.frames, self.layer_index, range(self.hypothesis_depth - 1), "SHR block")

    @property
    def centre(self) -> int:
        """The frame whose pose is the prediction (always kept by the TPC)."""
        return SEQ2FRAME.centre(self.frames)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# --- Multi-Hypothesis Generation -------------------------------------------------


class MHGEncoder(nn.Module):
    """A transformer over the 2J coordinate channels of a window: [B, 2J, T] -> [B, 2J, T]."""

    def __init__(self, config: MHFormerConfig) -> None:
        super().__init__()
        cfg = config
        dim = cfg.frames  # a token's features are its values over the window
        self.pos_embed = nn.Parameter(torch.zeros(1, 2 * cfg.joints, dim))
        dpr = [r.item() for r in torch.linspace(0, cfg.drop_path_rate, cfg.mhg_depth)]
        self.blocks = nn.ModuleList(Block(dim, cfg.mhg_heads, 2 * dim, drop_path=dpr[i]) for i in range(cfg.mhg_depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        out: Tensor = self.norm(x)
        return out


def hypothesis_embedding(joints: int, dim: int, frames: int) -> nn.Module:
    """Per-frame embedding of one hypothesis, [B, 2J, T] -> [B, C, T] (a 1x1 convolution)."""
    conv = nn.Conv1d(2 * joints, dim, kernel_size=1)
    if frames > SMALL_WINDOW:
        return conv
    return nn.Sequential(conv, nn.BatchNorm1d(dim, momentum=0.1), nn.ReLU(inplace=True), nn.Dropout(0.25))


# --- Self-Hypothesis Refinement and Cross-Hypothesis Interaction ----------------

Hypotheses = tuple[Tensor, Tensor, Tensor]  # three [B, t, C]


class _HypothesisMixer(nn.Module):
    """The MLP half of SHR and CHI blocks: one MLP over the three hypotheses side by side."""

    norm2: nn.LayerNorm
    mlp: Mlp
    drop_path: nn.Module

    def mix(self, h: Hypotheses) -> Hypotheses:
        x = torch.cat(h, dim=-1)  # [B, t, 3C]
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        x1, x2, x3 = x.chunk(3, dim=-1)  # three [B, t, C]
        return x1, x2, x3


class SHRBlock(_HypothesisMixer):
    """Self-hypothesis refinement: self-attention within each hypothesis, then the shared MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden_dim: int, drop_path: float) -> None:
        super().__init__()
        self.norm1_1 = nn.LayerNorm(dim, eps=1e-6)
        self.norm1_2 = nn.LayerNorm(dim, eps=1e-6)
        self.norm1_3 = nn.LayerNorm(dim, eps=1e-6)
        self.attn_1 = Attention(dim, num_heads)
        self.attn_2 = Attention(dim, num_heads)
        self.attn_3 = Attention(dim, num_heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(3 * dim, eps=1e-6)
        self.mlp = Mlp(3 * dim, mlp_hidden_dim)

    def forward(self, h: Hypotheses) -> Hypotheses:
        x1, x2, x3 = h
        x1 = x1 + self.drop_path(self.attn_1(self.norm1_1(x1)))
        x2 = x2 + self.drop_path(self.attn_2(self.norm1_2(x2)))
        x3 = x3 + self.drop_path(self.attn_3(self.norm1_3(x3)))
        return self.mix((x1, x2, x3))


class CHIBlock(_HypothesisMixer):
    """Cross-hypothesis interaction: each hypothesis in turn (seeing the ones already updated) is
    the values of a cross-attention whose queries and keys are the other two; then the shared MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden_dim: int, drop_path: float) -> None:
        super().__init__()
        # norm3_<i><n>: hypothesis i's update, n-th input (1 query, 2 key, 3 value)
        self.norm3_11 = nn.LayerNorm(dim, eps=1e-6)
        self.norm3_12 = nn.LayerNorm(dim, eps=1e-6)
        self.norm3_13 = nn.LayerNorm(dim, eps=1e-6)
        self.norm3_21 = nn.LayerNorm(dim, eps=1e-6)
        self.norm3_22 = nn.LayerNorm(dim, eps=1e-6)
        self.norm3_23 = nn.LayerNorm(dim, eps=1e-6)
        self.norm3_31 = nn.LayerNorm(dim, eps=1e-6)
        self.norm3_32 = nn.LayerNorm(dim, eps=1e-6)
        self.norm3_33 = nn.LayerNorm(dim, eps=1e-6)
        self.attn_1 = CrossAttention(dim, num_heads)
        self.attn_2 = CrossAttention(dim, num_heads)
        self.attn_3 = CrossAttention(dim, num_heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(3 * dim, eps=1e-6)
        self.mlp = Mlp(3 * dim, mlp_hidden_dim)

    def forward(self, h: Hypotheses) -> Hypotheses:
        x1, x2, x3 = h
        x1 = x1 + self.drop_path(self.attn_1(self.norm3_11(x2), self.norm3_12(x3), self.norm3_13(x1)))
        x2 = x2 + self.drop_path(self.attn_2(self.norm3_21(x1), self.norm3_22(x3), self.norm3_23(x2)))
        x3 = x3 + self.drop_path(self.attn_3(self.norm3_31(x1), self.norm3_32(x2), self.norm3_33(x3)))
        return self.mix((x1, x2, x3))


class HypothesisTransformer(nn.Module):
    """SHR blocks, then one CHI block, over three hypotheses [B, T, C]: -> [B, t, 3C] and the kept
    frames [B, t] (all T without a TPC). With `prune`, frames are pruned before SHR block
    `layer_index` (official `module/trans_hypothesis.py` and `module/trans_hypothesis_cluster.py`)."""

    def __init__(self, config: MHFormerConfig) -> None:
        super().__init__()
        cfg = config
        self.config = config
        self.pos_embed_1 = nn.Parameter(torch.zeros(1, cfg.frames, cfg.dim))
        self.pos_embed_2 = nn.Parameter(torch.zeros(1, cfg.frames, cfg.dim))
        self.pos_embed_3 = nn.Parameter(torch.zeros(1, cfg.frames, cfg.dim))
        depth = cfg.hypothesis_depth
        dpr = [r.item() for r in torch.linspace(0, cfg.drop_path_rate, depth)]
        self.SHR_blocks = nn.ModuleList(
            SHRBlock(cfg.dim, cfg.num_heads, cfg.mlp_hidden_dim, dpr[i]) for i in range(depth - 1)
        )
        self.CHI_blocks = nn.ModuleList([CHIBlock(cfg.dim, cfg.num_heads, cfg.mlp_hidden_dim, dpr[depth - 1])])
        self.norm = nn.LayerNorm(3 * cfg.dim, eps=1e-6)

    def forward(self, h: Hypotheses) -> tuple[Tensor, Tensor]:
        cfg = self.config
        b = h[0].shape[0]
        h = (h[0] + self.pos_embed_1, h[1] + self.pos_embed_2, h[2] + self.pos_embed_3)
        index = torch.arange(cfg.frames, device=h[0].device).expand(b, -1)  # [B, T]
        for i, block in enumerate(self.SHR_blocks):
            if cfg.tpc and i == cfg.layer_index:
                # clustered on the three hypotheses side by side, the centre frame always kept
                index = select_frames(torch.cat(h, dim=-1), cfg.token_num, cfg.knn_k, keep=cfg.centre)  # [B, t]
                h = (gather_frames(h[0], index), gather_frames(h[1], index), gather_frames(h[2], index))
            h = block(h)
        h = self.CHI_blocks[0](h)
        out: Tensor = self.norm(torch.cat(h, dim=-1))  # [B, t, 3C]
        return out, index


# --- the model -----------------------------------------------------------------


class MHFormer(nn.Module):
    """MHFormer, with HoT's Token Pruning Cluster when config.tpc (TPC-MHFormer)."""

    KIND: ClassVar[LifterKind] = SEQ2FRAME

    def __init__(self, config: MHFormerConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        self.embedding_1 = hypothesis_embedding(cfg.joints, cfg.dim, cfg.frames)
        self.embedding_2 = hypothesis_embedding(cfg.joints, cfg.dim, cfg.frames)
        self.embedding_3 = hypothesis_embedding(cfg.joints, cfg.dim, cfg.frames)
        self.Transformer_hypothesis = HypothesisTransformer(cfg)
        self.regression = nn.Sequential(
            nn.BatchNorm1d(3 * cfg.dim, momentum=0.1), nn.Conv1d(3 * cfg.dim, 3 * cfg.joints, kernel_size=1)
        )
        # MHG: LayerNorm over the frames of each coordinate channel, then a residual encoder, x3
        self.norm_1 = nn.LayerNorm(cfg.frames)
        self.norm_2 = nn.LayerNorm(cfg.frames)
        self.norm_3 = nn.LayerNorm(cfg.frames)
        self.Transformer_encoder_1 = MHGEncoder(cfg)
        self.Transformer_encoder_2 = MHGEncoder(cfg)
        self.Transformer_encoder_3 = MHGEncoder(cfg)

    def forward_with_index(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """[B, T, J, 2] -> (poses [B, t, J, 3], their frame indices [B, t] in time order)."""
        cfg = self.config
        if x.ndim != 4 or x.shape[1:] != (cfg.frames, cfg.joints, 2):
            raise ValueError(f"expected input [B, {cfg.frames}, {cfg.joints}, 2], got {list(x.shape)}")
        b, t, j, _ = x.shape

        x = x.reshape(b, t, 2 * j).transpose(1, 2)  # [B, 2J, T], channel = 2 * joint + coordinate
        x1 = x + self.Transformer_encoder_1(self.norm_1(x))  # [B, 2J, T]
        x2 = x1 + self.Transformer_encoder_2(self.norm_2(x1))
        x3 = x2 + self.Transformer_encoder_3(self.norm_3(x2))

        h = (
            self.embedding_1(x1).transpose(1, 2),  # [B, T, C]
            self.embedding_2(x2).transpose(1, 2),
            self.embedding_3(x3).transpose(1, 2),
        )
        y, index = self.Transformer_hypothesis(h)  # [B, t, 3C], [B, t]

        y = self.regression(y.transpose(1, 2))  # [B, 3J, t], channel = 3 * joint + coordinate
        out = y.transpose(1, 2).reshape(b, -1, j, 3)  # [B, t, J, 3]
        return out, index

    def forward(self, x: Tensor) -> Tensor:
        """[B, T, J, 2] -> [B, t, J, 3], the official output (t = T, or token_num with the TPC)."""
        return self.forward_with_index(x)[0]

    def predict_centre(self, x: Tensor) -> Tensor:
        """[B, T, J, 2] -> [B, J, 3]: the pose of the window's centre frame, the model's prediction."""
        out, index = self.forward_with_index(x)
        return kept_frame(out, index, self.config.centre)


__all__ = ["MHFormer", "MHFormerConfig"]
