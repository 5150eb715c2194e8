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
from hotpose.models.keypoints import COCO_EDGES, H36M_EDGES, H36M_JOINTS

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


def draw_dependency(
    frame_rgb: np.ndarray, people: list[Person], maps: list[tuple[np.ndarray, np.ndarray]], alpha: float = 0.65
) -> np.ndarray:
    """TransPose's dependency maps over the frame: each `(point [2], map [H, W])` of `maps` (a keypoint and the
    attention its location pays to the image, `HeatmapPose.explain`) scaled to its own maximum and drawn as a
    heat map (the strongest of several people's where they overlap), the skeletons, and each point as a ring."""
    out = draw_people(frame_rgb, people)
    if not maps:
        return out
    heat = np.zeros(frame_rgb.shape[:2], np.float32)
    for _, m in maps:
        peak = float(m.max())
        if peak > 0:
            heat = np.maximum(heat, m.astype(np.float32) / peak)
    colour = cv2.cvtColor(cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    w = (alpha * heat)[..., None]
    out = np.asarray(out * (1 - w) + colour * w).astype(np.uint8)
    _, thick = _size(out)
    for point, _ in maps:
        centre = _pt(point)
        cv2.circle(out, centre, 4 * thick + 2, (255, 255, 255), thick + 1, cv2.LINE_AA)
        cv2.circle(out, centre, 2 * thick, (0, 0, 0), -1, cv2.LINE_AA)
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
    """The root-relative panel: an orthographic view of each skeleton about its pelvis."""

    yaw: float = 0.6  # radians about the vertical axis: shows depth
    pitch: float = 0.2
    metres: float = 2.6  # panel height in metres


@dataclass(frozen=True)
class SceneView:
    """The placed panel: a perspective viewer above and behind the camera, orbiting the scene's centre.

    `yaw` turns the viewer about the vertical (0: straight behind the camera, positive: from its
    right), `pitch` looks down from level; both in radians. The viewer's distance frames the scene
    (the camera and every placed person), and that framing and the floor follow the people with the
    time constant `smooth_s`, so neither jumps from frame to frame.
    """

    yaw: float = 0.35
    pitch: float = 0.5
    fov_deg: float = 45.0  # the viewer's field of view across the panel
    smooth_s: float = 0.5
    grid_m: float = 1.0  # ground grid spacing


_FEET = (H36M_JOINTS.index("r_ankle"), H36M_JOINTS.index("l_ankle"))
SEEN_SCORE = 0.5  # a joint whose 2D score is at least this is in view
MOSTLY_SEEN = 2 / 3  # the share of joints in view of a person "mostly seen"


def _seen(person: Any) -> int:
    """2: both feet in view; 1: most of the body; 0: neither (a head at the frame's edge, say)."""
    kp = getattr(person, "keypoints_2d", None)
    if kp is None:
        return 0
    ok = np.asarray(kp)[:, 2] >= SEEN_SCORE
    return 2 if ok[list(_FEET)].all() else int(ok.mean() >= MOSTLY_SEEN)


_HEAD = H36M_JOINTS.index("head")
_NEAR_M = 0.05  # the viewer's near plane: geometry nearer than this (or behind it) is cut
# Before anyone is placed: a floor 1.5 m below the camera, the scene a few metres in front of it.
_EMPTY_SCENE = ((-1.5, -0.5, -0.5), (1.5, 1.5, 5.0), 1.5)  # box lo, hi [3] m, floor y m
_MARGIN_M = 0.3  # around the people and the camera in the framing box


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


def placed_joints(person: Any) -> np.ndarray | None:
    """A person's joints in the camera frame [17, 3] (joints_3d + root_3d, metres), or None when they
    have no 3D or no finite root (`root_3d` is read with getattr: results from before roots lack it)."""
    root = getattr(person, "root_3d", None)
    if person.joints_3d is None or root is None:
        return None
    root = np.asarray(root, np.float64)
    if root.shape != (3,) or not np.all(np.isfinite(root)):
        return None
    joints: np.ndarray = np.asarray(person.joints_3d, np.float64) + root
    return joints


class _Viewer:
    """A pinhole viewer looking at the box lo..hi (camera-frame metres) from `view`'s angles and far
    enough that the box's bounding sphere is in front of it, zoomed and shifted so the box's corners
    fill 90% of the panel: camera-frame points -> panel pixels and their depth along its view."""

    def __init__(self, view: SceneView, lo: np.ndarray, hi: np.ndarray, size: int) -> None:
        cy, sy, cp, sp = np.cos(view.yaw), np.sin(view.yaw), np.cos(view.pitch), np.sin(view.pitch)
        forward = np.array([-sy * cp, sp, cy * cp])  # y down: positive y looks down
        right = np.array([cy, 0.0, sy])  # forward x up, up = (0, -1, 0), normalised
        down = np.cross(forward, right)
        half = np.radians(view.fov_deg) / 2
        distance = float(np.linalg.norm(hi - lo)) / 2 / np.sin(half)
        self.eye = (lo + hi) / 2 - distance * forward
        self.axes = np.stack([right, down, forward])  # [3, 3] rows: the viewer's x, y, z
        self.focal, self.principal = 1.0, np.zeros(2)
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        px = self(corners)[0]  # [8, 2] at focal 1, principal point 0
        lo_px, hi_px = px.min(0), px.max(0)
        self.focal = 0.9 * size / max(float((hi_px - lo_px).max()), 1e-9)
        self.principal = size / 2 - self.focal * (lo_px + hi_px) / 2

    def __call__(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points [N, 3] -> pixels [N, 2] (float) and depth [N] metres (<= `_NEAR_M`: not drawable)."""
        v = (points - self.eye) @ self.axes.T  # [N, 3]
        depth = v[:, 2]
        px = self.principal + self.focal * v[:, :2] / np.maximum(depth, _NEAR_M)[:, None]
        return np.clip(px, -1e5, 1e5), depth

    def segments(self, a: np.ndarray, b: np.ndarray) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """Segments a[N, 3] -> b[N, 3] cut at the near plane, as pixel end points."""
        da = (a - self.eye) @ self.axes[2]
        db = (b - self.eye) @ self.axes[2]
        keep = (da > _NEAR_M) | (db > _NEAR_M)
        a, b, da, db = a[keep], b[keep], da[keep], db[keep]
        # move the end behind the near plane onto it
        t = np.clip((_NEAR_M - da) / np.where(db != da, db - da, 1.0), 0.0, 1.0)[:, None]
        a = np.where((da < _NEAR_M)[:, None], a + t * (b - a), a)
        t = np.clip((_NEAR_M - db) / np.where(da != db, da - db, 1.0), 0.0, 1.0)[:, None]
        b = np.where((db < _NEAR_M)[:, None], b + t * (a - b), b)
        pa, _ = self(a)
        pb, _ = self(b)
        return [(_pt(p), _pt(q)) for p, q in zip(pa, pb, strict=True)]


class Renderer:
    """Frame + poses -> the frame with 2D skeletons, beside a square 3D panel of the same height.

    The panel (`placed`, the default) shows everyone with a root where they are (joints_3d + root_3d,
    camera frame) in one scene seen from `SceneView`: a ground grid under the lowest feet, the camera
    as a small frustum at the origin, each person in their track colour with their id. People lifted
    without a root are drawn root-relative in small boxes along the panel's bottom edge. With
    `placed=False`, every lifted person is drawn root-relative side by side (`PanelView`).

    `camera` (focal_px, width, height; the result's `camera`) shapes the frustum; without one it is
    the default field of view's. `fps` scales the scene's smoothing to frames.
    """

    def __init__(
        self,
        height: int,
        view: PanelView | None = None,
        *,
        placed: bool = True,
        scene: SceneView | None = None,
        camera: Any | None = None,
        fps: float = 30.0,
    ) -> None:
        self.size = height
        self.view = view or PanelView()
        self.placed = placed
        self.scene = scene or SceneView()
        self.camera = camera
        self.alpha = 1.0 - float(np.exp(-1.0 / (max(fps, 1.0) * self.scene.smooth_s)))  # per frame
        self.grid = _grid(height, self.view)  # drawn once
        self.thick = max(int(round(2 * self.size / 720)), 1)
        self._fit: tuple[np.ndarray, np.ndarray, float] | None = None  # smoothed box lo, hi, floor y
        self.drawn: dict[int, np.ndarray] = {}  # track id -> its joints' panel pixels [J, 2] in the last frame

    def __call__(self, frame_rgb: np.ndarray, people: list[Any]) -> np.ndarray:
        left = draw_h36m(frame_rgb, people)
        lifted = [p for p in people if p.joints_3d is not None]
        self.drawn = {}
        if self.placed:
            panel = self._scene(lifted, frame_rgb.shape[1], frame_rgb.shape[0])
        else:
            panel = self.grid.copy()
            self._side_by_side(panel, lifted, 0, 0, self.size, self.view)
        return np.concatenate([left, panel], axis=1)

    @property
    def floor_y(self) -> float | None:
        """Where the placed panel's ground grid is: camera y (metres, down) of the lowest feet, smoothed;
        None before anyone was placed."""
        return None if self._fit is None else self._fit[2]

    def _side_by_side(self, panel: np.ndarray, people: list[Any], x0: int, y0: int, size: int, view: PanelView) -> None:
        """Root-relative skeletons side by side, 1 m apart, in the size x size box at (x0, y0)."""
        for n, p in enumerate(people):
            shift = np.array([(n - (len(people) - 1) / 2) * 1.0, 0.0, 0.0])
            pts = np.array(_project(p.joints_3d + shift, view, size), np.float64) + (x0, y0)  # [J, 2]
            kp = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)  # every joint drawn
            _skeleton(panel, kp, H36M_EDGES, _colour(p.track_id), self.thick, 0.0)
            self.drawn[p.track_id] = pts

    # --- the placed scene ---

    def _refit(self, joints: list[np.ndarray], seen: list[int]) -> tuple[np.ndarray, np.ndarray, float]:
        """The scene's box lo, hi [3] (metres) and floor y, moved towards this frame's people and the
        camera, or kept when nobody is placed: a box grows fast (nobody walks out of the panel) and
        shrinks and moves slowly, and the floor follows the lowest feet slowly (the grid does not jump).
        The floor counts the best-seen people only (`seen`: 2 feet in view, 1 most of the body, 0 neither):
        a head at the bottom edge of the frame, placed with a guessed body, does not sink it."""
        if not joints:
            if self._fit is None:
                lo, hi, floor = _EMPTY_SCENE
                return np.array(lo), np.array(hi), floor
            return self._fit
        pts = np.concatenate([*joints, np.zeros((1, 3))])  # [N, 3] the people and the camera
        best = max(seen)
        standing = [j for j, k in zip(joints, seen, strict=True) if k == best]
        floor = max(float(j[_FEET, 1].max()) for j in standing)  # camera y is down: the lowest feet
        lo, hi = pts.min(0) - _MARGIN_M, pts.max(0) + _MARGIN_M
        hi[1] = max(hi[1], floor)
        if self._fit is None:
            self._fit = lo, hi, floor
            return self._fit
        lo0, hi0, floor0 = self._fit
        a, fast = self.alpha, max(self.alpha, 0.5)
        lo = lo0 + np.where(lo < lo0, fast, a) * (lo - lo0)
        hi = hi0 + np.where(hi > hi0, fast, a) * (hi - hi0)
        self._fit = lo, hi, floor0 + a * (floor - floor0)
        return self._fit

    def _scene(self, lifted: list[Any], width: int, height: int) -> np.ndarray:
        s, size, thick = self.scene, self.size, self.thick
        placed = [(p, j) for p in lifted if (j := placed_joints(p)) is not None]
        unplaced = [p for p in lifted if placed_joints(p) is None]
        lo, hi, floor = self._refit([j for _, j in placed], [_seen(p) for p, _ in placed])
        viewer = _Viewer(s, lo, hi, size)
        panel = np.zeros((size, size, 3), np.uint8)
        # ground grid: whole multiples of grid_m (lines stay put in the scene), around the box
        g = s.grid_m
        xs = np.arange(np.floor(lo[0] / g) - 2, np.ceil(hi[0] / g) + 3) * g
        zs = np.arange(np.floor(lo[2] / g) - 2, np.ceil(hi[2] / g) + 3) * g
        a = [np.stack([xs, np.full_like(xs, floor), np.full_like(xs, zs[0])], 1),
             np.stack([np.full_like(zs, xs[0]), np.full_like(zs, floor), zs], 1)]  # fmt: skip
        b = [np.stack([xs, np.full_like(xs, floor), np.full_like(xs, zs[-1])], 1),
             np.stack([np.full_like(zs, xs[-1]), np.full_like(zs, floor), zs], 1)]  # fmt: skip
        for pa, pb in viewer.segments(np.concatenate(a), np.concatenate(b)):
            cv2.line(panel, pa, pb, (55, 55, 55), 1, cv2.LINE_AA)
        self._frustum(panel, viewer, width, height, floor, float(np.linalg.norm(hi - lo)))
        # far people first, so the nearer ones are drawn over them
        for p, joints in sorted(placed, key=lambda pj: -float(pj[1][0, 2])):
            col = _colour(p.track_id)
            px, depth = viewer(np.concatenate([joints, [[joints[0, 0], floor, joints[0, 2]]]]))
            shadow = px[-1]
            cv2.line(panel, _pt(px[0]), _pt(shadow), tuple(c // 2 for c in col), 1, cv2.LINE_AA)
            cv2.circle(panel, _pt(shadow), thick + 2, tuple(c // 2 for c in col), -1, cv2.LINE_AA)
            kp = np.concatenate([px[:-1], (depth[:-1, None] > _NEAR_M).astype(np.float64)], axis=1)  # [J, 3]
            _skeleton(panel, kp, H36M_EDGES, col, thick, 0.5)
            self.drawn[p.track_id] = px[:-1]
            head = kp[_HEAD]
            cv2.putText(panel, f"#{p.track_id}", (int(head[0]) - 10, int(head[1]) - 8),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.45 * size / 360, col, thick, cv2.LINE_AA)  # fmt: skip
        if unplaced:  # no root: root-relative, in boxes along the bottom edge
            box = min(size // 4, size // len(unplaced))
            for n, p in enumerate(unplaced):
                x0 = n * box
                panel[size - box :, x0 : x0 + box] = 0  # over the scene's grid
                cv2.rectangle(panel, (x0, size - box), (x0 + box - 1, size - 1), (70, 70, 70), 1)
                self._side_by_side(panel, [p], x0, size - box, box, self.view)
                cv2.putText(panel, f"#{p.track_id} no root", (x0 + 4, size - box + 14),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.4, _colour(p.track_id), 1, cv2.LINE_AA)  # fmt: skip
        title = f"3D scene (m, camera frame; grid {g:g} m)"
        cv2.putText(panel, title, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (150, 150, 150), 1, cv2.LINE_AA)
        return panel

    def _frustum(
        self, panel: np.ndarray, viewer: _Viewer, width: int, height: int, floor: float, extent: float
    ) -> None:
        """The camera: a small pyramid from the origin to its image's corners (sized to the scene), and a
        line down to the floor that shows its height."""
        if self.camera is None:  # the camera people are placed with when the request says nothing of it
            from hotpose.models.placement import Camera

            self.camera = Camera.for_image(width, height)
        cam = self.camera
        d = float(np.clip(0.03 * extent, 0.15, 1.0))  # metres in front of the camera
        w, h, f = float(cam.width), float(cam.height), float(cam.focal_px)
        corners = np.array(
            [[sx * w / 2 / f * d, sy * h / 2 / f * d, d] for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
        )
        origin = np.zeros((4, 3))
        a = np.concatenate([origin, corners])
        b = np.concatenate([corners, np.roll(corners, -1, axis=0)])
        grey = (200, 200, 200)
        for pa, pb in viewer.segments(np.zeros((1, 3)), np.array([[0.0, floor, 0.0]])):
            cv2.line(panel, pa, pb, (100, 100, 100), 1, cv2.LINE_AA)
        for pa, pb in viewer.segments(a, b):
            cv2.line(panel, pa, pb, grey, 1, cv2.LINE_AA)
        top = viewer(np.array([[0.0, -h / 2 / f * d, d]]))[0][0]  # the top edge's middle: which way is up
        cv2.putText(panel, "camera", (int(top[0]) - 24, int(top[1]) - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, grey, 1,
                    cv2.LINE_AA)  # fmt: skip


def render_video(
    frames: Iterable[tuple[int, float, np.ndarray]],
    poses: dict[int, list[Any]],
    out: Path,
    fps: float,
    *,
    placed: bool = True,
    camera: Any | None = None,
) -> int:
    """Write every frame with its poses (index -> people) as an MP4; returns frames written.
    `placed`: the 3D panel shows people where they are (else root-relative); `camera`: the result's."""
    writer = None
    renderer = None
    n = 0
    try:
        for index, _, rgb in frames:
            if renderer is None:
                renderer = Renderer(rgb.shape[0], placed=placed, camera=camera, fps=fps if fps > 0 else 30.0)
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
