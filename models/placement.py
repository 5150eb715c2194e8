"""Where a person is: the camera-frame translation of a root-relative 3D pose (no web import).

The lifter gives each person's shape, root-relative (the pelvis at the origin); the 2D keypoints
and a pinhole camera give where that shape stands. For joints X_j (metres, camera axes: x right,
y down, z forward) and their 2D u_j (pixels) with scores w_j, the root translation T is the one
that makes X_j + T project onto u_j:

    f (X_jx + T_x) / (X_jz + T_z) + c_x = u_jx   <=>   f T_x - (u_jx - c_x) T_z = (u_jx - c_x) X_jz - f X_jx

(and the same in y), two equations per joint, linear in T: solved by weighted least squares
(`solve_root`), each joint weighted by its 2D score.

Scale and depth are one unknown to a single camera: a person whose real size differs from the
lifted skeleton's (a child lifted with adult proportions) is placed too far, or too near, by the
ratio of the sizes. `person_height_m` rescales the skeleton to a known height before solving.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The horizontal field of view assumed when a request gives neither focal length nor field of view:
# phones' main cameras (26 mm full-frame equivalent: 69 degrees across the long side) and common
# webcams (Logitech C920: 70 degrees) sit at about 70.
DEFAULT_FOV_DEG = 70.0
MIN_DEPTH_M = 0.1  # a solution nearer than this (behind the camera, or degenerate) is no solution
MIN_WEIGHT = 1e-3  # joints whose score is under this do not count


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: focal length and principal point in pixels, image size, and whether the
    focal length was assumed (`DEFAULT_FOV_DEG`) rather than given."""

    focal_px: float
    cx: float
    cy: float
    width: int
    height: int
    assumed: bool

    @classmethod
    def for_image(cls, width: int, height: int, focal_px: float | None = None, fov_deg: float | None = None) -> Camera:
        """The camera of a width x height image: `focal_px`, else the horizontal `fov_deg`, else the
        default field of view (then `assumed`); the principal point at the image centre."""
        if focal_px is not None and fov_deg is not None:
            raise ValueError("give focal_px or fov_deg, not both")
        if focal_px is not None and not (math.isfinite(focal_px) and focal_px > 0):
            raise ValueError(f"focal_px must be a positive number of pixels, got {focal_px}")
        if fov_deg is not None and not (math.isfinite(fov_deg) and 1.0 <= fov_deg <= 179.0):
            raise ValueError(f"fov_deg must be in [1, 179] degrees, got {fov_deg}")
        assumed = focal_px is None and fov_deg is None
        if focal_px is None:
            focal_px = focal_from_fov(width, fov_deg if fov_deg is not None else DEFAULT_FOV_DEG)
        return cls(float(focal_px), width / 2, height / 2, int(width), int(height), assumed)

    def to_dict(self) -> dict[str, object]:
        return {
            "focal_px": round(self.focal_px, 2), "cx": self.cx, "cy": self.cy,
            "width": self.width, "height": self.height, "assumed": self.assumed,
        }  # fmt: skip

    def project(self, points: np.ndarray) -> np.ndarray:
        """Camera-frame points [..., 3] (metres) -> pixels [..., 2]."""
        p = np.asarray(points, dtype=np.float64)
        xy = self.focal_px * p[..., :2] / p[..., 2:3]
        out: np.ndarray = xy + np.array([self.cx, self.cy])
        return out


def focal_from_fov(width: int, fov_deg: float) -> float:
    """The focal length in pixels of a horizontal field of view across `width` pixels."""
    return width / 2 / math.tan(math.radians(fov_deg) / 2)


def solve_root(
    joints: np.ndarray,
    keypoints: np.ndarray,
    weights: np.ndarray,
    camera: Camera,
    person_height_m: float | None = None,
) -> np.ndarray:
    """Root translations [..., 3] (metres, camera frame) of root-relative poses.

    joints [..., J, 3] root-relative metres; keypoints [..., J, 2] pixels; weights [..., J] (2D
    scores, >= 0). Poses with fewer than 2 usable joints, or solved behind the camera, give NaN.
    `person_height_m`: the person's height, to rescale the skeleton first (`skeleton_height`).
    """
    x = np.asarray(joints, dtype=np.float64)
    if person_height_m is not None:
        x = x * (person_height_m / np.maximum(skeleton_height(x), 1e-6))[..., None, None]
    u = np.asarray(keypoints, dtype=np.float64)[..., :2] - np.array([camera.cx, camera.cy])  # [..., J, 2]
    w = np.where(np.asarray(weights, dtype=np.float64) >= MIN_WEIGHT, weights, 0.0)  # [..., J]
    f = camera.focal_px
    # rows per joint and axis a (0: x, 1: y): A = [f e_a - u_a e_z], b = u_a X_z - f X_a
    a = np.zeros((*u.shape, 3))  # [..., J, 2, 3]
    a[..., 0, 0] = f
    a[..., 1, 1] = f
    a[..., 2] = -u
    b = u * x[..., 2:3] - f * x[..., :2]  # [..., J, 2]
    sw = np.sqrt(w)[..., None]  # [..., J, 1]
    a = (a * sw[..., None]).reshape(*u.shape[:-2], -1, 3)  # [..., 2J, 3]
    b = (b * sw).reshape(*u.shape[:-2], -1)  # [..., 2J]
    ata = np.swapaxes(a, -1, -2) @ a  # [..., 3, 3]
    atb = (np.swapaxes(a, -1, -2) @ b[..., None])[..., 0]  # [..., 3]
    usable = (w > 0).sum(-1) >= 2
    det = np.linalg.det(ata)
    ok = usable & (np.abs(det) > 1e-12)
    safe = np.where(ok[..., None, None], ata, np.eye(3))
    t = np.linalg.solve(safe, np.where(ok[..., None], atb, 0.0)[..., None])[..., 0]
    ok &= t[..., 2] > MIN_DEPTH_M
    out: np.ndarray = np.where(ok[..., None], t, np.nan)
    return out


# Human3.6M-17 chains from the head top to the feet: (head, neck, spine...) then each leg
_SPINE = (10, 9, 8, 7, 0)  # head top, nose/head, neck, spine, pelvis
_LEGS = ((0, 1, 2, 3), (0, 4, 5, 6))  # pelvis, hip, knee, ankle


def skeleton_height(joints: np.ndarray) -> np.ndarray:
    """Standing height [...] of Human3.6M-17 poses [..., 17, 3]: the head-to-pelvis chain plus the
    longer leg, summed bone by bone (so it does not depend on the pose)."""
    x = np.asarray(joints, dtype=np.float64)

    def chain(idx: tuple[int, ...]) -> np.ndarray:
        return np.linalg.norm(np.diff(x[..., list(idx), :], axis=-2), axis=-1).sum(-1)  # type: ignore[no-any-return]

    out: np.ndarray = chain(_SPINE) + np.maximum(chain(_LEGS[0]), chain(_LEGS[1]))
    return out
