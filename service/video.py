"""Reading images and videos into RGB uint8 frames (OpenCV), with clear errors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class VideoError(ValueError):
    """A file that is not a readable image or video."""


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    width: int
    height: int
    frames: int  # as the container reports it; may be 0 or approximate


def probe(path: str | Path) -> VideoInfo:
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        img = read_image(path)
        return VideoInfo(0.0, img.shape[1], img.shape[0], 1)
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(f"{path}: not a video OpenCV can decode")
        return VideoInfo(
            fps=float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            frames=max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0),
        )
    finally:
        cap.release()


def read_image(path: str | Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise VideoError(f"{path}: not an image OpenCV can decode")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def iter_frames(path: str | Path) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, time in seconds, RGB uint8 frame) for an image (one frame) or a video.

    Times come from the container's timestamps when it has them, else index / fps.
    """
    path = Path(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        yield 0, 0.0, read_image(path)
        return
    info = probe(path)
    cap = cv2.VideoCapture(str(path))
    try:
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            pos_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            t = pos_ms / 1000.0 if pos_ms > 0 or i == 0 else (i / info.fps if info.fps > 0 else float(i))
            yield i, t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            i += 1
        if i == 0:
            raise VideoError(f"{path}: no frame could be decoded (corrupt, truncated or unsupported codec)")
    finally:
        cap.release()
