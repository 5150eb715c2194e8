"""TokenPose: top-down 2D keypoints from keypoint tokens in a Transformer.

Li et al., "TokenPose: Learning Keypoint Tokens for Human Pose Estimation", ICCV 2021
(official code: github.com/leeyegy/TokenPose). A backbone turns the person crop into a feature
map; the map is cut into patches, each patch is flattened and embedded as a visual token; 17
learnable keypoint tokens are put in front of the visual tokens and the whole sequence runs
through a pre-norm Transformer. Each keypoint token's output is mapped to one heatmap by an
MLP head (no convolutional decoder).

Variants (`VARIANTS`), all on a 256x192 crop with 64x48 heatmaps:
- `tokenpose_t`: no backbone; 16x12 patches of the RGB image itself (pure Transformer).
- `tokenpose_s_v1` / `tokenpose_s_v2`: a small CNN stem (two stride-2 convs, four bottlenecks;
  256 channels at stride 4), 4x3 / 2x2 patches of its feature map.
- `tokenpose_b`: the first three stages of HRNet-W32 (32 channels at stride 4), 4x3 patches.
- `tokenpose_l_d24`: the first three stages of HRNet-W48 (48 channels), 4x3 patches, three
  Transformers of 8 layers in a row; the keypoint tokens of all three are concatenated for the head.
- `tokenpose_l_d24_384x288`: the same network on a 384x288 crop with 6x4 patches (96x72 heatmaps).

Numerics follow the official code, which differs between variants in two places:
- attention scale: `head_dim ** -0.5` for T, B and L, but `dim ** -0.5` (the full width) for S;
- position embedding: every official config uses "sine-full": a fixed 2D sine embedding (DETR
  style) is added to the visual tokens (never to the keypoint tokens) before the first layer and
  again before every later layer of each Transformer except its first.
The sine table is an `nn.Parameter` with `requires_grad=False`, as in the official model: it
counts in the parameter total and is loaded from the checkpoint like any other weight.

Input  [B, 3, H, W]: RGB crop normalised with the ImageNet mean/std, (H, W) == config.image_size.
Output [B, J, H/4, W/4]: one heatmap per keypoint (COCO order for the official weights).

State-dict keys, shapes and order equal the official model's (`transformer.*` for T, B and L,
`features.*` for S, `pre_feature.*` for the HRNet stages), so official checkpoints load with
`strict=True`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hotpose.models.pose2d.hrnet import Bottleneck, HRNet, HRNetConfig, make_layer

Backbone = Literal["none", "stem", "hrnet_w32", "hrnet_w48"]


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenPoseConfig:
    backbone: Backbone
    patch_size: tuple[int, int]  # (height, width) of one patch, in pixels of the backbone's feature map
    dim: int = 192
    depth: int = 12  # layers of each Transformer
    transformers: int = 1  # Transformers in a row; the head sees the keypoint tokens of each (L: 3)
    heads: int = 8
    mlp_dim: int = 576  # hidden width of the Transformer's feed-forward
    head_hidden_dim: int | None = 384  # None: the heatmap head is LayerNorm + one Linear
    scale_by_head_dim: bool = True  # attention scale head_dim**-0.5; False: dim**-0.5 (official S)
    image_size: tuple[int, int] = (256, 192)  # (height, width) of the input crop
    joints: int = 17
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.dim % 4:
            raise ValueError(f"dim {self.dim} must be a multiple of 4 for the 2D sine position embedding")
        h, w = self.image_size
        if h % 4 or w % 4:
            raise ValueError(f"image_size {self.image_size} must be divisible by 4 (heatmap stride)")
        fh, fw = self.feature_size
        ph, pw = self.patch_size
        if fh % ph or fw % pw:
            raise ValueError(
                f"the {self.backbone!r} feature map {fh}x{fw} is not divisible by patch_size {self.patch_size}"
            )

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(height, width) of the output heatmaps: a quarter of the input crop."""
        return self.image_size[0] // 4, self.image_size[1] // 4

    @property
    def feature_size(self) -> tuple[int, int]:
        """(height, width) of the backbone's feature map (the image itself without a backbone)."""
        stride = 1 if self.backbone == "none" else 4
        return self.image_size[0] // stride, self.image_size[1] // stride

    @property
    def feature_channels(self) -> int:
        return {"none": 3, "stem": 256, "hrnet_w32": 32, "hrnet_w48": 48}[self.backbone]

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, columns) of visual tokens."""
        return self.feature_size[0] // self.patch_size[0], self.feature_size[1] // self.patch_size[1]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# patch sizes and widths from the official experiments/coco/tokenpose/*.yaml
# (their PATCH_SIZE and IMAGE_SIZE are (width, height); here (height, width))
VARIANTS: dict[str, TokenPoseConfig] = {
    "tokenpose_t": TokenPoseConfig(backbone="none", patch_size=(16, 12), heads=16),
    "tokenpose_s_v1": TokenPoseConfig(backbone="stem", patch_size=(4, 3), scale_by_head_dim=False),
    "tokenpose_s_v2": TokenPoseConfig(backbone="stem", patch_size=(2, 2), scale_by_head_dim=False),
    "tokenpose_b": TokenPoseConfig(backbone="hrnet_w32", patch_size=(4, 3)),
    "tokenpose_l_d24": TokenPoseConfig(
        backbone="hrnet_w48", patch_size=(4, 3), depth=8, transformers=3, heads=12, head_hidden_dim=None
    ),
    "tokenpose_l_d24_384x288": TokenPoseConfig(
        backbone="hrnet_w48",
        patch_size=(6, 4),
        depth=8,
        transformers=3,
        heads=12,
        head_hidden_dim=None,
        image_size=(384, 288),
    ),
}


# --- position embedding and patches ----------------------------------------------------------


def sine_position_embedding(rows: int, cols: int, dim: int, temperature: float = 10000.0) -> Tensor:
    """[1, rows*cols, dim]: the fixed 2D sine embedding of a row-major token grid.

    Row and column indices 1..n are scaled to (0, 2*pi]; the first dim/2 channels encode the row,
    the last dim/2 the column, each as (sin, cos) pairs of geometrically spaced frequencies.
    """
    half = dim // 2
    tau = 2 * math.pi
    eps = 1e-6  # the official normalisation divides by n + 1e-6
    y = torch.arange(1, rows + 1, dtype=torch.float32) / (rows + eps) * tau  # [rows]
    x = torch.arange(1, cols + 1, dtype=torch.float32) / (cols + eps) * tau  # [cols]
    pair = torch.div(torch.arange(half, dtype=torch.float32), 2, rounding_mode="floor")
    period = temperature ** (2 * pair / half)  # [half], equal within each (sin, cos) pair

    def encode(pos: Tensor) -> Tensor:  # [n] -> [n, half]
        angle = pos[:, None] / period
        return torch.stack((angle[:, 0::2].sin(), angle[:, 1::2].cos()), dim=2).flatten(1)

    ey = encode(y)[:, None, :].expand(rows, cols, half)
    ex = encode(x)[None, :, :].expand(rows, cols, half)
    return torch.cat((ey, ex), dim=2).reshape(1, rows * cols, dim)


def to_patches(feature: Tensor, patch: tuple[int, int]) -> Tensor:
    """[B, C, H, W] -> [B, (H/ph)*(W/pw), ph*pw*C]: row-major patches, each flattened (ph, pw, C)."""
    b, c, h, w = feature.shape
    ph, pw = patch
    x = feature.view(b, c, h // ph, ph, w // pw, pw).permute(0, 2, 4, 3, 5, 1)  # [B, h, w, ph, pw, C]
    return x.reshape(b, (h // ph) * (w // pw), ph * pw * c)


# --- the Transformer ---------------------------------------------------------------------------
# The module nesting (Residual -> PreNorm -> Attention / FeedForward, layers[i][0|1]) mirrors the
# official code only so that the state-dict keys come out the same.


class Attention(nn.Module):
    """Multi-head self-attention over [B, N, C] (qkv without bias, as in the official code)."""

    def __init__(self, dim: int, heads: int, scale: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.scale = scale
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        h = self.heads
        qkv = self.to_qkv(x).view(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4)  # [3, B, heads, N, C/heads]
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # [B, heads, N, C/heads]
        x = x.transpose(1, 2).reshape(b, n, c)  # [B, N, C]
        out: Tensor = self.to_out(x)
        return out


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x)
        return out


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fn(self.norm(x))
        return out


class Residual(nn.Module):
    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fn(x) + x
        return out


class Transformer(nn.Module):
    """Pre-norm layers over [B, J + N, C] (keypoint tokens first, then visual tokens).

    `pos` [1, N, C] is added to the visual tokens before every layer but the first ("sine-full").
    """

    def __init__(self, config: TokenPoseConfig) -> None:
        super().__init__()
        dim = config.dim
        scale = (dim // config.heads if config.scale_by_head_dim else dim) ** -0.5
        self.joints = config.joints
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    Residual(PreNorm(dim, Attention(dim, config.heads, scale, config.dropout))),
                    Residual(PreNorm(dim, FeedForward(dim, config.mlp_dim, config.dropout))),
                ]
            )
            for _ in range(config.depth)
        )

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        j = self.joints
        for i, layer in enumerate(self.layers):
            assert isinstance(layer, nn.ModuleList)
            attention, feed_forward = layer
            if i > 0:
                x = torch.cat((x[:, :j], x[:, j:] + pos), dim=1)  # [B, J + N, C]
            x = feed_forward(attention(x))
        return x


# --- keypoint tokens to heatmaps ---------------------------------------------------------------


class KeypointTokenTransformer(nn.Module):
    """Feature map [B, C, Hf, Wf] -> heatmaps [B, J, H/4, W/4] (the official `*_base` module).

    With `config.backbone == "stem"` it owns the small CNN stem too and takes the image.
    """

    def __init__(self, config: TokenPoseConfig) -> None:
        super().__init__()
        self.config = config
        dim, joints = config.dim, config.joints
        rows, cols = config.grid
        ph, pw = config.patch_size

        self.keypoint_token = nn.Parameter(torch.zeros(1, joints, dim))
        nn.init.trunc_normal_(self.keypoint_token, std=0.02)
        self.pos_embedding = nn.Parameter(sine_position_embedding(rows, cols, dim), requires_grad=False)
        self.patch_to_embedding = nn.Linear(ph * pw * config.feature_channels, dim)
        self.dropout = nn.Dropout(config.dropout)

        self.has_stem = config.backbone == "stem"
        if self.has_stem:  # registered here so the keys sit where the official ones do
            self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.conv2 = nn.Conv2d(64, 64, kernel_size=3, stride=2, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.layer1 = make_layer(Bottleneck, 64, 64, 4)  # the stem of HRNet, without its later stages

        # one Transformer is named `transformer`, several `transformer1`, `transformer2`, ...
        names = (
            ["transformer"] if config.transformers == 1 else [f"transformer{i + 1}" for i in range(config.transformers)]
        )
        for name in names:
            self.add_module(name, Transformer(config))
        self.transformer_names = names

        head_in = dim * config.transformers
        heatmap_pixels = config.heatmap_size[0] * config.heatmap_size[1]
        if config.head_hidden_dim is None:
            self.mlp_head = nn.Sequential(nn.LayerNorm(head_in), nn.Linear(head_in, heatmap_pixels))
        else:
            hidden = config.head_hidden_dim
            self.mlp_head = nn.Sequential(
                nn.LayerNorm(head_in),
                nn.Linear(head_in, hidden),
                nn.LayerNorm(hidden),
                nn.Linear(hidden, heatmap_pixels),
            )

    def stem(self, x: Tensor) -> Tensor:
        """[B, 3, H, W] -> [B, 256, H/4, W/4]."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        out: Tensor = self.layer1(x)
        return out

    def forward(self, x: Tensor) -> Tensor:
        cfg = self.config
        j = cfg.joints
        if self.has_stem:
            x = self.stem(x)  # [B, 256, H/4, W/4]
        x = self.patch_to_embedding(to_patches(x, cfg.patch_size))  # [B, N, C]
        pos = self.pos_embedding
        x = x + pos
        x = torch.cat((self.keypoint_token.expand(x.shape[0], -1, -1), x), dim=1)  # [B, J + N, C]
        x = self.dropout(x)

        keypoints = []
        for name in self.transformer_names:
            x = self.get_submodule(name)(x, pos)  # [B, J + N, C]
            keypoints.append(x[:, :j])
        tokens = torch.cat(keypoints, dim=2)  # [B, J, C * transformers]
        heatmaps: Tensor = self.mlp_head(tokens)  # [B, J, h*w]
        return heatmaps.view(x.shape[0], j, *cfg.heatmap_size)  # [B, J, h, w]


# --- the model ---------------------------------------------------------------------------------


class TokenPose(nn.Module):
    """A TokenPose variant: backbone (if any) then keypoint tokens through the Transformer."""

    def __init__(self, config: TokenPoseConfig) -> None:
        super().__init__()
        self.config = config
        self.pre_feature: HRNet | None = None
        if config.backbone in ("hrnet_w32", "hrnet_w48"):
            self.pre_feature = HRNet(HRNetConfig(width=config.feature_channels, stages=3))
        # the official model calls this module `features` in TokenPose-S, `transformer` elsewhere
        self.body_name = "features" if config.backbone == "stem" else "transformer"
        self.add_module(self.body_name, KeypointTokenTransformer(config))

    @property
    def body(self) -> KeypointTokenTransformer:
        body = self.get_submodule(self.body_name)
        assert isinstance(body, KeypointTokenTransformer)
        return body

    def forward(self, x: Tensor) -> Tensor:
        h, w = self.config.image_size
        if x.ndim != 4 or x.shape[1:] != (3, h, w):
            raise ValueError(f"expected input [B, 3, {h}, {w}] (RGB crop, ImageNet-normalised), got {list(x.shape)}")
        if self.pre_feature is not None:
            x = self.pre_feature(x)  # [B, C, H/4, W/4]
        out: Tensor = self.body(x)  # [B, J, H/4, W/4]
        return out
