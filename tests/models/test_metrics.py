from __future__ import annotations

import numpy as np
import pytest

from hotpose.models.metrics import mpjpe, mpjve, p_mpjpe


def _pose(rng: np.random.Generator, t: int = 5) -> np.ndarray:
    return rng.normal(0, 0.3, (t, 17, 3))


def test_mpjpe_of_a_shifted_pose() -> None:
    gt = _pose(np.random.default_rng(0))
    shift = np.array([0.03, -0.04, 0.0])  # 50 mm
    assert mpjpe(gt + shift, gt) == pytest.approx(np.full(5, 0.05))


def test_p_mpjpe_invariant_to_rotation_scale_translation() -> None:
    rng = np.random.default_rng(1)
    gt = _pose(rng)
    a = 0.7
    r = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    pred = 1.3 * gt @ r.T + np.array([0.2, -0.1, 0.5])
    assert np.allclose(p_mpjpe(pred, gt), 0, atol=1e-9)
    assert mpjpe(pred, gt).mean() > 0.1
    noisy = gt + rng.normal(0, 0.01, gt.shape)
    assert 0 < p_mpjpe(noisy, gt).mean() <= mpjpe(noisy, gt).mean()


def test_p_mpjpe_does_not_reflect() -> None:
    gt = _pose(np.random.default_rng(2))
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    assert p_mpjpe(mirrored, gt).mean() > 0.01


def test_mpjve() -> None:
    gt = _pose(np.random.default_rng(3), t=6)
    assert np.allclose(mpjve(gt + 0.1, gt), 0)  # a constant offset has no velocity error
    jitter = gt.copy()
    jitter[2] += np.array([0.0, 0.01, 0.0])
    err = mpjve(jitter, gt)
    assert err.shape == (5,) and err[1] == pytest.approx(0.01) and err[2] == pytest.approx(0.01) and err[0] == 0
