"""HoT's Token Pruning Cluster (TPC), shared by every host that prunes frames.

Li et al., "Hourglass Tokenizer for Efficient Transformer-Based 3D Human Pose Estimation", CVPR 2024:
after a few blocks, the pose tokens of redundant frames are dropped. Frames are clustered by
density-peak clustering with k nearest neighbours (DPC-kNN) on their pooled features and the cluster
centres are kept, in time order. Seq2seq hosts (HoT-MixSTE, HoT-MotionBERT) recover every frame later
with the Token Recovering Attention; seq2frame hosts (TPC-MixSTE, TPC-MHFormer) always keep the window's
centre frame (`keep`), whose pose is their prediction.

Inference is deterministic: the official code breaks ties between equal DPC-kNN densities (mutual
nearest neighbours always tie) with `torch.rand` noise, so one clip gave different poses on every run.
Here a density tie is broken by frame index (the earlier frame ranks higher), distances are exactly
symmetric, and the final selection uses a stable sort, so the same input always gives bit-identical
output.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def check_pruning(token_num: int, frames: int, layer_index: int, blocks: range, what: str = "block") -> None:
    """A host's pruning settings: keep 1..frames frames, before one of `blocks` (ValueError otherwise)."""
    if not 0 < token_num <= frames:
        raise ValueError(f"token_num {token_num} must be in 1..frames ({frames})")
    if layer_index not in blocks:
        raise ValueError(f"layer_index {layer_index} must be in {blocks.start}..{blocks.stop - 1} (a {what})")


@torch.no_grad()
def dpc_knn_select(x: Tensor, cluster_num: int, k: int, exclude: int | None = None) -> Tensor:
    """Density-peak clustering (DPC-kNN) centres of the tokens x [B, N, C].

    Returns the indices [B, cluster_num] of the tokens with the largest density x
    distance-to-a-denser-token score, best first; token `exclude` (if given) is never chosen (the
    seq2frame hosts add it themselves). Ties are broken deterministically (see the module docstring).
    """
    with torch.autocast(x.device.type, enabled=False):
        return _dpc_knn_select(x.float(), cluster_num, k, exclude)


def _dpc_knn_select(x: Tensor, cluster_num: int, k: int, exclude: int | None) -> Tensor:
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
    if exclude is not None:
        score[:, exclude] = -math.inf
    order = torch.sort(score, dim=-1, descending=True, stable=True).indices
    return order[:, :cluster_num]


def select_frames(pooled: Tensor, token_num: int, k: int, keep: int | None = None) -> Tensor:
    """Frames to keep from per-frame features pooled [B, T, C]: indices [B, token_num] in time order.

    With `keep`, that frame is always among them (the other token_num - 1 are cluster centres)."""
    pooled = pooled.float()  # float32 (see `_dpc_knn_select`)
    if keep is None:
        index = dpc_knn_select(pooled, token_num, k)  # [B, token_num]
    else:
        others = dpc_knn_select(pooled, token_num - 1, k, exclude=keep)  # [B, token_num - 1]
        index = torch.cat([others, torch.full_like(others[:, :1], keep)], dim=1)  # [B, token_num]
    return index.sort(dim=-1).values


def token_pruning_cluster(x: Tensor, token_num: int, k: int, keep: int | None = None) -> Tensor:
    """Frames to keep from pose tokens x [B, T, J, C]: joints pooled, then `select_frames`."""
    return select_frames(x.float().mean(dim=2), token_num, k, keep)  # [B, token_num]


def gather_frames(x: Tensor, index: Tensor) -> Tensor:
    """The kept frames of x [B, T, ...] at index [B, t]: [B, t, ...]."""
    return x[torch.arange(x.shape[0], device=x.device)[:, None], index]


def kept_position(index: Tensor, frame: int) -> Tensor:
    """Where frame `frame` sits among each sample's kept frames index [B, t]: [B].

    The frame must be kept (a seq2frame host's centre always is); its row of the host's output
    [B, t, ...] is then its pose."""
    return (index == frame).int().argmax(dim=1)


def kept_frame(out: Tensor, index: Tensor, frame: int) -> Tensor:
    """Frame `frame`'s row of a host's output over its kept frames: out [B, t, ...], index [B, t]
    -> [B, ...] (a seq2frame host's prediction, with `frame` its centre)."""
    return gather_frames(out, kept_position(index, frame)[:, None])[:, 0]


class TokenPruningCluster(nn.Module):
    """`token_pruning_cluster` as a module with no parameters (the checkpoint is unchanged), so
    training can read the kept frames with a forward hook instead of the model storing them."""

    def __init__(self, token_num: int, k: int, keep: int | None = None) -> None:
        super().__init__()
        self.token_num = token_num
        self.k = k
        self.keep = keep

    def forward(self, x: Tensor) -> Tensor:
        return token_pruning_cluster(x, self.token_num, self.k, self.keep)  # [B, token_num]


__all__ = [
    "TokenPruningCluster",
    "check_pruning",
    "dpc_knn_select",
    "gather_frames",
    "kept_frame",
    "kept_position",
    "select_frames",
    "token_pruning_cluster",
]
