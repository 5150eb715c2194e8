"""People placed in the camera frame: each lifted person's root translation, smoothed over time.

`RootPlacer` follows a `PosePipeline`: it takes the frames whose 3D is final, in order, solves each
person's root (`hotpose.models.placement.solve_root`, from the detector's own 2D and the lifted
joints) and smooths it per person with the same semantics as the poses:
- clips and delayed live streams (`lag` > 0): a centred window of `lag` frames either side, so a
  frame leaves `lag` frames after its 3D was final (the future context the poses also wait for);
- causal live streams (`lag` == 0): a one-euro filter, no waiting.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hotpose.models.placement import Camera, solve_root
from hotpose.service.smoothing import OneEuroConfig, OneEuroFilter

if TYPE_CHECKING:  # pipeline.py runs the placer: the frame type only
    from hotpose.service.pipeline import FramePoses

ROOT_LAG_FRAMES = 5  # half window of the centred root smoothing (clips, delayed streams): 1/6 s at 30 fps
ROOT_FILTER = OneEuroConfig(min_cutoff=1.0, beta=0.5, d_cutoff=1.0)  # causal streams; beta per m/s
ROOT_GAP_S = 0.5  # a person unseen longer starts their smoothing afresh


@dataclass(frozen=True)
class CameraRequest:
    """What a client says about its camera and its people (all optional; see `Camera.for_image`)."""

    focal_px: float | None = None  # focal length in pixels
    fov_deg: float | None = None  # horizontal field of view, degrees
    person_height_m: float | None = None  # everyone's height, to undo the lifter's adult proportions

    def __post_init__(self) -> None:
        Camera.for_image(2, 2, self.focal_px, self.fov_deg)  # the same checks, with a clear error
        h = self.person_height_m
        if h is not None and not (math.isfinite(h) and 0.3 <= h <= 2.5):
            raise ValueError(f"person_height_m must be in [0.3, 2.5] metres, got {h}")

    def camera(self, width: int, height: int) -> Camera:
        return Camera.for_image(width, height, self.focal_px, self.fov_deg)


class RootPlacer:
    """Frames with final 3D in, in order -> the same frames out, in order, `root_3d` filled."""

    def __init__(self, request: CameraRequest, lag: int) -> None:
        self.request = request
        self.lag = lag
        self.camera: Camera | None = None
        self._held: deque[tuple[FramePoses, dict[int, np.ndarray]]] = deque()  # released last `lag` + waiting
        self._released = 0  # how many of `_held`'s frames have left (the oldest ones)
        self._filters: dict[int, OneEuroFilter] = {}

    def push(self, frames: list[FramePoses], width: int, height: int) -> list[FramePoses]:
        if self.camera is None or (self.camera.width, self.camera.height) != (width, height):
            self.camera = self.request.camera(width, height)
        out: list[FramePoses] = []
        for fp in frames:
            raw = self._solve(fp)
            if self.lag == 0:
                self._filter(fp, raw)
                out.append(fp)
                continue
            self._held.append((fp, raw))
            if len(self._held) - self._released > self.lag:
                out.append(self._release())
        return out

    def flush(self) -> list[FramePoses]:
        out = []
        while len(self._held) > self._released:
            out.append(self._release())
        return out

    def _solve(self, fp: FramePoses) -> dict[int, np.ndarray]:
        """Each person's raw root (NaN rows: unsolved); persons without 3D are left out."""
        people = [p for p in fp.people if p.joints_3d is not None and p.raw_2d is not None]
        if not people or self.camera is None:
            return {}
        joints = np.stack([p.joints_3d for p in people])  # type: ignore[misc]
        kp = np.stack([p.raw_2d for p in people])  # type: ignore[misc]
        roots = solve_root(joints, kp[..., :2], kp[..., 2], self.camera, self.request.person_height_m)
        return {p.track_id: r for p, r in zip(people, roots, strict=True)}

    def _filter(self, fp: FramePoses, raw: dict[int, np.ndarray]) -> None:
        for p in fp.people:
            r = raw.get(p.track_id)
            if r is None or not np.isfinite(r).all():
                continue
            f = self._filters.get(p.track_id)
            if f is None or f.t is None or fp.time - f.t > ROOT_GAP_S:
                f = self._filters[p.track_id] = OneEuroFilter(ROOT_FILTER)
            p.root_3d = f(fp.time, r).astype(np.float32)
        # a person unseen past the gap would start afresh anyway: their filter goes, so a long stream
        # whose people come and go (a new track id each time) keeps only the filters of those in view
        gone = [tid for tid, f in self._filters.items() if f.t is None or fp.time - f.t > ROOT_GAP_S]
        for tid in gone:
            del self._filters[tid]

    def _release(self) -> FramePoses:
        """The oldest waiting frame, its roots the triangular-weighted mean over the frames held around it."""
        centre = self._released
        fp, own = self._held[centre]
        for p in fp.people:
            if p.track_id not in own or not np.isfinite(own[p.track_id]).all():
                continue  # no root of its own this frame (no 3D, too few joints): none borrowed
            num, den = np.zeros(3), 0.0
            for j, (other, roots) in enumerate(self._held):
                r = roots.get(p.track_id)
                if r is None or not np.isfinite(r).all() or abs(other.time - fp.time) > ROOT_GAP_S:
                    continue
                w = self.lag + 1 - abs(j - centre)
                if w > 0:
                    num, den = num + w * r, den + w
            if den > 0:
                p.root_3d = (num / den).astype(np.float32)
        self._released += 1
        while self._released > self.lag:  # keep `lag` released frames as the past half of the window
            self._held.popleft()
            self._released -= 1
        return fp
