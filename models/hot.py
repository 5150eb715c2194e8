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

Inference is deterministic: the official code breaks ties between equal
DPC-kNN densities (mutual nearest neighbours always tie) with `torch.rand`
noise, so one clip gave different poses on every run. Here a density tie is
broken by frame index (the earlier frame ranks higher) and the final selection
uses a stable sort, so the same input always gives bit-identical output.

State-dict keys and shapes equal the official `model/mixste/hot_mixste.py` and
`model/mixste/mixste.py`, so official checkpoints load with `strict=True`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from hotpose.models.layers import Block, CrossAttention


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
            if not 0 < self.token_num <= self.frames:
                raise ValueError(f"token_num {self.token_num} must be in 1..frames ({self.frames})")
            if not 1 <= self.layer_index < self.depth:
                raise ValueError(f"layer_index {self.layer_index} must be in 1..depth-1 ({self.depth - 1})")

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


# --- Token Pruning Cluster -------------------------------------------------------


@torch.no_grad()
def dpc_knn_select(x: Tensor, cluster_num: int, k: int) -> Tensor:
    """Density-peak clustering (DPC-kNN) centres of the tokens x [B, N, C].

    Returns the indices [B, cluster_num] of the tokens with the largest
    density x distance-to-a-denser-token score, best first. Ties are broken
    deterministically (see the module docstring).
    """
    with torch.autocast(x.device.type, enabled=False):
        return _dpc_knn_select(x.float(), cluster_num, k)


def _dpc_knn_select(x: Tensor, cluster_num: int, k: int) -> Tensor:
    """`dpc_knn_select` in float32 always: under autocast the matmul below would run in bfloat16,
    whose rounding swamps the small distances between neighbouring frames and changes which frames
    are kept (about half of 81, measured on smooth sequences) between training and serving."""
    b, n, c = x.shape
    # Squared distances through one matmul (as torch.cdist does for this size; the direct
    # pairwise form costs 20x more: 16 ms vs 0.8 ms for one 243-frame window on one core), then
    # made exactly symmetric (a + b == b + a in floating point) with a zero diagonal, so mutual
    # neighbours get exactly equal densities and the tie rule below applies.
    sq = (x * x).sum(dim=-1)  # [B, N]
    d2 = sq[:, :, None] + sq[:, None, :] - 2.0 * (x @ x.transpose(1, 2))  # [B, N, N]
    d2 = (d2 + d2.transpose(1, 2)) * 0.5
    d2 = d2 * (1.0 - torch.eye(n, dtype=x.dtype, device=x.device))
    dist = d2.clamp_min(0).sqrt() / math.sqrt(c)  # [B, N, N]
    nearest = dist.topk(k, dim=-1, largest=False).values  # [B, N, k]
    density = torch.exp(-(nearest**2).mean(dim=-1))  # [B, N]

    # denser[b, i, m]: token m outranks token i (higher density, or equal and earlier).
    d_i = density[:, :, None]
    d_m = density[:, None, :]
    idx = torch.arange(n, device=x.device)
    earlier = idx[None, None, :] < idx[None, :, None]
    denser = (d_m > d_i) | ((d_m == d_i) & earlier)  # [B, N, N]
    dist_max = dist.flatten(1).max(dim=-1).values[:, None, None]  # [B, 1, 1]
    parent_dist = torch.where(denser, dist, dist_max).min(dim=-1).values  # [B, N]

    score = parent_dist * density  # [B, N]
    order = torch.sort(score, dim=-1, descending=True, stable=True).indices
    return order[:, :cluster_num]


def token_pruning_cluster(x: Tensor, token_num: int, k: int) -> Tensor:
    """Frames to keep: pool joints, cluster frames, return indices [B, token_num] in time order."""
    pooled = x.float().mean(dim=2)  # [B, T, C], float32 (see `_dpc_knn_select`)
    index = dpc_knn_select(pooled, token_num, k)  # [B, token_num]
    return index.sort(dim=-1).values


class TokenPruningCluster(nn.Module):
    """`token_pruning_cluster` as a module with no parameters (the checkpoint is unchanged), so
    training can read the kept frames with a forward hook instead of the model storing them."""

    def __init__(self, token_num: int, k: int) -> None:
        super().__init__()
        self.token_num = token_num
        self.k = k

    def forward(self, x: Tensor) -> Tensor:
        return token_pruning_cluster(x, self.token_num, self.k)  # [B, token_num]


# --- the model -----------------------------------------------------------------


class HoTMixSTE(nn.Module):
    """MixSTE with optional Hourglass Tokenizer pruning and recovery (config.hot)."""

    def __init__(self, config: LifterConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        dim = cfg.dim

        self.Spatial_patch_to_embedding = nn.Linear(2, dim)
        self.Spatial_pos_embed = nn.Parameter(torch.zeros(1, cfg.joints, dim))
        self.Temporal_pos_embed = nn.Parameter(torch.zeros(1, cfg.frames, dim))

        dpr = [r.item() for r in torch.linspace(0, cfg.drop_path_rate, cfg.depth)]
        self.STEblocks = nn.ModuleList(
            Block(dim, cfg.num_heads, cfg.mlp_hidden_dim, drop_path=dpr[i]) for i in range(cfg.depth)
        )
        self.TTEblocks = nn.ModuleList(
            Block(dim, cfg.num_heads, cfg.mlp_hidden_dim, drop_path=dpr[i]) for i in range(cfg.depth)
        )
        self.Spatial_norm = nn.LayerNorm(dim, eps=1e-6)
        self.Temporal_norm = nn.LayerNorm(dim, eps=1e-6)

        if cfg.hot:
            self.pos_embed_token = nn.Parameter(torch.zeros(1, cfg.token_num, dim))
            self.x_token = nn.Parameter(torch.zeros(1, cfg.frames, dim))  # recovery queries
            self.cross_attention = CrossAttention(dim, cfg.num_heads)
            self.token_pruning = TokenPruningCluster(cfg.token_num, cfg.knn_k)

        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 3))

    def forward(self, x: Tensor) -> Tensor:
        cfg = self.config
        if x.ndim != 4 or x.shape[1:] != (cfg.frames, cfg.joints, 2):
            raise ValueError(f"expected input [B, {cfg.frames}, {cfg.joints}, 2], got {list(x.shape)}")
        b = x.shape[0]

        x = self.Spatial_patch_to_embedding(x) + self.Spatial_pos_embed  # [B, T, J, C]
        for i in range(cfg.depth):
            if cfg.hot and i == cfg.layer_index:
                index = self.token_pruning(x)  # [B, t]
                x = x[torch.arange(b, device=x.device)[:, None], index]  # [B, t, J, C]
                x = x + self.pos_embed_token[:, :, None, :]
            x = self.Spatial_norm(self.STEblocks[i](to_spatial(x)))  # [B*T, J, C]
            x = to_temporal(from_spatial(x, b))  # [B*J, T, C]
            if i == 0:
                x = x + self.Temporal_pos_embed
            x = self.Temporal_norm(self.TTEblocks[i](x))  # [B*J, T, C]
            x = from_temporal(x, b)  # [B, T, J, C]

        if cfg.hot:
            tokens = to_temporal(x)  # [B*J, t, C]
            query = self.x_token  # [1, T, C], shared by every (batch, joint)
            x = query + self.cross_attention(query, tokens, tokens)  # [B*J, T, C]
            x = from_temporal(x, b)  # [B, T, J, C]

        out: Tensor = self.head(x)  # [B, T, J, 3]
        return out
