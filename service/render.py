"""Drawing 2D skeletons on frames with OpenCV (no matplotlib in per-frame loops)."""

from __future__ import annotations

import cv2
import numpy as np

from models.detector.base import Person

# BlazePose-33 body edges (face omitted beyond nose-eyes-ears).
BLAZEPOSE_EDGES: tuple[tuple[int, int], ...] = (
    (0, 2), (0, 5), (2, 7), (5, 8), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
    (15, 17), (15, 19), (16, 18), (16, 20), (11, 23), (12, 24), (23, 24), (23, 25), (25, 27),
    (27, 29), (27, 31), (24, 26), (26, 28), (28, 30), (28, 32),
)  # fmt: skip
_LEFT = {11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 2, 7}


def _colour(track_id: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(track_id * 7919)
    return tuple(int(v) for v in rng.integers(80, 256, 3))  # type: ignore[return-value]


def draw_people(frame_rgb: np.ndarray, people: list[Person], min_visibility: float = 0.3) -> np.ndarray:
    """A copy of the frame with every person's skeleton, box and track id drawn."""
    out = frame_rgb.copy()
    scale = max(out.shape[:2]) / 720
    thick = max(int(round(2 * scale)), 1)
    for p in people:
        kp = p.keypoints33
        col = _colour(p.track_id)
        for a, b in BLAZEPOSE_EDGES:
            if kp[a, 2] < min_visibility or kp[b, 2] < min_visibility:
                continue
            c = (255, 140, 0) if a in _LEFT and b in _LEFT else col
            cv2.line(out, _pt(kp[a]), _pt(kp[b]), c, thick, cv2.LINE_AA)
        for j in range(33):
            if kp[j, 2] >= min_visibility:
                cv2.circle(out, _pt(kp[j]), thick + 1, (255, 255, 255), -1, cv2.LINE_AA)
        x0, y0, x1, y1 = (int(v) for v in p.bbox)
        cv2.rectangle(out, (x0, y0), (x1, y1), col, 1)
        cv2.putText(
            out,
            f"#{p.track_id} {p.score:.2f}",
            (x0, max(y0 - 4, 12)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5 * scale,
            col,
            thick,
            cv2.LINE_AA,
        )
    return out


def _pt(k: np.ndarray) -> tuple[int, int]:
    return int(round(float(k[0]))), int(round(float(k[1])))
