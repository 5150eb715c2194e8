"""HRNet: the high-resolution backbone that TransPose-H and TokenPose-B/L keep the first stages of.

Sun et al., "Deep High-Resolution Representation Learning for Human Pose Estimation", CVPR 2019.
A stride-4 stem (two 3x3 stride-2 convolutions and four Bottlenecks, `layer1`) is followed by
stages of parallel branches: branch b runs at stride 4 * 2**b with `width * 2**b` channels, every
module of a stage runs BasicBlocks on each branch and then fuses all branches into each
(upsampling by 1x1 conv + BN + nearest resize, downsampling by strided 3x3 convs), and a
transition before each stage opens one new, lower-resolution branch.

What matters for the official checkpoints:
- Child names and order equal the official `pose_hrnet.py` (as TransPose and TokenPose copy it):
  conv1, bn1, conv2, bn2, layer1, transition1, stage2, transition2, stage3[, transition3, stage4].
  Where the official code keeps `None` (the diagonal of the fuse layers, a transition whose
  branch keeps its channels) this module keeps a parameter-free `nn.Identity`, so the
  state-dict keys are the same.
- The last kept stage fuses into the highest-resolution branch only (the official
  `multi_scale_output=False` of its last module), so `HRNet.forward` returns one map.
- BatchNorm everywhere with PyTorch's defaults (momentum 0.1, eps 1e-5), as the official code.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

# Modules per stage in the official HRNet-W32/W48 pose configs (stage 1 is `layer1`).
STAGE_MODULES = {2: 1, 3: 4, 4: 3}


@dataclass(frozen=True)
class HRNetConfig:
    width: int = 32  # channels of the highest-resolution branch: 32 (W32) or 48 (W48)
    stages: int = 3  # stages kept, 2..4; TransPose-H and TokenPose-B/L keep 3
    blocks: int = 4  # BasicBlocks per branch in every module

    def __post_init__(self) -> None:
        if self.stages not in STAGE_MODULES:
            raise ValueError(f"HRNet stages must be one of {sorted(STAGE_MODULES)}, got {self.stages}")
        if self.width <= 0 or self.blocks <= 0:
            raise ValueError(f"HRNet width and blocks must be positive, got {self.width} and {self.blocks}")

    def branch_channels(self, stage: int) -> list[int]:
        """Channels of the branches of `stage` (2..4), highest resolution first."""
        return [self.width * 2**b for b in range(stage)]


# --- residual blocks -------------------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual; the stride (if any) is on the first."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        y: Tensor = self.relu(out + residual)
        return y


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, as torchvision's ResNet v1.5), 1x1 expand by 4."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, channels * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        y: Tensor = self.relu(out + residual)
        return y


def make_layer(
    block: type[BasicBlock] | type[Bottleneck], in_channels: int, channels: int, blocks: int, stride: int = 1
) -> nn.Sequential:
    """`blocks` residual blocks; the first changes stride/channels through a 1x1 conv + BN shortcut.

    Output channels: channels * block.expansion. Keys: `0.conv1 ... 0.downsample.{0,1}, 1.conv1 ...`.
    """
    out_channels = channels * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
        )
    layers: list[nn.Module] = [block(in_channels, channels, stride, downsample)]
    layers += [block(out_channels, channels) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


# --- multi-resolution parts ------------------------------------------------------


def _conv_bn(in_channels: int, out_channels: int, stride: int, kernel: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """BasicBlocks on every branch, then each output branch i sums all branches resampled to it.

    forward: list of N maps, branch b [B, C_b, H / 2**b, W / 2**b] -> the same list (or only
    branch 0 when `multi_scale_output` is False), each followed by ReLU after the sum.
    Fuse j -> i: j == i identity; j > i 1x1 conv + BN + nearest upsample by 2**(j-i);
    j < i (i-j) stride-2 3x3 conv + BN, with ReLU after all but the last.
    """

    def __init__(self, channels: list[int], blocks: int, multi_scale_output: bool = True) -> None:
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(make_layer(BasicBlock, c, c, blocks) for c in channels)
        self.fuse_layers: nn.ModuleList | None = None
        if n > 1:
            rows = []
            for i in range(n if multi_scale_output else 1):
                row: list[nn.Module] = []
                for j in range(n):
                    if j > i:
                        row.append(
                            nn.Sequential(
                                nn.Conv2d(channels[j], channels[i], 1, bias=False),
                                nn.BatchNorm2d(channels[i]),
                                nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                            )
                        )
                    elif j == i:
                        row.append(nn.Identity())
                    else:
                        steps = [_conv_bn(channels[j], channels[j], 2, 3, relu=True) for _ in range(i - j - 1)]
                        steps.append(_conv_bn(channels[j], channels[i], 2, 3, relu=False))
                        row.append(nn.Sequential(*steps))
                rows.append(nn.ModuleList(row))
            self.fuse_layers = nn.ModuleList(rows)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        if self.fuse_layers is None:
            return xs
        out = []
        for row in self.fuse_layers:
            assert isinstance(row, nn.ModuleList)
            y = row[0](xs[0])
            for j in range(1, len(xs)):
                y = y + row[j](xs[j])  # summed in branch order, as the official code
            out.append(self.relu(y))
        return out


def make_transition(prev: list[int], cur: list[int]) -> nn.ModuleList:
    """Maps the previous stage's branches to the next stage's: branch i < len(prev) keeps its map
    (3x3 conv + BN + ReLU when the channels change, identity otherwise); each new branch is made
    from the lowest-resolution previous map by stride-2 3x3 conv + BN + ReLU steps."""
    layers: list[nn.Module] = []
    for i, c in enumerate(cur):
        if i < len(prev):
            layers.append(nn.Identity() if c == prev[i] else _conv_bn(prev[i], c, 1, 3, relu=True))
        else:
            steps = [
                _conv_bn(prev[-1], c if k == i - len(prev) else prev[-1], 2, 3, relu=True)
                for k in range(i + 1 - len(prev))
            ]
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


def apply_transition(transition: nn.ModuleList, xs: list[Tensor]) -> list[Tensor]:
    """Branch i of the next stage from branch i (kept branches) or from the last branch (new ones)."""
    return [layer(xs[i] if i < len(xs) else xs[-1]) for i, layer in enumerate(transition)]


# --- the backbone ----------------------------------------------------------------


class HRNet(nn.Module):
    """HRNet's first `config.stages` stages.

    forward: [B, 3, H, W] (RGB, ImageNet mean/std) -> [B, width, H/4, W/4], the highest-resolution
    branch after the last kept stage (H and W divisible by 4 * 2**(stages-1) keep every branch aligned).
    """

    def __init__(self, config: HRNetConfig) -> None:
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_layer(Bottleneck, 64, 64, 4)  # [B, 256, H/4, W/4]
        prev = [64 * Bottleneck.expansion]
        for stage in range(2, config.stages + 1):
            channels = config.branch_channels(stage)
            modules = STAGE_MODULES[stage]
            last_stage = stage == config.stages
            self.add_module(f"transition{stage - 1}", make_transition(prev, channels))
            stage_modules = [
                HighResolutionModule(channels, config.blocks, multi_scale_output=not (last_stage and m == modules - 1))
                for m in range(modules)
            ]
            self.add_module(f"stage{stage}", nn.Sequential(*stage_modules))
            prev = channels
        self.out_channels = config.width

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # [B, 64, H/2, W/2]
        x = self.relu(self.bn2(self.conv2(x)))  # [B, 64, H/4, W/4]
        xs = [self.layer1(x)]  # [[B, 256, H/4, W/4]]
        for transition, stage in self._stages():
            xs = apply_transition(transition, xs)  # branch b: [B, width * 2**b, H/4 / 2**b, W/4 / 2**b]
            xs = stage(xs)
        out: Tensor = xs[0]  # [B, width, H/4, W/4]
        return out

    def _stages(self) -> list[tuple[nn.ModuleList, nn.Sequential]]:
        """(transition{s-1}, stage{s}) for the kept stages s = 2.., in order."""
        pairs = []
        for s in range(2, self.config.stages + 1):
            transition, stage = self.get_submodule(f"transition{s - 1}"), self.get_submodule(f"stage{s}")
            assert isinstance(transition, nn.ModuleList) and isinstance(stage, nn.Sequential)
            pairs.append((transition, stage))
        return pairs
