"""2D human keypoint detection.

`create_detector(name="blazepose", device=None)` returns a `Detector`: call it
with the RGB uint8 frames of one video, get per frame a list of `Person`
(`track_id`, `bbox`, `score`, `keypoints33`, and `coco17()` / `h36m17()`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from models.detector.base import BLAZEPOSE_TO_COCO, Detector, Person


def _blazepose(device: str | torch.device | None, **kw: Any) -> Detector:
    from models.detector.blazepose import BlazePose, BlazePoseConfig

    return BlazePose(BlazePoseConfig(**kw), device=device)


DETECTORS: dict[str, Callable[..., Detector]] = {"blazepose": _blazepose}


def create_detector(name: str = "blazepose", device: str | torch.device | None = None, **config: Any) -> Detector:
    """Build a detector backend by name; `config` are that backend's config fields."""
    if name not in DETECTORS:
        raise KeyError(f"unknown detector {name!r}; known: {', '.join(sorted(DETECTORS))}")
    return DETECTORS[name](device, **config)


__all__ = ["BLAZEPOSE_TO_COCO", "DETECTORS", "Detector", "Person", "create_detector"]
