from __future__ import annotations

import json

import numpy as np
import pytest
from skimage import data

from models import create_lifter
from models.detector.blazepose import BlazePose, BlazePoseConfig
from service.pipeline import TrackLifter, _interp, process_frames

TINY = {"dim": 16, "depth": 2, "num_heads": 2, "frames": 27, "token_num": 9, "layer_index": 1}


@pytest.fixture(scope="module")
def tiny_lifter():  # type: ignore[no-untyped-def]
    return create_lifter("hot_mixste", device="cpu", **TINY)


def test_interp_clamps_and_is_linear() -> None:
    v = np.array([[0.0], [10.0]])
    assert np.allclose(_interp(np.array([0.0, 1.0]), v, np.array([-1.0, 0.25, 2.0])), [[0.0], [2.5], [10.0]])


@pytest.mark.parametrize("t", [1, 10, 27, 100])
def test_lift_sequence_any_length(tiny_lifter, t: int) -> None:  # type: ignore[no-untyped-def]
    lift = TrackLifter(tiny_lifter)
    x = np.random.default_rng(0).normal(0, 0.2, (t, 17, 2)).astype(np.float32)
    y = lift.lift_sequence(x)
    assert y.shape == (t, 17, 3) and np.isfinite(y).all()


def test_variable_frame_rate_is_resampled_from_timestamps(tiny_lifter) -> None:  # type: ignore[no-untyped-def]
    lift = TrackLifter(tiny_lifter)
    xy = np.tile(np.linspace(100, 200, 17)[None, :, None], (5, 1, 2))
    times = np.array([0.0, 0.02, 0.5, 0.51, 1.3])  # irregular
    y = lift(xy, times, 640, 480)
    assert y.shape == (5, 17, 3)
    # a still pose gives the same 3D at every time, whatever the spacing of the frames
    assert np.allclose(y, y[:1], atol=1e-5)


def test_clip_pipeline_end_to_end(tiny_lifter) -> None:  # type: ignore[no-untyped-def]
    img = data.astronaut()
    canvas = np.pad(img, ((0, 0), (100, 100), (0, 0)), mode="edge")
    frames = [(i, i / 10.0, np.ascontiguousarray(canvas[:, 5 * i : 5 * i + 512])) for i in range(30)]
    detector = BlazePose(BlazePoseConfig(), device="cpu")
    seq = process_frames(frames, detector, tiny_lifter, fps=10.0)
    assert len(seq.frames) == 30 and [f.index for f in seq.frames] == list(range(30))
    people = [p for f in seq.frames for p in f.people]
    assert len(people) >= 28 and len({p.track_id for p in people}) == 1
    assert all(p.joints_3d is not None and p.joints_3d.shape == (17, 3) for p in people)
    assert all(np.allclose(p.joints_3d[0], p.joints_3d[0]) for p in people)
    d = json.loads(json.dumps(seq.to_dict()))
    assert d["joint_names"][0] == "pelvis" and d["width"] == 512 and len(d["frames"][5]["people"][0]["joints_3d"]) == 17
