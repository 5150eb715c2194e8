"""The evaluation protocol's report: overall figures and the per-skeleton-family breakdown."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import create_lifter
from models.data import Clip, eval_views
from models.evaluate import evaluate


def _clip(name: str, rig: str, frames: int, seed: int) -> Clip:
    rng = np.random.default_rng(seed)
    joints = rng.normal(0.0, 0.25, (frames, 17, 3)).astype(np.float32) + np.array([0.0, 1.0, 0.0], np.float32)
    return Clip(name, name, joints, 30.0, rig)


def test_per_rig_breakdown_adds_up_to_the_overall_mpjpe() -> None:
    torch.manual_seed(0)
    model = create_lifter("mlp", device="cpu")
    clips = [_clip("a", "tall", 30, 0), _clip("b", "short", 20, 1), _clip("c", "tall", 10, 2)]
    report = evaluate(model, eval_views(clips))
    assert report["frames_evaluated"] == 4 * 60
    for cond in ("gt2d", "noisy2d"):
        by_rig = report[cond]["by_rig"]
        assert {r: v["frames"] for r, v in by_rig.items()} == {"short": 80, "tall": 160}
        mean = sum(v["mpjpe_mm"] * v["frames"] for v in by_rig.values()) / 240
        assert mean == pytest.approx(report[cond]["mpjpe_mm"], abs=0.02)
        assert by_rig["short"]["mpjpe_mm"] != by_rig["tall"]["mpjpe_mm"]


def test_one_family_gives_no_breakdown() -> None:
    torch.manual_seed(0)
    model = create_lifter("mlp", device="cpu")
    report = evaluate(model, eval_views([_clip("a", "", 12, 0)]))
    assert "by_rig" not in report["gt2d"] and report["frames_evaluated"] == 48
