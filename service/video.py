"""Decoding images and videos into RGB uint8 frames (OpenCV), with clear errors: files for clips and
`hotpose run`, encoded bytes for live frames."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
IMAGE_FORMATS = "JPEG, PNG, WebP, BMP or TIFF"
# an image's header is read before it is decoded, so that a small file of huge dimensions (a
# 30000 x 30000 PNG of one colour is a few MB) is refused before it takes gigabytes to decode;
# JPEG's size sits after its metadata segments (at most 64 KB each)
HEADER_BYTES = 4 << 20


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
        with path.open("rb") as f:
            size = image_size(f.read(HEADER_BYTES))
        if size is None:
            raise VideoError(f"{path}: not a {IMAGE_FORMATS} image")
        return VideoInfo(0.0, size[0], size[1], 1)
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


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a JPEG, PNG, WebP, BMP or TIFF image, without decoding it;
    None for anything else or a header that does not parse."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:2] == b"BM" and len(data) >= 26:
            if int.from_bytes(data[14:18], "little") == 12:  # OS/2 header: 16-bit sizes
                return int.from_bytes(data[18:20], "little"), int.from_bytes(data[20:22], "little")
            w, h = (int.from_bytes(data[k : k + 4], "little", signed=True) for k in (18, 22))
            return abs(w), abs(h)  # a negative height means rows top-down
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
    except IndexError:
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame: P, Y, X
            if i + 9 > len(data):
                return None
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        if marker == 0xDA or length < 2:  # image data before any frame header: not a valid JPEG
            return None
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    order: Literal["little", "big"] = "little" if data[:2] == b"II" else "big"
    ifd = int.from_bytes(data[4:8], order)
    count = int.from_bytes(data[ifd : ifd + 2], order)
    dims: dict[int, int] = {}
    for k in range(count):
        e = ifd + 2 + 12 * k
        tag, kind = int.from_bytes(data[e : e + 2], order), int.from_bytes(data[e + 2 : e + 4], order)
        if tag in (256, 257) and kind in (3, 4):  # ImageWidth, ImageLength as SHORT or LONG
            dims[tag] = int.from_bytes(data[e + 8 : e + 8 + (2 if kind == 3 else 4)], order)
    return (dims[256], dims[257]) if len(dims) == 2 else None


class NotAnImageError(VideoError):
    """Bytes that are not an image within the limits (a live stream's frame)."""


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Encoded image bytes (JPEG, PNG, WebP, ...) -> RGB uint8 [H, W, 3].

    The size is read from the header first: an image over `max_pixels` is refused before it is decoded.
    """
    size = image_size(data)
    if size is None:
        raise NotAnImageError("not an image (send JPEG, PNG or WebP bytes)")
    if size[0] * size[1] > max_pixels:
        raise NotAnImageError(f"{size[0]}x{size[1]} exceeds the limit of {max_pixels} pixels")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise NotAnImageError("the image does not decode (corrupt or truncated)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


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
