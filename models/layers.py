"""Transformer layers shared by the lifters.

Parameter names (`qkv`, `proj`, `fc1`, `fc2`, `norm1`, `norm2`, `linear_q/k/v`)
follow the official MixSTE / HoT releases so their checkpoints load strictly.
All attention goes through `torch.nn.functional.scaled_dot_product_attention`,
which picks a fused kernel on CPU and GPU.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc2(self.act(self.fc1(x)))
        return out


class Attention(nn.Module):
    """Multi-head self-attention over the token axis of [N, L, C]."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        n, length, c = x.shape
        h = self.num_heads
        qkv = self.qkv(x).view(n, length, 3, h, c // h).permute(2, 0, 3, 1, 4)  # [3, N, H, L, D]
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)  # [N, H, L, D]
        x = x.transpose(1, 2).reshape(n, length, c)  # [N, L, C]
        out: Tensor = self.proj(x)
        return out


class CrossAttention(nn.Module):
    """Multi-head attention of queries [Nq, Lq, C] over keys/values [N, Lk, C].

    The query batch may be 1 and is then broadcast over N, which lets the Token
    Recovering Attention project its shared learnable queries once instead of
    once per (batch, joint).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.linear_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.linear_k = nn.Linear(dim, dim, bias=qkv_bias)
        self.linear_v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        n, lk, c = key.shape
        lq = query.shape[1]
        h = self.num_heads
        q = self.linear_q(query).view(-1, lq, h, c // h).transpose(1, 2)  # [Nq, H, Lq, D]
        k = self.linear_k(key).view(n, lk, h, c // h).transpose(1, 2)  # [N, H, Lk, D]
        v = self.linear_v(value).view(n, lk, h, c // h).transpose(1, 2)  # [N, H, Lk, D]
        q = q.expand(n, -1, -1, -1)
        x = F.scaled_dot_product_attention(q, k, v)  # [N, H, Lq, D]
        x = x.transpose(1, 2).reshape(n, lq, c)  # [N, Lq, C]
        out: Tensor = self.proj(x)
        return out


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden_dim: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_hidden_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        out: Tensor = x + self.drop_path(self.mlp(self.norm2(x)))
        return out


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["Attention", "Block", "CrossAttention", "DropPath", "Mlp", "count_parameters"]
