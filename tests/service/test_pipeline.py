from __future__ import annotations

import json

import numpy as np
import pytest
from skimage import data

from hotpose.models import create_lifter
from hotpose.models.detector import Detector, create_detector
from hotpose.service.lifting import LiftPolicy, lift_root_relative
from hotpose.service.pipeline import PosePipeline, process_frames
from hotpose.service.smoothing import OneEuroConfig, OneEuroFilter
from tests.conftest import TINY


@pytest.fixture(scope="module")
def tiny_lifter():  # type: ignore[no-untyped-def]
    return create_lifter("hot_mixste", device="cpu", **TINY)


@pytest.fixture(scope="module")
def detector() -> Detector:
    return create_detector(device="cpu")  # the default 2D stage


def test_lift_windows_shapes_and_flip(tiny_lifter) -> None:  # type: ignore[no-untyped-def]
    x = np.random.default_rng(0).normal(0, 0.2, (3, 27, 17, 2)).astype(np.float32)
    y = lift_root_relative(tiny_lifter, x)
    assert y.shape == (3, 27, 17, 3) and np.isfinite(y).all()
    assert not np.allclose(y, lift_root_relative(tiny_lifter, x, flip=False))


def test_a_still_pose_lifts_the_same_at_any_frame_spacing(tiny_lifter) -> None:  # type: ignore[no-untyped-def]
    from hotpose.models.detector import Person

    kp33 = np.zeros((33, 3), np.float32)
    kp33[:, 0] = np.linspace(200, 300, 33)
    kp33[:, 1] = np.linspace(100, 400, 33)
    kp33[:, 2] = 1.0
    person = Person(1, (200, 100, 300, 400), 0.9, keypoints=kp33, layout="blazepose33", world=np.zeros((33, 3)))
    pipe = PosePipeline(
        lambda f, t: [person], lambda w: lift_root_relative(tiny_lifter, w), 27, LiftPolicy.clip(27, max_gap_s=3.0)
    )
    out = []
    for i, t in enumerate([0.0, 0.02, 0.5, 0.51, 1.3]):  # irregular
        out += pipe.push_people(i, t, [person], 640, 480)
    out += pipe.flush()
    y = np.stack([f.people[0].joints_3d for f in out])
    assert y.shape == (5, 17, 3) and np.allclose(y, y[:1], atol=1e-5)


def test_one_euro_smooths_jitter_and_follows_motion() -> None:
    rng = np.random.default_rng(0)
    f = OneEuroFilter(OneEuroConfig())
    still = [f(i / 30, np.array([100.0]) + rng.normal(0, 2, 1)) for i in range(90)]
    assert np.std(still[30:]) < 1.0  # input jitter sigma 2 px
    g = OneEuroFilter(OneEuroConfig())
    moving = [g(i / 30, np.array([10.0 * i])) for i in range(60)]
    assert abs(moving[-1][0] - 590) < 30  # follows a 300 px/s move with little lag


def test_a_person_back_after_a_gap_gets_a_fresh_filter() -> None:
    from hotpose.models.detector import Person

    def at(x: float) -> Person:
        kp33 = np.zeros((33, 3), np.float32)
        kp33[:, 0] = np.linspace(200, 300, 33) + x
        kp33[:, 1] = np.linspace(100, 400, 33)
        kp33[:, 2] = 1.0
        return Person(track_id=1, bbox=(200 + x, 100, 300 + x, 400), score=0.9, keypoints=kp33, layout="blazepose33")

    pipe = PosePipeline(lambda f, t: [], None, 0, LiftPolicy.clip(27, max_gap_s=3.0), OneEuroConfig())
    for i in range(30):  # still at x = 0
        pipe.push_people(i, i / 30, [at(0.0)], 640, 480)
    pipe.push_people(30, 1.0, [], 640, 480)  # a missed frame keeps the filter
    assert list(pipe.filters) == [1]
    pipe.push_people(31, 1.3, [], 640, 480)  # gone for longer: its filter goes
    assert pipe.filters == {}
    (back,) = pipe.push_people(32, 1.5, [at(200.0)], 640, 480)
    np.testing.assert_allclose(back.people[0].keypoints_2d, at(200.0).h36m17(), atol=1e-4)  # no pull to x = 0


def test_the_lifter_gets_the_detector_2d_and_smoothing_is_for_the_2d_shown() -> None:
    from hotpose.models.detector import Person
    from hotpose.models.keypoints import normalize_image

    rng = np.random.default_rng(0)
    seen: list[np.ndarray] = []

    def lift(windows: np.ndarray) -> np.ndarray:
        seen.append(windows[:, -1])  # each window's newest frame [N, 17, 2]
        return np.zeros((*windows.shape[:3], 3), np.float32)

    pipe = PosePipeline(
        lambda f, t: [], lift, 27, LiftPolicy(stride=1, delay=0, max_gap_s=1.0, hold_s=0.0), OneEuroConfig()
    )
    for i in range(20):
        kp33 = np.zeros((33, 3), np.float32)
        kp33[:, :2] = np.linspace(100, 400, 66).reshape(33, 2) + rng.normal(0, 5, (33, 2))  # jittery
        kp33[:, 2] = 1.0
        person = Person(track_id=1, bbox=(100, 100, 400, 400), score=0.9, keypoints=kp33, layout="blazepose33")
        (shown,) = pipe.push_people(i, i / 30, [person], 640, 480)
        raw = person.h36m17()[:, :2]
        np.testing.assert_allclose(seen[-1][0], normalize_image(raw, 640, 480), atol=1e-5)  # unfiltered
        if i > 0:  # what is shown is filtered
            assert not np.allclose(shown.people[0].keypoints_2d[:, :2], raw, atol=0.5)


def test_clip_pipeline_end_to_end(tiny_lifter, detector: Detector) -> None:  # type: ignore[no-untyped-def]
    img = data.astronaut()
    canvas = np.pad(img, ((0, 0), (100, 100), (0, 0)), mode="edge")
    frames = [(i, i / 10.0, np.ascontiguousarray(canvas[:, 5 * i : 5 * i + 512])) for i in range(30)]
    seq = process_frames(frames, detector, tiny_lifter, fps=10.0, max_gap_s=3.0)
    assert len(seq.frames) == 30 and [f.index for f in seq.frames] == list(range(30))
    people = [p for f in seq.frames for p in f.people]
    assert len(people) >= 28 and len({p.track_id for p in people}) == 1
    assert all(p.joints_3d is not None and p.joints_3d.shape == (17, 3) for p in people)
    assert all(np.allclose(p.joints_3d[0], 0.0) for p in people)  # root-relative
    d = json.loads(json.dumps(seq.to_dict()))
    assert d["joint_names"][0] == "pelvis" and d["width"] == 512 and len(d["frames"][5]["people"][0]["joints_3d"]) == 17
