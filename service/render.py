"""Drawing with OpenCV (no matplotlib in per-frame loops): 2D skeletons in each model's layout for `detect2d`, and
for `hotpose run --render` the H36M-17 2D skeleton on each frame beside a 3D panel."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hotpose.models.detector.base import Person
from hotpose.models.keypoints import COCO_EDGES, H36M_EDGES

# BlazePose-33 body edges (face omitted beyond nose-eyes-ears).
BLAZEPOSE_EDGES: tuple[tuple[int, int], ...] = (
    (0, 2), (0, 5), (2, 7), (5, 8), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
    (15, 17), (15, 19), (16, 18), (16, 20), (11, 23), (12, 24), (23, 24), (23, 25), (25, 27),
    (27, 29), (27, 31), (24, 26), (26, 28), (28, 30), (28, 32),
)  # fmt: skip
_LEFT = {11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 2, 7}
_COCO_LEFT = {1, 3, 5, 7, 9, 11, 13, 15}
# layout -> (edges, left-side joints)
LAYOUT_EDGES: dict[str, tuple[tuple[tuple[int, int], ...], set[int]]] = {
    "blazepose33": (BLAZEPOSE_EDGES, _LEFT),
    "coco17": (COCO_EDGES, _COCO_LEFT),
}


def _colour(track_id: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(track_id * 7919)
    return tuple(int(v) for v in rng.integers(80, 256, 3))  # type: ignore[return-value]


def draw_people(frame_rgb: np.ndarray, people: list[Person], min_visibility: float = 0.3) -> np.ndarray:
    """A copy of the frame with every person's skeleton (in their keypoints' layout), box, track id and
    score drawn."""
    out = frame_rgb.copy()
    scale, thick = _size(out)
    for p in people:
        col = _colour(p.track_id)
        edges, left = LAYOUT_EDGES[p.layout]
        _skeleton(out, p.keypoints, edges, col, thick, min_visibility, left=left)
        x0, y0, x1, y1 = (int(v) for v in p.bbox)
        cv2.rectangle(out, (x0, y0), (x1, y1), col, 1)
        _label(out, f"#{p.track_id} {p.score:.2f}", p.bbox, col, scale, thick)
    return out


def _size(img: np.ndarray) -> tuple[float, int]:
    """Text scale and line thickness for an image: 1 and 2 px at 720 lines."""
    scale = max(img.shape[:2]) / 720
    return scale, max(int(round(2 * scale)), 1)


def _skeleton(
    out: np.ndarray,
    kp: np.ndarray,
    edges: Iterable[tuple[int, int]],
    col: tuple[int, int, int],
    thick: int,
    min_score: float,
    left: set[int] | frozenset[int] = frozenset(),
) -> None:
    """Draw keypoints kp [J, 3] (x, y pixels, score) joined by edges; left-side edges in orange."""
    for a, b in edges:
        if kp[a, 2] >= min_score and kp[b, 2] >= min_score:
            c = (255, 140, 0) if a in left and b in left else col
            cv2.line(out, _pt(kp[a]), _pt(kp[b]), c, thick, cv2.LINE_AA)
    for j in range(len(kp)):
        if kp[j, 2] >= min_score:
            cv2.circle(out, _pt(kp[j]), thick + 1, (255, 255, 255), -1, cv2.LINE_AA)


def _label(out: np.ndarray, text: str, bbox: Any, col: tuple[int, int, int], scale: float, thick: int) -> None:
    x0, y0 = int(bbox[0]), int(bbox[1])
    cv2.putText(out, text, (x0, max(y0 - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, col, thick, cv2.LINE_AA)


def _pt(k: np.ndarray) -> tuple[int, int]:
    return int(round(float(k[0]))), int(round(float(k[1])))


# --- 3D results: the 2D skeleton on the frame and a 3D panel beside it ---------------------


def draw_h36m(frame_rgb: np.ndarray, people: list[Any], min_score: float = 0.2) -> np.ndarray:
    """A copy of the frame with each `PersonPose`'s H36M-17 2D skeleton and track id."""
    out = frame_rgb.copy()
    scale, thick = _size(out)
    for p in people:
        col = _colour(p.track_id)
        _skeleton(out, p.keypoints_2d, H36M_EDGES, col, thick, min_score)
        _label(out, f"#{p.track_id}", p.bbox, col, scale, thick)
    return out


@dataclass(frozen=True)
class PanelView:
    yaw: float = 0.6  # radians about the vertical axis: shows depth
    pitch: float = 0.2
    metres: float = 2.6  # panel height in metres


def _grid(size: int, view: PanelView) -> np.ndarray:
    panel = np.zeros((size, size, 3), np.uint8)
    ticks = np.linspace(-1.0, 1.0, 5)
    for t in ticks:  # floor 1 m below the pelvis (camera y is down)
        for a, b in (((t, 1.0, -1.0), (t, 1.0, 1.0)), ((-1.0, 1.0, t), (1.0, 1.0, t))):
            pa, pb = _project(np.array([a, b]), view, size)
            cv2.line(panel, pa, pb, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(panel, "3D (m, root-relative)", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (150, 150, 150), 1)
    return panel


def _project(points: np.ndarray, view: PanelView, size: int) -> list[tuple[int, int]]:
    """Camera-frame points [N, 3] (y down) -> panel pixels, orthographic, rotated by the view."""
    x, y, z = points[:, 0], -points[:, 1], -points[:, 2]
    cy, sy = np.cos(view.yaw), np.sin(view.yaw)
    x1, z1 = cy * x + sy * z, -sy * x + cy * z
    cp, sp = np.cos(view.pitch), np.sin(view.pitch)
    y2 = cp * y - sp * z1
    s = size / view.metres
    u = size / 2 + s * x1
    v = size / 2 - s * y2
    return [(int(round(a)), int(round(b))) for a, b in zip(u, v, strict=True)]


class Renderer:
    """Frame + poses -> the frame with 2D skeletons, beside a square 3D panel of the same height."""

    def __init__(self, height: int, view: PanelView | None = None) -> None:
        self.size = height
        self.view = view or PanelView()
        self.grid = _grid(height, self.view)  # drawn once

    def __call__(self, frame_rgb: np.ndarray, people: list[Any]) -> np.ndarray:
        left = draw_h36m(frame_rgb, people)
        panel = self.grid.copy()
        lifted = [p for p in people if p.joints_3d is not None]
        thick = max(int(round(2 * self.size / 720)), 1)
        for n, p in enumerate(lifted):
            shift = np.array([(n - (len(lifted) - 1) / 2) * 1.0, 0.0, 0.0])  # side by side, 1 m apart
            pts = np.array(_project(p.joints_3d + shift, self.view, self.size), np.float64)  # [J, 2]
            kp = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)  # every joint drawn
            _skeleton(panel, kp, H36M_EDGES, _colour(p.track_id), thick, 0.0)
        return np.concatenate([left, panel], axis=1)


def render_video(
    frames: Iterable[tuple[int, float, np.ndarray]], poses: dict[int, list[Any]], out: Path, fps: float
) -> int:
    """Write every frame with its poses (index -> people) as an MP4; returns frames written."""
    writer = None
    renderer = None
    n = 0
    try:
        for index, _, rgb in frames:
            if renderer is None:
                renderer = Renderer(rgb.shape[0])
            img = renderer(rgb, poses.get(index, []))
            if writer is None:
                h, w = img.shape[:2]
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")  # type: ignore[attr-defined]
                writer = cv2.VideoWriter(str(out), fourcc, fps if fps > 0 else 30.0, (w, h))
                if not writer.isOpened():
                    raise OSError(f"cannot write {out} (OpenCV has no mp4v encoder here?)")
            writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            n += 1
    finally:
        if writer is not None:
            writer.release()
    return n
