"""HoT-MixSTE and MixSTE: seq2seq video 3D pose lifters.

- MixSTE: Zhang et al., "MixSTE: Seq2seq Mixed Spatio-Temporal Encoder for 3D
  Human Pose Estimation in Video", CVPR 2022. Alternating spatial blocks
  (attention across the J joints of one frame) and temporal blocks (attention
  across the T frames of one joint).
- HoT: Li et al., "Hourglass Tokenizer for Efficient Transformer-Based 3D Human
  Pose Estimation", CVPR 2024. After `layer_index` blocks a Token Pruning
  Cluster keeps `token_num` representative frames (the hourglass waist); the
  remaining blocks run on those; a Token Recovering Attention maps them back to
  all `frames` outputs.

Input  [B, T, J, 2]: 2D keypoints in the official screen normalisation
         (`hotpose.models.keypoints.normalize_screen`), T == config.frames.
Output [B, T, J, 3]: root-relative 3D joints in the units of the training
         targets (metres for the weights hotpose ships), camera frame.

Inference is deterministic: the Token Pruning Cluster (`hotpose.models.token_pruning`) breaks
density ties by frame index instead of the official code's random noise.

State-dict keys and shapes equal the official `model/mixste/hot_mixste.py` and
`model/mixste/mixste.py`, so official checkpoints load with `strict=True`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar, Protocol

import torch
from torch import Tensor, nn

from hotpose.models.kind import SEQ2SEQ, LifterKind
from hotpose.models.layers import Block, CrossAttention
from hotpose.models.token_pruning import TokenPruningCluster, check_pruning, gather_frames


@dataclass(frozen=True)
class LifterConfig:
    dim: int = 512
    depth: int = 8
    num_heads: int = 8
    mlp_hidden_dim: int = 0  # 0 means 2 * dim, as in the paper
    frames: int = 243
    joints: int = 17
    hot: bool = True  # False: plain MixSTE (no pruning, no recovery)
    token_num: int = 81  # frames kept by the Token Pruning Cluster
    layer_index: int = 3  # the pruning happens before this block
    knn_k: int = 2  # neighbours for the DPC-kNN local density
    drop_path_rate: float = 0.1

    def __post_init__(self) -> None:
        if self.mlp_hidden_dim <= 0:
            object.__setattr__(self, "mlp_hidden_dim", 2 * self.dim)
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.hot:
            check_pruning(self.token_num, self.frames, self.layer_index, range(1, self.depth))

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# --- the two views, named once -------------------------------------------------


def to_spatial(x: Tensor) -> Tensor:
    """[B, T, J, C] -> [B*T, J, C]: tokens are the joints of one frame."""
    b, t, j, c = x.shape
    return x.reshape(b * t, j, c)


def from_spatial(x: Tensor, b: int) -> Tensor:
    """[B*T, J, C] -> [B, T, J, C]."""
    bt, j, c = x.shape
    return x.view(b, bt // b, j, c)


def to_temporal(x: Tensor) -> Tensor:
    """[B, T, J, C] -> [B*J, T, C]: tokens are the frames of one joint."""
    b, t, j, c = x.shape
    return x.transpose(1, 2).reshape(b * j, t, c)


def from_temporal(x: Tensor, b: int) -> Tensor:
    """[B*J, T, C] -> [B, T, J, C]."""
    bj, t, c = x.shape
    return x.view(b, bj // b, t, c).transpose(1, 2)


# --- the MixSTE trunk, shared by every MixSTE host ---------------------------------


def mixste_head(dim: int) -> nn.Sequential:
    """The official regression head: LayerNorm, then C -> 3 per joint token."""
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 3))


class TrunkSizes(Protocol):
    """What `MixSTETrunk` reads of a host's config (`LifterConfig`, `TPCMixSTEConfig`)."""

    @property
    def dim(self) -> int: ...
    @property
    def depth(self) -> int: ...
    @property
    def num_heads(self) -> int: ...
    @property
    def mlp_hidden_dim(self) -> int: ...
    @property
    def frames(self) -> int: ...
    @property
    def joints(self) -> int: ...
    @property
    def drop_path_rate(self) -> float: ...


class MixSTETrunk(nn.Module):
    """MixSTE's embedding and its `depth` spatial-temporal block pairs, with the official names.

    Hosts (HoT-MixSTE and MixSTE here, TPC-MixSTE in `hotpose.models.tpc_mixste`) subclass it,
    then register their own pruning / recovery parameters and last `head` (`mixste_head`), which
    gives the official state_dict order, and run `embed` then `mix_block` for each block, pruning
    frames between blocks as they do.
    """

    def __init__(self, sizes: TrunkSizes) -> None:
        super().__init__()
        dim, depth, heads, hidden = sizes.dim, sizes.depth, sizes.num_heads, sizes.mlp_hidden_dim
        self.window = (sizes.frames, sizes.joints)  # the input shape [B, T, J, 2] every forward checks
        self.Spatial_patch_to_embedding = nn.Linear(2, dim)
        self.Spatial_pos_embed = nn.Parameter(torch.zeros(1, sizes.joints, dim))
        self.Temporal_pos_embed = nn.Parameter(torch.zeros(1, sizes.frames, dim))

        dpr = [r.item() for r in torch.linspace(0, sizes.drop_path_rate, depth)]
        self.STEblocks = nn.ModuleList(Block(dim, heads, hidden, drop_path=dpr[i]) for i in range(depth))
        self.TTEblocks = nn.ModuleList(Block(dim, heads, hidden, drop_path=dpr[i]) for i in range(depth))
        self.Spatial_norm = nn.LayerNorm(dim, eps=1e-6)
        self.Temporal_norm = nn.LayerNorm(dim, eps=1e-6)

    def check_input(self, x: Tensor) -> None:
        frames, joints = self.window
        if x.ndim != 4 or x.shape[1:] != (frames, joints, 2):
            raise ValueError(f"expected input [B, {frames}, {joints}, 2], got {list(x.shape)}")

    def embed(self, x: Tensor) -> Tensor:
        """[B, T, J, 2] -> [B, T, J, C] joint tokens."""
        out: Tensor = self.Spatial_patch_to_embedding(x) + self.Spatial_pos_embed
        return out

    def mix_block(self, i: int, x: Tensor) -> Tensor:
        """Spatial block i, then temporal block i: [B, t, J, C] -> [B, t, J, C].

        The temporal position embedding enters at block 0, before any frame is pruned."""
        b = x.shape[0]
        x = self.Spatial_norm(self.STEblocks[i](to_spatial(x)))  # [B*t, J, C]
        x = to_temporal(from_spatial(x, b))  # [B*J, t, C]
        if i == 0:
            x = x + self.Temporal_pos_embed
        x = self.Temporal_norm(self.TTEblocks[i](x))  # [B*J, t, C]
        return from_temporal(x, b)  # [B, t, J, C]


# --- the model -----------------------------------------------------------------


class HoTMixSTE(MixSTETrunk):
    """MixSTE with optional Hourglass Tokenizer pruning and recovery (config.hot)."""

    KIND: ClassVar[LifterKind] = SEQ2SEQ

    def __init__(self, config: LifterConfig) -> None:
        cfg = config
        super().__init__(cfg)
        self.config = config
        if cfg.hot:
            self.pos_embed_token = nn.Parameter(torch.zeros(1, cfg.token_num, cfg.dim))
            self.x_token = nn.Parameter(torch.zeros(1, cfg.frames, cfg.dim))  # recovery queries
            self.cross_attention = CrossAttention(cfg.dim, cfg.num_heads)
            self.token_pruning = TokenPruningCluster(cfg.token_num, cfg.knn_k)
        self.head = mixste_head(cfg.dim)

    def forward(self, x: Tensor) -> Tensor:
        cfg = self.config
        self.check_input(x)
        b = x.shape[0]

        x = self.embed(x)  # [B, T, J, C]
        for i in range(cfg.depth):
            if cfg.hot and i == cfg.layer_index:
                index = self.token_pruning(x)  # [B, t]
                x = gather_frames(x, index) + self.pos_embed_token[:, :, None, :]  # [B, t, J, C]
            x = self.mix_block(i, x)  # [B, t, J, C]

        if cfg.hot:
            tokens = to_temporal(x)  # [B*J, t, C]
            query = self.x_token  # [1, T, C], shared by every (batch, joint)
            x = query + self.cross_attention(query, tokens, tokens)  # [B*J, T, C]
            x = from_temporal(x, b)  # [B, T, J, C]

        out: Tensor = self.head(x)  # [B, T, J, 3]
        return out
