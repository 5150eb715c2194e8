"""The 2D detector contract shared by every backend.

A backend is called with the RGB uint8 frames [H, W, 3] of one video, in
order, and returns per frame a list of `Person`. Pixel coordinates are
continuous (the centre of pixel i is i + 0.5), x right, y down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from models.keypoints import coco_to_h36m

# BlazePose's 33 landmarks -> COCO-17 (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).
BLAZEPOSE_TO_COCO: tuple[int, ...] = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


@dataclass
class Person:
    track_id: int
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 pixels
    score: float  # the landmark model's pose confidence, 0..1
    keypoints33: np.ndarray  # [33, 3] x, y pixels, visibility 0..1 (BlazePose order)
    world33: np.ndarray | None = None  # [33, 3] metres, origin between the hips, camera-aligned axes

    def coco17(self) -> np.ndarray:
        """[17, 3] x, y, visibility in COCO-17 order."""
        return self.keypoints33[list(BLAZEPOSE_TO_COCO)]

    def h36m17(self) -> np.ndarray:
        """[17, 3] in Human3.6M-17 order, derived as `models.keypoints.coco_to_h36m` documents
        (the mapping the lifter is fed at run time)."""
        return coco_to_h36m(self.coco17())

    def to_dict(self) -> dict[str, object]:
        return {
            "track_id": self.track_id,
            "bbox": [round(v, 2) for v in self.bbox],
            "score": round(self.score, 4),
            "keypoints33": np.round(self.keypoints33, 2).tolist(),
            "coco17": np.round(self.coco17(), 2).tolist(),
            "h36m17": np.round(self.h36m17(), 2).tolist(),
        }


class Detector(Protocol):
    """What any 2D backend implements (BlazePose now; HRNet, YOLO-pose ... later)."""

    name: str

    def __call__(self, frames: list[np.ndarray]) -> list[list[Person]]: ...

    def process(self, frame: np.ndarray) -> list[Person]: ...

    def process_image(self, frame: np.ndarray) -> list[Person]: ...

    def reset(self) -> None: ...
