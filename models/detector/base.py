"""The 2D stage's contracts: person detection, keypoints on a crop, tracking.

The 2D stage is top-down, in three parts, each a protocol with a registry in
`hotpose.models.detector` (chosen by name through settings or flags, never by importing
a class):
- `PersonDetector`: frames -> person boxes with scores;
- `KeypointModel`: a frame and crop regions (`Roi`, from a box or from the
  previous frame's keypoints) -> keypoints in the model's named layout;
- `Tracker`: people over time -> stable track ids.
`hotpose.models.detector.topdown.TopDown` puts them together; it is what callers get
from `create_detector`.

Pixel coordinates are continuous (the centre of pixel i is i + 0.5), x right,
y down, origin at the image's top-left corner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from hotpose.models.keypoints import BLAZEPOSE_TO_COCO, to_coco17, to_h36m

__all__ = [
    "BLAZEPOSE_TO_COCO",
    "Detection",
    "Detector",
    "KeypointModel",
    "Keypoints",
    "Person",
    "PersonDetector",
    "Roi",
    "Tracker",
]


@dataclass
class Person:
    """One person in one frame, as the 2D stage reports them."""

    track_id: int
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 pixels
    score: float  # the keypoint model's pose confidence, 0..1
    keypoints: np.ndarray  # [K, 3] x, y pixels, visibility 0..1, in `layout` order
    layout: str  # a `hotpose.models.keypoints.LAYOUTS` name: "blazepose33", "coco17"
    world: np.ndarray | None = None  # [K, 3] metres, origin between the hips, camera-aligned axes (if the model has it)

    def coco17(self) -> np.ndarray:
        """[17, 3] x, y, visibility in COCO-17 order."""
        return to_coco17(self.keypoints, self.layout)

    def h36m17(self) -> np.ndarray:
        """[17, 3] in Human3.6M-17 order, derived as `hotpose.models.keypoints.coco_to_h36m` documents
        (the mapping the lifter is fed at run time)."""
        return to_h36m(self.keypoints, self.layout)

    def to_dict(self) -> dict[str, object]:
        return {
            "track_id": self.track_id,
            "bbox": [round(v, 2) for v in self.bbox],
            "score": round(self.score, 4),
            "layout": self.layout,
            "keypoints": np.round(self.keypoints, 2).tolist(),
            "coco17": np.round(self.coco17(), 2).tolist(),
            "h36m17": np.round(self.h36m17(), 2).tolist(),
        }


@dataclass
class Roi:
    """A rotated rectangle in image pixels: the crop a keypoint model reads."""

    cx: float
    cy: float
    width: float
    height: float
    angle: float = 0.0  # radians, positive = the crop's x axis turns towards the image's y axis

    @property
    def size(self) -> float:
        """The longer side (the side of a square ROI)."""
        return max(self.width, self.height)

    def crop_to_image(self, pts: np.ndarray) -> np.ndarray:
        """Crop-normalised points [..., 2] in [0, 1] -> image pixels."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        x = (pts[..., 0] - 0.5) * self.width
        y = (pts[..., 1] - 0.5) * self.height
        return np.stack([self.cx + c * x - s * y, self.cy + s * x + c * y], axis=-1)

    def warp_matrix(self, out_w: int, out_h: int | None = None) -> np.ndarray:
        """2x3 matrix from output pixel (integer centres) to source pixel (integer centres),
        for cv2.warpAffine with WARP_INVERSE_MAP; the output is out_w x out_h (default square)."""
        out_h = out_w if out_h is None else out_h
        c, s = math.cos(self.angle), math.sin(self.angle)
        kx, ky = self.width / out_w, self.height / out_h
        ox, oy = 0.5 * kx - self.width / 2, 0.5 * ky - self.height / 2
        return np.array(
            [
                [c * kx, -s * ky, self.cx + c * ox - s * oy - 0.5],
                [s * kx, c * ky, self.cy + s * ox + c * oy - 0.5],
            ],
            dtype=np.float64,
        )

    def bbox(self) -> tuple[float, float, float, float]:
        """The axis-aligned box around the rotated rectangle."""
        c, s = abs(math.cos(self.angle)), abs(math.sin(self.angle))
        hw = (self.width * c + self.height * s) / 2
        hh = (self.width * s + self.height * c) / 2
        return (self.cx - hw, self.cy - hh, self.cx + hw, self.cy + hh)


@dataclass
class Detection:
    """A person proposed by a `PersonDetector`."""

    box: np.ndarray  # [4] x0, y0, x1, y1 pixels
    score: float  # 0..1
    roi: Roi | None = None  # a crop the detector itself suggests (BlazePose's alignment points), if any


@dataclass
class Keypoints:
    """A `KeypointModel`'s answer for one crop."""

    keypoints: np.ndarray  # [K, 3] x, y pixels, visibility 0..1
    score: float  # pose confidence 0..1: low means "no person in this crop"
    bbox: np.ndarray  # [4] the box of the visible keypoints, pixels
    next_roi: Roi  # where to crop this person in the next frame
    world: np.ndarray | None = None  # [K, 3] metres, if the model has world coordinates


class PersonDetector(Protocol):
    """Frames -> people's boxes. One batch: the frames may come from different videos."""

    name: str

    def detect_batch(self, frames: list[np.ndarray]) -> list[list[Detection]]: ...


class KeypointModel(Protocol):
    """Keypoints of the person in each crop. A heatmap model takes an affine crop of `Roi` at its
    input size and aspect; `roi_for` says how it wants a detected box cropped."""

    name: str
    layout: str

    def roi_for(self, detection: Detection) -> Roi: ...

    def estimate_batch(self, items: list[tuple[np.ndarray, list[Roi]]]) -> list[list[Keypoints]]: ...


class Tracker(Protocol):
    """Stable ids for the people of one video (one instance per stream)."""

    def update(self, people: list[tuple[int | None, np.ndarray]], t: float) -> list[int]: ...

    def lost(self, min_hits: int = 1) -> list[int]: ...

    def drop(self, track_id: int) -> None: ...

    def kept(self) -> set[int]: ...


class Detector(Protocol):
    """The whole 2D stage as callers use it (`create_detector`)."""

    name: str

    def __call__(self, frames: list[np.ndarray]) -> list[list[Person]]: ...

    def process(self, frame: np.ndarray, t: float | None = None) -> list[Person]: ...

    def process_image(self, frame: np.ndarray) -> list[Person]: ...

    def reset(self) -> None: ...
