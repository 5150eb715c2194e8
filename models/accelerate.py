"""A faster inference forward for HoT-MixSTE / MixSTE on CPU, from the same parameters.

`HoTMixSTE.forward` takes `forward_fast` when `fast_path_ok` says it may (CPU float32 input,
no autograd, eval mode, oneDNN present, no hooks on any submodule); everything else (training,
GPU, the FLOP counter's and the training loss's hooks) runs the module path. The two agree
within float32 rounding (~1e-6, tests/models/test_accelerate.py); the parameters, their names and
the checkpoint format are untouched.

What makes it faster (shipped size: dim 64, 4 heads of 16, 17 joints, 243 frames; 2 threads):
- One layout. The activations stay [B, T, J, C] contiguous through every block. The module path
  copies them between the spatial view [B*T, J, C] and the temporal view [B*J, T, C] twice per
  block; here the per-token layers (norms, Linear, GELU) don't care about the order of tokens,
  and attention reads q, k, v as strided views of the fused qkv output.
- Spatial attention (17 tokens) as two bmm + softmax per head on those strided views, writing
  straight into the [B, T, J, C] output; temporal attention (81-243 tokens) through the fused
  SDPA kernel on strided views, which is faster there.
- oneDNN's Linear with the bias, the GELU of fc1 and the residual adds of proj and fc2 fused in
  (`torch.ops.mkldnn._linear_pointwise`, the kernel TorchInductor's CPU freezing path uses).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from hotpose.models.hot import HoTMixSTE
    from hotpose.models.layers import Block


def _mkldnn_linear_available() -> bool:
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        x = torch.ones(2, 4)
        w, b = torch.ones(3, 4), torch.zeros(3)
        y = torch.ops.mkldnn._linear_pointwise(x, w, b, "gelu", [], "none")
        z = torch.ops.mkldnn._linear_pointwise.binary(x, y, w, b, "add")
    except (RuntimeError, AttributeError):
        return False
    return bool(torch.allclose(z, F.gelu(F.linear(x, w, b)) + F.linear(x, w, b)))


MKLDNN_LINEAR = _mkldnn_linear_available()


def fast_path_ok(model: HoTMixSTE, x: Tensor) -> bool:
    """Whether `forward_fast` may replace the module path for this call."""
    if not MKLDNN_LINEAR or model.training or x.device.type != "cpu" or x.dtype != torch.float32:
        return False
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in model.parameters())):
        return False
    # Hooks (the FLOP counter in `hotpose bench`, the training loss's RecoveryGuide) expect the
    # module calls; a model with any keeps the module path.
    for m in model.modules():
        if m._forward_hooks or m._forward_pre_hooks:
            return False
        if isinstance(m, nn.GELU) and m.approximate != "none":
            return False
    return not (nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks)


def _linear(x: Tensor, lin: nn.Linear, act: str = "none") -> Tensor:
    """lin(x) (then GELU when act == "gelu") for x [M, C_in] -> [M, C_out]."""
    out: Tensor = torch.ops.mkldnn._linear_pointwise(x, lin.weight, lin.bias, act, [], "none" if act == "gelu" else "")
    return out


def _linear_add(x: Tensor, residual: Tensor, lin: nn.Linear) -> Tensor:
    """residual + lin(x) for x [M, C_in], residual [M, C_out]."""
    out: Tensor = torch.ops.mkldnn._linear_pointwise.binary(x, residual, lin.weight, lin.bias, "add")
    return out


def _layer_norm(x: Tensor, norm: nn.LayerNorm) -> Tensor:
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def _spatial_attention(qkv: Tensor, b: int, t: int, j: int, heads: int) -> Tensor:
    """Attention across the J joints of each frame: qkv [B*T*J, 3C] -> [B*T*J, C]."""
    c = qkv.shape[1] // 3
    d = c // heads
    qkv = qkv.view(b * t, j, 3, heads, d)  # [B*T, J, 3, H, D]
    out = qkv.new_empty(b * t, j, heads, d)  # [B*T, J, H, D]
    scale = 1.0 / math.sqrt(d)
    for h in range(heads):
        q, k, v = qkv[:, :, 0, h], qkv[:, :, 1, h], qkv[:, :, 2, h]  # [B*T, J, D] strided views
        s = torch.bmm(q, k.transpose(1, 2)).mul_(scale)  # [B*T, J, J]
        out[:, :, h] = torch.bmm(torch.softmax(s, dim=-1), v)  # [B*T, J, D]
    return out.view(b * t * j, c)


def _temporal_attention(qkv: Tensor, b: int, t: int, j: int, heads: int) -> Tensor:
    """Attention across the T frames of each joint: qkv [B*T*J, 3C] -> [B*T*J, C]."""
    c = qkv.shape[1] // 3
    d = c // heads
    qkv = qkv.view(b, t, j, 3, heads, d)  # [B, T, J, 3, H, D]
    out = qkv.new_empty(b, t, j, heads, d)  # [B, T, J, H, D]
    for i in range(b):
        q, k, v = (qkv[i, :, :, n].permute(1, 2, 0, 3) for n in range(3))  # [J, H, T, D] strided views
        out[i] = F.scaled_dot_product_attention(q, k, v).permute(2, 0, 1, 3)  # [T, J, H, D]
    return out.view(b * t * j, c)


def _block(block: Block, x: Tensor, attention: Tensor) -> Tensor:
    """`Block.forward` (eval) on tokens x [M, C]; `attention` is the attention output for x."""
    x = _linear_add(attention, x, block.attn.proj)  # [M, C]
    h = _linear(_layer_norm(x, block.norm2), block.mlp.fc1, "gelu")  # [M, hidden]
    return _linear_add(h, x, block.mlp.fc2)  # [M, C]


def forward_fast(model: HoTMixSTE, x: Tensor) -> Tensor:
    """`HoTMixSTE.forward` for [B, T, J, 2] -> [B, T, J, 3], input already checked."""
    cfg = model.config
    b, t, j = x.shape[0], cfg.frames, cfg.joints
    heads = cfg.num_heads
    x = model.Spatial_patch_to_embedding(x) + model.Spatial_pos_embed  # [B, T, J, C]
    for i in range(cfg.depth):
        if cfg.hot and i == cfg.layer_index:
            index = model.token_pruning(x)  # [B, t]
            x = x[torch.arange(b, device=x.device)[:, None], index]  # [B, t, J, C]
            x = x + model.pos_embed_token[:, :, None, :]
            t = cfg.token_num
        c = x.shape[-1]
        tokens = x.reshape(b * t * j, c)  # [B*T*J, C], every token once, in (b, t, j) order

        blk = model.STEblocks[i]
        qkv = _linear(_layer_norm(tokens, blk.norm1), blk.attn.qkv)  # [B*T*J, 3C]
        tokens = _block(blk, tokens, _spatial_attention(qkv, b, t, j, heads))
        tokens = _layer_norm(tokens, model.Spatial_norm)
        if i == 0:
            tokens = (tokens.view(b, t, j, c) + model.Temporal_pos_embed[:, :, None, :]).view(b * t * j, c)

        blk = model.TTEblocks[i]
        qkv = _linear(_layer_norm(tokens, blk.norm1), blk.attn.qkv)  # [B*T*J, 3C]
        tokens = _block(blk, tokens, _temporal_attention(qkv, b, t, j, heads))
        x = _layer_norm(tokens, model.Temporal_norm).view(b, t, j, c)  # [B, T, J, C]

    if cfg.hot:
        c = x.shape[-1]
        keys = x.transpose(1, 2).reshape(b * j, t, c)  # [B*J, t, C]
        query = model.x_token  # [1, T, C], shared by every (batch, joint)
        rec = query + model.cross_attention(query, keys, keys)  # [B*J, T, C]
        x = rec.view(b, j, cfg.frames, c).transpose(1, 2)  # [B, T, J, C]

    out: Tensor = model.head(x)  # [B, T, J, 3]
    return out


__all__ = ["MKLDNN_LINEAR", "fast_path_ok", "forward_fast"]
