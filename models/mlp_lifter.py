"""Per-frame baseline lifter: an MLP in the style of Martinez et al., "A simple yet
effective baseline for 3d human pose estimation", ICCV 2017.

No temporal context: every frame is lifted on its own, so it shows what the
video lifters gain from time (accuracy, and above all smoothness / velocity).
Input [B, T, J, 2] screen-normalised -> output [B, T, J, 3] root-relative.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

from torch import Tensor, nn

from hotpose.models.kind import SEQ2SEQ, LifterKind


@dataclass(frozen=True)
class MLPConfig:
    hidden: int = 1024
    blocks: int = 2
    dropout: float = 0.25
    frames: int = 243  # only checked at the input: the model itself works frame by frame
    joints: int = 17

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class _Residual(nn.Module):
    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, dim), nn.LayerNorm(dim), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(dim, dim), nn.LayerNorm(dim), nn.ReLU(), nn.Dropout(dropout),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = x + self.net(x)
        return out


class MLPLifter(nn.Module):
    KIND: ClassVar[LifterKind] = SEQ2SEQ  # frame by frame, but it takes and returns whole windows

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        j, h = config.joints, config.hidden
        self.inp = nn.Linear(2 * j, h)
        self.blocks = nn.Sequential(*[_Residual(h, config.dropout) for _ in range(config.blocks)])
        self.out = nn.Linear(h, 3 * j)

    def forward(self, x: Tensor) -> Tensor:
        cfg = self.config
        if x.ndim != 4 or x.shape[1:] != (cfg.frames, cfg.joints, 2):
            raise ValueError(f"expected input [B, {cfg.frames}, {cfg.joints}, 2], got {list(x.shape)}")
        b, t, j, _ = x.shape
        y: Tensor = self.out(self.blocks(self.inp(x.reshape(b, t, 2 * j))))  # [B, T, 3J]
        y = y.view(b, t, j, 3)
        return y - y[:, :, :1]  # root-relative
