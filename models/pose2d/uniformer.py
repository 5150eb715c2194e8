"""UniFormer: a top-down 2D keypoint model (UniFormer backbone + SimpleBaseline heatmap head).

Li et al., "UniFormer: Unified Transformer for Efficient Spatiotemporal Representation Learning",
ICLR 2022 (official code: github.com/Sense-X/UniFormer, `pose_estimation/`).

The backbone has four stages at strides 4, 8, 16 and 32; each opens with a patch embedding (a strided
convolution whose output is layer-normalised over channels). Every block first adds a depthwise 3x3
convolution of its input (dynamic position encoding). The two shallow stages use local relation
aggregation (`LocalBlock`, the official `CBlock`): BatchNorm, then a 1x1 - depthwise 5x5 - 1x1
convolution stack in place of attention, and a convolutional MLP. The two deep stages use global
relation aggregation (`GlobalBlock`, the official `SABlock`): pre-norm multi-head self-attention over
all H*W tokens of the stage. The released COCO pose configurations (`exp/top_down_*_global_*`) set
`windows=False, hybrid=False`, so stage 3 attends globally, as implemented here; the windowed
variants are not.

The head is mmpose's `TopDownSimpleHead`: three stride-2 transposed convolutions (256 channels,
kernel 4, BatchNorm, ReLU) and a 1x1 convolution to the joint heatmaps, so the heatmaps are at a
quarter of the input resolution.

Input  [B, 3, H, W]: an RGB person crop normalised with the ImageNet mean/std; H and W multiples of
         32 (the trained sizes are `config.image_size`, (256, 192) or (384, 288)).
Output [B, J, H/4, W/4]: one heatmap per COCO keypoint.

State-dict keys, shapes and order equal an mmpose checkpoint of the official model (`backbone.*`,
`keypoint_head.*`), so official checkpoints load with `strict=True`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from hotpose.models.layers import Attention, DropPath, Mlp

StageKind = Literal["local", "global"]


@dataclass(frozen=True)
class UniFormerConfig:
    depths: tuple[int, int, int, int] = (3, 4, 8, 3)
    embed_dims: tuple[int, int, int, int] = (64, 128, 320, 512)
    head_dim: int = 64  # attention heads per stage = embed_dim // head_dim
    mlp_ratio: float = 4.0
    stage_kinds: tuple[StageKind, StageKind, StageKind, StageKind] = ("local", "local", "global", "global")
    drop_path_rate: float = 0.2  # training only (linear over all blocks); identity at inference
    image_size: tuple[int, int] = (256, 192)  # (height, width) the weights were trained at
    joints: int = 17
    deconv_channels: int = 256
    num_deconv: int = 3

    def __post_init__(self) -> None:
        for dim, kind in zip(self.embed_dims, self.stage_kinds, strict=True):
            if kind == "global" and dim % self.head_dim:
                raise ValueError(f"embed dim {dim} is not divisible by head_dim {self.head_dim}")
        h, w = self.image_size
        if h % 32 or w % 32:
            raise ValueError(f"image_size {self.image_size} must be multiples of 32 (the backbone's stride)")

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(height, width) of the heatmaps for an input of `image_size`."""
        h, w = self.image_size
        return h // 4, w // 4

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# --- backbone ---------------------------------------------------------------------


def channel_norm(norm: nn.LayerNorm, x: Tensor) -> Tensor:
    """LayerNorm over the channels of a feature map [B, C, H, W]."""
    out: Tensor = norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # [B, C, H, W]
    return out


class PatchEmbed(nn.Module):
    """Strided non-overlapping convolution, then LayerNorm (eps 1e-5) over channels."""

    def __init__(self, in_dim: int, dim: int, patch: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Conv2d(in_dim, dim, kernel_size=patch, stride=patch)

    def forward(self, x: Tensor) -> Tensor:
        return channel_norm(self.norm, self.proj(x))  # [B, C, H/p, W/p]


class ConvMlp(nn.Module):
    """The MLP of a local block as 1x1 convolutions on [B, C, H, W]."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden_dim, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc2(self.act(self.fc1(x)))
        return out


class LocalBlock(nn.Module):
    """Local MHRA: the token affinity is a learned depthwise 5x5 kernel; works on [B, C, H, W]."""

    def __init__(self, dim: int, mlp_hidden_dim: int, drop_path: float) -> None:
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, dim, 1)  # value projection
        self.conv2 = nn.Conv2d(dim, dim, 1)  # output projection
        self.attn = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)  # the local aggregation
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, mlp_hidden_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pos_embed(x)
        x = x + self.drop_path(self.conv2(self.attn(self.conv1(self.norm1(x)))))
        out: Tensor = x + self.drop_path(self.mlp(self.norm2(x)))
        return out


class GlobalBlock(nn.Module):
    """Global MHRA: pre-norm self-attention over all H*W tokens; takes and returns [B, C, H, W]."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden_dim: int, drop_path: float) -> None:
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias=True)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_hidden_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pos_embed(x)
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)  # [B, H*W, C]
        t = t + self.drop_path(self.attn(self.norm1(t)))
        t = t + self.drop_path(self.mlp(self.norm2(t)))
        out: Tensor = t.transpose(1, 2).reshape(b, c, h, w)  # [B, C, H, W]
        return out


class UniFormerBackbone(nn.Module):
    """[B, 3, H, W] -> [B, C4, H/32, W/32] (C4 = embed_dims[3])."""

    def __init__(self, config: UniFormerConfig) -> None:
        super().__init__()
        d1, d2, d3, d4 = config.embed_dims
        self.patch_embed1 = PatchEmbed(3, d1, 4)
        self.patch_embed2 = PatchEmbed(d1, d2, 2)
        self.patch_embed3 = PatchEmbed(d2, d3, 2)
        self.patch_embed4 = PatchEmbed(d3, d4, 2)
        rates = torch.linspace(0, config.drop_path_rate, sum(config.depths)).tolist()
        starts = [sum(config.depths[:i]) for i in range(4)]
        stages = [_stage(config, i, rates[starts[i] : starts[i] + config.depths[i]]) for i in range(4)]
        # The official model layer-normalises every stage's output (multi-scale features); the heatmap
        # head reads the last one only, so norm1..norm3 exist for strict loading but are not computed.
        self.blocks1 = stages[0]
        self.norm1 = nn.LayerNorm(d1, eps=1e-6)
        self.blocks2 = stages[1]
        self.norm2 = nn.LayerNorm(d2, eps=1e-6)
        self.blocks3 = stages[2]
        self.norm3 = nn.LayerNorm(d3, eps=1e-6)
        self.blocks4 = stages[3]
        self.norm4 = nn.LayerNorm(d4, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        stages = (
            (self.patch_embed1, self.blocks1),  # stride 4
            (self.patch_embed2, self.blocks2),  # stride 8
            (self.patch_embed3, self.blocks3),  # stride 16
            (self.patch_embed4, self.blocks4),  # stride 32
        )
        for embed, blocks in stages:
            x = embed(x)  # [B, C_i, H/s_i, W/s_i]
            for block in blocks:
                x = block(x)
        return channel_norm(self.norm4, x)  # [B, C4, H/32, W/32]


def _stage(config: UniFormerConfig, i: int, drop_path_rates: list[float]) -> nn.ModuleList:
    dim = config.embed_dims[i]
    hidden = int(dim * config.mlp_ratio)
    if config.stage_kinds[i] == "local":
        return nn.ModuleList(LocalBlock(dim, hidden, rate) for rate in drop_path_rates)
    heads = dim // config.head_dim
    return nn.ModuleList(GlobalBlock(dim, heads, hidden, rate) for rate in drop_path_rates)


# --- head ---------------------------------------------------------------------------


class SimpleHead(nn.Module):
    """mmpose's TopDownSimpleHead: [B, C, h, w] -> [B, J, h * 2**num_deconv, w * 2**num_deconv]."""

    def __init__(self, in_dim: int, config: UniFormerConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(config.num_deconv):
            # kernel 4, stride 2, padding 1, output_padding 0: exactly doubles h and w
            layers.append(nn.ConvTranspose2d(in_dim, config.deconv_channels, 4, stride=2, padding=1, bias=False))
            layers.append(nn.BatchNorm2d(config.deconv_channels))  # eps 1e-5, momentum 0.1 (mmpose's BN)
            layers.append(nn.ReLU(inplace=True))
            in_dim = config.deconv_channels
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(in_dim, config.joints, 1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.final_layer(self.deconv_layers(x))
        return out


# --- the model ----------------------------------------------------------------------


class UniFormerPose(nn.Module):
    def __init__(self, config: UniFormerConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = UniFormerBackbone(config)
        self.keypoint_head = SimpleHead(config.embed_dims[3], config)
        self.apply(_init_weights)
        for m in self.keypoint_head.modules():
            if isinstance(m, nn.ConvTranspose2d | nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % 32 or x.shape[3] % 32:
            raise ValueError(
                f"UniFormerPose expects [B, 3, H, W] with H and W multiples of 32 "
                f"(trained at {self.config.image_size}), got {list(x.shape)}"
            )
        out: Tensor = self.keypoint_head(self.backbone(x))  # [B, J, H/4, W/4]
        return out


def _init_weights(m: nn.Module) -> None:
    # The official initialisation: truncated normal (std 0.02) for linear layers, unit LayerNorms;
    # convolutions keep PyTorch's default, the head's are re-drawn with std 0.001 above.
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


# The official COCO configs (exp/top_down_{size}_global_{small,base}). The 384x288 models have the
# same architecture and parameters as their 256x192 siblings; only the crop size (and, for base,
# the training drop-path rate) differ.
VARIANTS: dict[str, UniFormerConfig] = {
    "uniformer_s_256x192": UniFormerConfig(),
    "uniformer_b_256x192": UniFormerConfig(depths=(5, 8, 20, 7), drop_path_rate=0.4),
    "uniformer_s_384x288": UniFormerConfig(image_size=(384, 288)),
    "uniformer_b_384x288": UniFormerConfig(depths=(5, 8, 20, 7), drop_path_rate=0.5, image_size=(384, 288)),
}

__all__ = ["VARIANTS", "UniFormerConfig", "UniFormerPose"]
