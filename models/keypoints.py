"""Keypoint conventions: Human3.6M-17 and COCO-17 as data, plus the screen
normalisation and test-time flip augmentation the lifters use.

Coordinate conventions
- 2D keypoints are image pixels, x to the right, y down, origin at the
  top-left corner of the image.
- The lifters take 2D in the official screen normalisation
  `x / w * 2 - [1, h / w]`: x in [-1, 1], y in [-h/w, h/w], aspect kept.
- 3D joints are metres in the camera frame (x right, y down, z forward, as
  OpenCV), root-relative: the pelvis (joint 0) is the origin.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

H36M_JOINTS: tuple[str, ...] = (
    "pelvis",  # 0
    "r_hip",  # 1
    "r_knee",  # 2
    "r_ankle",  # 3
    "l_hip",  # 4
    "l_knee",  # 5
    "l_ankle",  # 6
    "spine",  # 7
    "thorax",  # 8
    "neck_nose",  # 9
    "head",  # 10
    "l_shoulder",  # 11
    "l_elbow",  # 12
    "l_wrist",  # 13
    "r_shoulder",  # 14
    "r_elbow",  # 15
    "r_wrist",  # 16
)

# Parent of each joint (-1 for the root); the skeleton's edges are (parent, child).
H36M_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
H36M_EDGES: tuple[tuple[int, int], ...] = tuple((p, c) for c, p in enumerate(H36M_PARENTS) if p >= 0)

H36M_LEFT: tuple[int, ...] = (4, 5, 6, 11, 12, 13)
H36M_RIGHT: tuple[int, ...] = (1, 2, 3, 14, 15, 16)
# Index permutation that swaps left and right joints (its own inverse).
_SWAP = {**dict(zip(H36M_LEFT, H36M_RIGHT, strict=True)), **dict(zip(H36M_RIGHT, H36M_LEFT, strict=True))}
H36M_FLIP_PERM: tuple[int, ...] = tuple(_SWAP.get(j, j) for j in range(17))

COCO_JOINTS: tuple[str, ...] = (
    "nose",
    "l_eye",
    "r_eye",
    "l_ear",
    "r_ear",
    "l_shoulder",
    "r_shoulder",
    "l_elbow",
    "r_elbow",
    "l_wrist",
    "r_wrist",
    "l_hip",
    "r_hip",
    "l_knee",
    "r_knee",
    "l_ankle",
    "r_ankle",
)

COCO_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10),
    (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
)  # fmt: skip

# H36M joints copied straight from one COCO joint.
_COCO_DIRECT: dict[int, int] = {
    1: 12,  # r_hip
    2: 14,  # r_knee
    3: 16,  # r_ankle
    4: 11,  # l_hip
    5: 13,  # l_knee
    6: 15,  # l_ankle
    11: 5,  # l_shoulder
    12: 7,  # l_elbow
    13: 9,  # l_wrist
    14: 6,  # r_shoulder
    15: 8,  # r_elbow
    16: 10,  # r_wrist
}


# (neck, trunk) coefficients of the derived thorax and head top: see `coco_to_h36m`
THORAX_FIT = (0.156, 0.049)
HEAD_FIT = (-0.074, 0.28)


def coco_to_h36m(coco: np.ndarray) -> np.ndarray:
    """COCO-17 [..., 17, D] -> Human3.6M-17 [..., 17, D] (D = 2 or 3; a third
    channel is a score: a joint taken directly keeps its own, pelvis and neck_nose the mean of
    their two, thorax, spine and head the lowest of the hips', shoulders' and ears' means).

    Derived joints, chosen to match the motion capture the shipped lifter is trained on
    (`shared/mocap`: there `neck_nose` is the skeleton's head joint, not the nose tip, `thorax` sits
    above the line of the shoulder joints and `head` is the top of the head). With neck = neck_nose -
    mid-shoulders and trunk = mid-shoulders - pelvis, the coefficients are a least-squares fit on the
    training split's 3D joints (every third frame); median error there / on the validation split:
    thorax 4.7 / 12.7 mm (mid-shoulders alone: 50.3 / 64.5), head 37.1 / 53.4 mm (the earlier
    neck_nose + 0.9 x neck: 112.5 / 82.9):
    - pelvis (0)    = mean of the two hips
    - thorax (8)    = mid-shoulders + 0.156 x neck + 0.049 x trunk
    - spine (7)     = mean of pelvis and thorax (as on every rig of the data)
    - neck_nose (9) = mean of the two ears (the head's centre)
    - head (10)     = neck_nose - 0.074 x neck + 0.28 x trunk (top of the head, extrapolated)
    """
    coco = np.asarray(coco)
    if coco.shape[-2] != 17:
        raise ValueError(f"expected COCO-17 keypoints [..., 17, D], got {coco.shape}")
    out = np.empty_like(coco)
    for h, c in _COCO_DIRECT.items():
        out[..., h, :] = coco[..., c, :]
    shoulders = (coco[..., 5, :] + coco[..., 6, :]) / 2
    out[..., 0, :] = (coco[..., 11, :] + coco[..., 12, :]) / 2
    out[..., 9, :] = (coco[..., 3, :] + coco[..., 4, :]) / 2
    neck, trunk = out[..., 9, :] - shoulders, shoulders - out[..., 0, :]
    out[..., 8, :] = shoulders + THORAX_FIT[0] * neck + THORAX_FIT[1] * trunk
    out[..., 7, :] = (out[..., 0, :] + out[..., 8, :]) / 2
    out[..., 10, :] = out[..., 9, :] + HEAD_FIT[0] * neck + HEAD_FIT[1] * trunk
    if coco.shape[-1] == 3:  # scores: a point derived from others is as reliable as the least of them
        least = np.minimum(np.minimum(shoulders[..., 2], out[..., 0, 2]), out[..., 9, 2])
        out[..., 7, 2] = out[..., 8, 2] = out[..., 10, 2] = least
    return out


# BlazePose's 33 landmarks -> COCO-17 (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).
BLAZEPOSE_TO_COCO: tuple[int, ...] = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)

# Keypoint layouts a 2D model may emit: name -> (joint count, indices of the COCO-17 joints in it).
LAYOUTS: dict[str, tuple[int, tuple[int, ...]]] = {
    "coco17": (17, tuple(range(17))),
    "blazepose33": (33, BLAZEPOSE_TO_COCO),
}


def to_coco17(keypoints: np.ndarray, layout: str) -> np.ndarray:
    """Keypoints [..., K, D] in a named layout (`LAYOUTS`) -> COCO-17 [..., 17, D]."""
    if layout not in LAYOUTS:
        raise KeyError(f"unknown keypoint layout {layout!r}; known: {', '.join(sorted(LAYOUTS))}")
    count, idx = LAYOUTS[layout]
    if keypoints.shape[-2] != count:
        raise ValueError(f"layout {layout} has {count} joints, got keypoints {keypoints.shape}")
    return np.asarray(keypoints)[..., list(idx), :]


def to_h36m(keypoints: np.ndarray, layout: str) -> np.ndarray:
    """Keypoints [..., K, D] in a named layout -> Human3.6M-17 (through COCO-17, `coco_to_h36m`)."""
    return coco_to_h36m(to_coco17(keypoints, layout))


def normalize_screen(xy: np.ndarray | Tensor, w: float, h: float) -> np.ndarray | Tensor:
    """Pixels [..., 2] -> official screen normalisation `xy / w * 2 - [1, h / w]`."""
    return xy[..., :2] / w * 2 - _offset(xy, w, h)


def normalize_image(xy: np.ndarray, w: float, h: float) -> np.ndarray:
    """Pixels [..., 2] of a w x h image -> screen normalisation of the square about its centre whose
    side is the image's longer one: the same as `normalize_screen` for landscape and square images;
    for portrait ones the height maps to [-1, 1] (`normalize_screen` would give [-h/w, h/w], up to
    +-1.8 on a phone video, far larger people than the lifter was trained on). The image centre
    maps to 0 either way, so the camera frame of the output is the same."""
    side = max(w, h)
    return np.asarray(normalize_screen(xy[..., :2] + np.array([(side - w) / 2, (side - h) / 2]), side, side))


def denormalize_screen(xy: np.ndarray | Tensor, w: float, h: float) -> np.ndarray | Tensor:
    """Inverse of `normalize_screen`: back to pixels."""
    return (xy[..., :2] + _offset(xy, w, h)) * w / 2


def _offset(xy: np.ndarray | Tensor, w: float, h: float) -> np.ndarray | Tensor:
    if isinstance(xy, Tensor):
        return torch.tensor([1.0, h / w], dtype=xy.dtype, device=xy.device)
    return np.array([1.0, h / w], dtype=np.asarray(xy).dtype)


def flip_pose(x: Tensor) -> Tensor:
    """Mirror a pose [..., J, D] about x = 0 (normalised 2D or camera-frame 3D)
    and swap left and right joints, so the result is again a valid pose."""
    x = x[..., list(H36M_FLIP_PERM), :].clone()
    x[..., 0] = -x[..., 0]
    return x


def flip_augment(model: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Test-time flip augmentation: average model(x) and the un-mirrored model(mirror(x)).

    x [B, T, 17, 2] normalised 2D -> [B, T, 17, 3]. Both passes run as one batch.
    """
    b = x.shape[0]
    y = model(torch.cat([x, flip_pose(x)], dim=0))  # [2B, T, 17, 3]
    return (y[:b] + flip_pose(y[b:])) / 2
