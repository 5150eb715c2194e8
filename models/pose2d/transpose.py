"""TransPose: a CNN stem, a Transformer encoder over its feature map, and a heatmap head.

Yang et al., "TransPose: Keypoint Localization via Transformer", ICCV 2021 (official code:
github.com/yangsenius/TransPose, MIT). A 2D keypoint model for person crops; its selling point
is that the last encoder layer's attention shows which image positions each keypoint location
depends on (`TransPose.forward_with_attention`).

- TransPose-R: ResNet-50's conv1/bn1/maxpool, layer1 and layer2 (stride 8, 512 channels).
  The head upsamples the stride-8 encoder output once: 4x4 stride-2 transposed conv + BN + ReLU.
- TransPose-H: HRNet's first three stages (`hotpose.models.pose2d.hrnet`), stride 4; no
  upsampling in the head.
Both: a bias-free 1x1 `reduce` to d_model, n_layers post-norm encoder layers (DETR's layer:
x = norm1(x + attn(q=k=x+pos, v=x)); x = norm2(x + linear2(relu(linear1(x))))) with the 2D sine
position embedding added to queries and keys in EVERY layer, then a 1x1 `final_layer` (with bias)
to the joints' heatmaps.

Input  [B, 3, H, W]: a person crop, RGB normalised with the ImageNet mean/std, (H, W) == image_size.
Output [B, J, H/4, W/4]: heatmaps (J = 17, COCO order for the official weights).

What matters for the official checkpoints:
- State-dict keys, shapes and order equal the official `lib/models/transpose_{r,h}.py`: the stem's
  children sit at the top level (conv1, bn1, layer1, ...), attention keeps nn.MultiheadAttention's
  names (`self_attn.in_proj_weight` [3d, d], `in_proj_bias`, `out_proj`).
- `pos_embedding` [L, 1, d] (L = H/s * W/s positions, row-major, s the stem stride) is a frozen
  parameter, as in the official code: it is computed at construction for a fresh model and
  counted in the parameter totals, and a checkpoint's copy replaces it on `load_state_dict`.
- The sine embedding: positions 1..n normalised by (n + 1e-6) and scaled by 2*pi; frequencies
  10000 ** (2 * (i // 2) / (d/2)) for i < d/2; channels interleave sin/cos; the y half comes first.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hotpose.models.pose2d.hrnet import Bottleneck, HRNet, HRNetConfig, make_layer

logger = logging.getLogger(__name__)

StemKind = Literal["resnet", "hrnet"]
STEM_STRIDE: dict[str, int] = {"resnet": 8, "hrnet": 4}


@dataclass(frozen=True)
class TransPoseConfig:
    stem: StemKind = "resnet"
    width: int = 32  # HRNet branch-0 channels (32 or 48); unused by the ResNet stem
    d_model: int = 256
    dim_feedforward: int = 1024
    n_layers: int = 3
    n_heads: int = 8
    activation: Literal["relu", "gelu"] = "relu"  # the official models all use ReLU
    dropout: float = 0.1  # training only (attention weights, both residual branches, the FFN)
    image_size: tuple[int, int] = (256, 192)  # (height, width) of the input crop
    joints: int = 17

    def __post_init__(self) -> None:
        if self.stem not in STEM_STRIDE:
            raise ValueError(f"stem must be one of {sorted(STEM_STRIDE)}, got {self.stem!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.d_model % 4:
            raise ValueError(f"d_model {self.d_model} must be a multiple of 4 (2D sine position embedding)")
        # HRNet's third stage runs at stride 16; the ResNet stem ends at stride 8.
        multiple = 16 if self.stem == "hrnet" else 8
        if any(s <= 0 or s % multiple for s in self.image_size):
            raise ValueError(f"image_size {self.image_size} must be positive multiples of {multiple} for {self.stem}")

    @property
    def stride(self) -> int:
        """Input pixels per encoder position (per row of the attention map)."""
        return STEM_STRIDE[self.stem]

    @property
    def feature_size(self) -> tuple[int, int]:
        """(h, w) of the encoder's feature map; L = h * w positions, index = row * w + col."""
        return self.image_size[0] // self.stride, self.image_size[1] // self.stride

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(height, width) of the output heatmaps: image_size // 4."""
        return self.image_size[0] // 4, self.image_size[1] // 4

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# The five COCO models of the paper's Table 1 (official experiments/coco/transpose_{r,h}/*.yaml).
VARIANTS: dict[str, TransPoseConfig] = {
    # TP_R_256x192_d256_h1024_enc3_mh8: 5.20 M parameters
    "transpose_r_a3": TransPoseConfig(stem="resnet", d_model=256, dim_feedforward=1024, n_layers=3, n_heads=8),
    # TP_R_256x192_d256_h1024_enc4_mh8: 5.99 M
    "transpose_r_a4": TransPoseConfig(stem="resnet", d_model=256, dim_feedforward=1024, n_layers=4, n_heads=8),
    # TP_H_w32_256x192_stage3_1_4_d64_h128_relu_enc4_mh1: 8.02 M
    "transpose_h_s": TransPoseConfig(stem="hrnet", width=32, d_model=64, dim_feedforward=128, n_layers=4, n_heads=1),
    # TP_H_w48_256x192_stage3_1_4_d96_h192_relu_enc4_mh1: 17.31 M
    "transpose_h_a4": TransPoseConfig(stem="hrnet", width=48, d_model=96, dim_feedforward=192, n_layers=4, n_heads=1),
    # TP_H_w48_256x192_stage3_1_4_d96_h192_relu_enc6_mh1: 17.46 M
    "transpose_h_a6": TransPoseConfig(stem="hrnet", width=48, d_model=96, dim_feedforward=192, n_layers=6, n_heads=1),
}


# --- position embedding ----------------------------------------------------------


def sine_position_embedding(h: int, w: int, dim: int, temperature: float = 10000.0) -> Tensor:
    """The official 2D sine embedding of an h x w grid: [h*w, 1, dim], positions row-major."""
    half = dim // 2  # channels per axis
    eps, scale = 1e-6, 2 * math.pi
    ys = torch.arange(1, h + 1, dtype=torch.float32)
    xs = torch.arange(1, w + 1, dtype=torch.float32)
    ys = ys / (ys[-1:] + eps) * scale  # [h], in (0, 2*pi]
    xs = xs / (xs[-1:] + eps) * scale  # [w]
    freq = temperature ** (2 * (torch.arange(half, dtype=torch.float32) // 2) / half)  # [half], pairs equal

    def encode(t: Tensor) -> Tensor:
        angles = t[:, None] / freq  # [n, half]
        return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=2).flatten(1)  # [n, half]

    pos_y = encode(ys)[:, None, :].expand(h, w, half)  # [h, w, half]
    pos_x = encode(xs)[None, :, :].expand(h, w, half)  # [h, w, half]
    return torch.cat((pos_y, pos_x), dim=2).reshape(h * w, 1, dim)  # [L, 1, dim]


# --- encoder -----------------------------------------------------------------------


class PositionalSelfAttention(nn.Module):
    """Multi-head self-attention whose queries and keys see x + pos and whose values see x.

    Parameters are named as nn.MultiheadAttention's (`in_proj_weight` stacks W_q, W_k, W_v), so
    the official checkpoints load; the arithmetic is the same (scale 1/sqrt(head dim)).
    """

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: Tensor, pos: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """[B, L, C] (and pos [1, L, C]) -> q, k, v [B, H, L, C/H]."""
        b, length, c = x.shape
        w, bias = self.in_proj_weight, self.in_proj_bias
        qk = F.linear(x + pos, w[: 2 * c], bias[: 2 * c])  # [B, L, 2C]
        v = F.linear(x, w[2 * c :], bias[2 * c :])  # [B, L, C]
        h = self.num_heads
        q, k = qk.view(b, length, 2, h, c // h).permute(2, 0, 3, 1, 4).unbind(0)  # 2 x [B, H, L, D]
        return q, k, v.view(b, length, h, c // h).transpose(1, 2)  # ..., [B, H, L, D]

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        b, length, c = x.shape
        q, k, v = self._heads(x, pos)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)  # [B, H, L, D]
        out: Tensor = self.out_proj(y.transpose(1, 2).reshape(b, length, c))  # [B, L, C]
        return out

    def forward_with_weights(self, x: Tensor, pos: Tensor) -> tuple[Tensor, Tensor]:
        """As forward (eval, no dropout), plus the attention weights averaged over heads [B, L, L]
        (row = query position, each row sums to 1)."""
        b, length, c = x.shape
        q, k, v = self._heads(x, pos)
        weights = torch.softmax((q * (q.shape[-1] ** -0.5)) @ k.transpose(-2, -1), dim=-1)  # [B, H, L, L]
        y = weights @ v  # [B, H, L, D]
        out: Tensor = self.out_proj(y.transpose(1, 2).reshape(b, length, c))  # [B, L, C]
        return out, weights.mean(dim=1)


class EncoderLayer(nn.Module):
    """DETR's post-norm encoder layer; the position embedding goes into queries and keys."""

    def __init__(self, config: TransPoseConfig) -> None:
        super().__init__()
        d = config.d_model
        self.self_attn = PositionalSelfAttention(d, config.n_heads, config.dropout)
        self.linear1 = nn.Linear(d, config.dim_feedforward)
        self.dropout = nn.Dropout(config.dropout)
        self.linear2 = nn.Linear(config.dim_feedforward, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.dropout1 = nn.Dropout(config.dropout)
        self.dropout2 = nn.Dropout(config.dropout)
        self.activation: Callable[[Tensor], Tensor] = F.relu if config.activation == "relu" else F.gelu

    def _feed_forward(self, x: Tensor) -> Tensor:
        x = self.norm1(x)
        x = x + self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))
        out: Tensor = self.norm2(x)
        return out

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        return self._feed_forward(x + self.dropout1(self.self_attn(x, pos)))

    def forward_with_attention(self, x: Tensor, pos: Tensor) -> tuple[Tensor, Tensor]:
        y, weights = self.self_attn.forward_with_weights(x, pos)
        return self._feed_forward(x + self.dropout1(y)), weights


class Encoder(nn.Module):
    """`layers` only, as the official TransformerEncoder (no final norm)."""

    def __init__(self, config: TransPoseConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.n_layers))
        for p in self.parameters():  # the official initialisation of a fresh encoder
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x, pos)
        return x

    def forward_with_attention(self, x: Tensor, pos: Tensor) -> tuple[Tensor, Tensor]:
        """Output [B, L, C] and the last layer's head-averaged attention [B, L, L]."""
        *first, last = self.layers
        for layer in first:
            x = layer(x, pos)
        assert isinstance(last, EncoderLayer)
        return last.forward_with_attention(x, pos)


# --- stems -------------------------------------------------------------------------


class ResNetS(nn.Module):
    """ResNet-50 up to layer2: [B, 3, H, W] -> [B, 512, H/8, W/8]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = make_layer(Bottleneck, 64, 64, 3)  # [B, 256, H/4, W/4]
        self.layer2 = make_layer(Bottleneck, 256, 128, 4, stride=2)  # [B, 512, H/8, W/8]
        self.out_channels = 128 * Bottleneck.expansion

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # [B, 64, H/4, W/4]
        out: Tensor = self.layer2(self.layer1(x))
        return out


# --- the model ---------------------------------------------------------------------


class TransPose(nn.Module):
    """TransPose-R or TransPose-H (config.stem): [B, 3, H, W] -> heatmaps [B, J, H/4, W/4]."""

    def __init__(self, config: TransPoseConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        stem: ResNetS | HRNet = ResNetS() if config.stem == "resnet" else HRNet(HRNetConfig(width=config.width))
        # The official checkpoints keep the stem's children at the top level (conv1, bn1, layer1,
        # ...), so they are registered here under their own names and the stem lends its forward.
        for name, child in stem.named_children():
            self.add_module(name, child)
        self._stem: Callable[[Tensor], Tensor] = stem.forward

        self.reduce = nn.Conv2d(stem.out_channels, d, 1, bias=False)
        h, w = config.feature_size
        self.pos_embedding = nn.Parameter(sine_position_embedding(h, w, d), requires_grad=False)  # [L, 1, d]
        self.global_encoder = Encoder(config)
        if config.stem == "resnet":  # stride 8 -> 4
            self.deconv_layers = nn.Sequential(
                nn.ConvTranspose2d(d, d, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(d),
                nn.ReLU(inplace=True),
            )
        self.final_layer = nn.Conv2d(d, config.joints, 1)
        # A fresh model starts its heatmaps near zero, as the official training does.
        nn.init.normal_(self.final_layer.weight, std=0.001)
        assert self.final_layer.bias is not None
        nn.init.zeros_(self.final_layer.bias)

    def _check_input(self, x: Tensor) -> None:
        h, w = self.config.image_size
        if x.ndim != 4 or x.shape[1:] != (3, h, w):
            raise ValueError(
                f"expected input [B, 3, {h}, {w}] (an RGB person crop, ImageNet mean/std), got {list(x.shape)}"
            )

    def _features(self, x: Tensor) -> Tensor:
        """[B, 3, H, W] -> encoder tokens [B, L, d]."""
        x = self.reduce(self._stem(x))  # [B, d, h, w]
        return x.flatten(2).transpose(1, 2)  # [B, L, d], L = h * w row-major

    def _head(self, tokens: Tensor) -> Tensor:
        """Encoder tokens [B, L, d] -> heatmaps [B, J, H/4, W/4]."""
        h, w = self.config.feature_size
        x = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, h, w)  # [B, d, h, w]
        if self.config.stem == "resnet":
            x = self.deconv_layers(x)  # [B, d, 2h, 2w]
        out: Tensor = self.final_layer(x)
        return out

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        pos = self.pos_embedding.transpose(0, 1)  # [1, L, d]
        return self._head(self.global_encoder(self._features(x), pos))

    def forward_with_attention(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Heatmaps [B, J, H/4, W/4] and the last encoder layer's attention [B, L, L], averaged
        over heads; row q is how much the position q (index row * w + col on the
        `config.feature_size` grid, `config.stride` input pixels apart) draws on every position."""
        self._check_input(x)
        pos = self.pos_embedding.transpose(0, 1)  # [1, L, d]
        tokens, weights = self.global_encoder.forward_with_attention(self._features(x), pos)
        return self._head(tokens), weights


__all__ = ["VARIANTS", "TransPose", "TransPoseConfig", "sine_position_embedding"]
