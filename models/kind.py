"""What a lifter declares about itself, so that callers need no special case per model.

- `output`: "seq2seq" models map a window of T frames to T poses (MixSTE, HoT-MixSTE, MotionBERT):
  one lift serves every frame of the window. "seq2frame" models predict the pose of the window's
  centre frame only (TPC-MixSTE, MHFormer): each output frame costs a whole window, centred on it,
  so a frame waits for half a window of future frames and causal emission is impossible.
- `channels`: what each input joint holds: 2 (x, y in the screen normalisation of
  `hotpose.models.keypoints.normalize_screen`) or 3 (x, y, then the 2D keypoint's confidence 0..1,
  as MotionBERT is trained).

The window length is the model's `config.frames`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from torch import Tensor


@dataclass(frozen=True)
class LifterKind:
    output: Literal["seq2seq", "seq2frame"]
    channels: int = 2

    def __post_init__(self) -> None:
        if self.channels not in (2, 3):
            raise ValueError(f"channels must be 2 (x, y) or 3 (x, y, confidence), got {self.channels}")

    @property
    def seq2frame(self) -> bool:
        return self.output == "seq2frame"

    def centre(self, frames: int) -> int:
        """The window position whose pose a seq2frame model predicts (the official (F - 1) // 2)."""
        return (frames - 1) // 2

    def future(self, frames: int) -> int:
        """The frames after the centre in a window: the future context a seq2frame model's frame waits
        for (F - 1 - centre; equal to the centre for odd F, one more for even F)."""
        return frames - 1 - self.centre(frames)


@runtime_checkable
class CentrePredictor(Protocol):
    """What a seq2frame lifter has besides its official forward."""

    def predict_centre(self, x: Tensor) -> Tensor:
        """[B, F, J, C] -> [B, J, 3]: the pose of the window's centre frame (`LifterKind.centre`)."""
        ...


SEQ2SEQ = LifterKind("seq2seq")
SEQ2FRAME = LifterKind("seq2frame")

__all__ = ["SEQ2FRAME", "SEQ2SEQ", "CentrePredictor", "LifterKind"]
