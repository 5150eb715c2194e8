"""A laptop camera as an iterable of `(t, RGB image)` for `PoseClient.stream` (needs OpenCV:
`pip install 'hotpose-client[webcam]'`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def webcam(
    device: int | str = 0, *, width: int | None = 1280, height: int | None = 720, max_frames: int | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield `(t, image)` from a camera: t seconds on the capture clock, image H x W x 3 RGB uint8.

    `device` is an OpenCV camera index or a video path/URL. Stops when the camera ends, after
    `max_frames`, or when the consumer stops iterating (the camera is released).
    """
    try:
        import cv2
    except ImportError:
        raise ImportError("webcam() needs OpenCV: pip install 'hotpose-client[webcam]'") from None
    cap: Any = cv2.VideoCapture(device)
    if not cap.isOpened():
        raise OSError(f"cannot open camera {device!r}")
    if width and height and isinstance(device, int):
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
    t0 = time.monotonic()
    n = 0
    try:
        while max_frames is None or n < max_frames:
            ok, bgr = cap.read()
            if not ok:
                log.info("camera %r: no more frames after %d", device, n)
                return
            n += 1
            yield time.monotonic() - t0, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
