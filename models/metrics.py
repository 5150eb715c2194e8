"""Pose error metrics, in the units of their inputs (metres here; x1000 for mm).

All take pred, gt [..., T, J, 3] (root-relative) and return one value per frame [..., T]
(MPJVE: per frame transition, [..., T-1]); average them for a figure.
"""

from __future__ import annotations

import numpy as np


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean per-joint position error."""
    err: np.ndarray = np.linalg.norm(pred - gt, axis=-1).mean(-1)
    return err


def p_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """MPJPE after the best similarity transform (rotation, uniform scale, translation) per frame."""
    mu_p = pred.mean(-2, keepdims=True)
    mu_g = gt.mean(-2, keepdims=True)
    p, g = pred - mu_p, gt - mu_g
    norm_p = np.sqrt((p**2).sum((-2, -1), keepdims=True))
    norm_g = np.sqrt((g**2).sum((-2, -1), keepdims=True))
    p, g = p / np.maximum(norm_p, 1e-12), g / np.maximum(norm_g, 1e-12)
    h = np.swapaxes(p, -1, -2) @ g  # [..., 3, 3]
    u, s, vt = np.linalg.svd(h)
    v = np.swapaxes(vt, -1, -2)
    r = v @ np.swapaxes(u, -1, -2)
    # no reflections: flip the last singular direction where det(R) < 0
    sign = np.sign(np.linalg.det(r))[..., None]
    v = np.concatenate([v[..., :2], v[..., 2:] * sign[..., None]], axis=-1)
    s = np.concatenate([s[..., :2], s[..., 2:] * sign], axis=-1)
    r = v @ np.swapaxes(u, -1, -2)
    scale = s.sum(-1)[..., None, None] * norm_g / np.maximum(norm_p, 1e-12)
    aligned = scale * (pred - mu_p) @ np.swapaxes(r, -1, -2) + mu_g
    return mpjpe(aligned, gt)


def mpjve(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean per-joint velocity error: position error of the frame-to-frame differences."""
    return mpjpe(np.diff(pred, axis=-3), np.diff(gt, axis=-3))
