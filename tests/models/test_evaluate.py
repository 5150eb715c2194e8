"""The evaluation protocol's report: overall figures and the per-skeleton-family breakdown."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hotpose.models import create_lifter
from hotpose.models.data import Clip, eval_views
from hotpose.models.evaluate import clip_group, evaluate, predict
from hotpose.models.kind import SEQ2SEQ


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
        by_subject = report[cond]["by_subject"]  # _clip names the subject after the clip
        assert {s: v["frames"] for s, v in by_subject.items()} == {"a": 120, "b": 80, "c": 40}
        mean = sum(v["mpjpe_mm"] * v["frames"] for v in by_subject.values()) / 240
        assert mean == pytest.approx(report[cond]["mpjpe_mm"], abs=0.02)


def test_one_family_gives_no_breakdown() -> None:
    torch.manual_seed(0)
    model = create_lifter("mlp", device="cpu")
    report = evaluate(model, eval_views([_clip("a", "", 12, 0)]))
    assert "by_rig" not in report["gt2d"] and "by_subject" not in report["gt2d"] and report["frames_evaluated"] == 48


def test_clip_groups_and_per_clip_figures_add_up_to_the_overall_mpjpe() -> None:
    torch.manual_seed(0)
    model = create_lifter("mlp", device="cpu")
    clips = [_clip("dance_01", "", 30, 0), _clip("dance_02", "", 20, 1), _clip("walk_01", "", 10, 2)]
    report = evaluate(model, eval_views(clips), clip_groups={"dance": ["dance_*"]}, by_clip=True)
    for cond in ("gt2d", "noisy2d"):
        by_group, by_clip = report[cond]["by_group"], report[cond]["by_clip"]
        assert {g: v["frames"] for g, v in by_group.items()} == {"dance": 200, "other": 40}
        assert {c: v["frames"] for c, v in by_clip.items()} == {"dance_01": 120, "dance_02": 80, "walk_01": 40}
        dance = (by_clip["dance_01"]["mpjpe_mm"] * 120 + by_clip["dance_02"]["mpjpe_mm"] * 80) / 200
        assert dance == pytest.approx(by_group["dance"]["mpjpe_mm"], abs=0.02)
        assert by_clip["walk_01"]["mpjpe_mm"] == by_group["other"]["mpjpe_mm"]
        mean = sum(v["mpjpe_mm"] * v["frames"] for v in by_group.values()) / 240
        assert mean == pytest.approx(report[cond]["mpjpe_mm"], abs=0.02)
    one = evaluate(model, eval_views(clips[2:]), clip_groups={"dance": ["dance_*"]})  # asked for: shown even alone
    assert one["gt2d"]["by_group"] == {"other": {"mpjpe_mm": one["gt2d"]["mpjpe_mm"], "frames": 40}}
    assert "by_clip" not in one["gt2d"]
    with pytest.raises(ValueError, match="reserved"):
        evaluate(model, eval_views(clips), clip_groups={"other": ["walk_*"]})


def test_a_clip_joins_the_first_group_that_matches_it() -> None:
    groups = {"ballet": ["d_05_0[2-9]", "d_05_1?"], "dance": ["d_*"]}
    assert [clip_group(c, groups) for c in ("d_05_01", "d_05_02", "d_05_19", "d_05_20", "walk")] == [
        "dance",
        "ballet",
        "ballet",
        "dance",
        "other",
    ]


class _WindowProbe(torch.nn.Module):
    """A lifter stand-in: joint j's output is (x of joint j, j * the frame's position in its window, 0)."""

    KIND = SEQ2SEQ

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.config = SimpleNamespace(frames=frames)
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, F, 17, 2] -> [B, F, 17, 3]
        b, f, j, _ = x.shape
        pos = torch.arange(f, dtype=x.dtype)[None, :, None] * torch.arange(j, dtype=x.dtype)[None, None, :]
        return torch.stack([x[..., 0], pos.expand(b, f, j), torch.zeros_like(pos).expand(b, f, j)], -1)


@pytest.mark.parametrize("stride", [3, 4, 9])
def test_overlapping_windows_average_every_window_over_a_frame(stride: int) -> None:
    frames, t = 9, 23
    x = np.random.default_rng(0).normal(size=(t, 17, 2)).astype(np.float32)
    y = predict(_WindowProbe(frames), x, flip=False, stride=stride)
    np.testing.assert_allclose(y[..., 0], x[..., 0] - x[:, :1, 0], atol=1e-6)  # each frame's own input
    starts = range(stride - frames, t, stride)
    for i in range(t):
        positions = [i - s for s in starts if 0 <= i - s < frames]
        assert len(positions) >= frames // stride
        np.testing.assert_allclose(y[i, :, 1], np.mean(positions) * np.arange(17), atol=1e-5)
    plain = predict(_WindowProbe(frames), x, flip=False)  # the protocol: non-overlapping windows
    np.testing.assert_allclose(plain[:, 1, 1], np.arange(t) % frames, atol=1e-6)
    np.testing.assert_allclose(predict(_WindowProbe(frames), x, flip=False, stride=frames), plain)
