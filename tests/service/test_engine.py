"""The engine: models built from the settings, the two batching schedulers, per-stream state."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from hotpose.service.backends import LocalLifter
from hotpose.service.engine import Engine, EngineConfig
from hotpose.service.lifting import LiftPolicy, lift_root_relative
from hotpose.service.settings import Settings
from tests.conftest import astronaut_frames


@pytest.fixture(scope="module")
def engine(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    s = Settings(device="cpu", lifter="hot_mixste", lifter_weights=tiny_weights,
                 data_dir=tmp_path_factory.mktemp("data"), track_max_gap_s=2.5)  # fmt: skip
    e = Engine(EngineConfig.from_settings(s))
    yield e
    e.close()


def test_the_config_is_the_settings() -> None:
    s = Settings(lifter="mixste", device="cpu", threads=3, flip=False, person_detector="blazepose_face",
                 keypoints="blazepose_heavy", redetect_every=7, lost_redetect_every=5, idle_redetect_every=4,
                 track_max_gap_s=1.5, detector_max_batch=3, detector_max_wait_ms=1.0, lifter_max_batch=5,
                 lifter_max_wait_ms=9.0)  # fmt: skip
    c = EngineConfig.from_settings(s)
    for config in (c, c.detector):
        for f in fields(config):
            if f.name in ("batch", "lifter_batch", "detector"):
                continue
            assert getattr(config, f.name) == getattr(s, f.name), f.name
    assert (c.detector.batch.max_batch, c.detector.batch.max_wait_ms) == (3, 1.0)
    assert (c.lifter_batch.max_batch, c.lifter_batch.max_wait_ms) == (5, 9.0)


def test_lifts_through_the_scheduler_equal_the_model_called_directly(engine: Engine) -> None:
    assert engine.lifter is not None and engine.window == 27 and engine.device == "cpu"
    rng = np.random.default_rng(0)
    windows = rng.uniform(-0.5, 0.5, (3, 27, 17, 2)).astype(np.float32)
    results: dict[bool, np.ndarray] = {}

    def lift(flip: bool) -> None:  # two threads at once: one batch may hold both flags
        results[flip] = engine.lift(windows, flip)

    threads = [threading.Thread(target=lift, args=(f,)) for f in (False, True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for flip in (False, True):
        assert isinstance(engine.lifter, LocalLifter) and engine.lifter.model is not None
        want = lift_root_relative(engine.lifter.model, windows, flip)
        np.testing.assert_allclose(results[flip], want, atol=1e-5)
        assert np.abs(results[flip][..., 0, :]).max() == 0  # root-relative
    assert not np.allclose(results[False], results[True])


def test_each_stream_has_its_own_tracking_state(engine: Engine) -> None:
    frames = astronaut_frames(6)
    a, b = engine.detect_fn(), engine.detect_fn()
    first = [a(f, i / 10) for i, f in enumerate(frames)]
    second = [b(f, i / 10) for i, f in enumerate(frames)]  # a fresh stream sees the same as the first did
    assert [[p.track_id for p in ps] for ps in first] == [[p.track_id for p in ps] for ps in second]
    assert all(len(ps) == 1 for ps in first[1:])
    np.testing.assert_allclose(first[-1][0].keypoints, second[-1][0].keypoints, atol=1e-4)


def test_a_pipeline_defaults_to_the_clip_policy_with_the_settings_gap(engine: Engine) -> None:
    pipe = engine.pipeline()
    assert pipe.streamer is not None and pipe.streamer.policy == LiftPolicy.clip(27, 2.5)
    out = [fp for i, f in enumerate(astronaut_frames(4)) for fp in pipe.push(i, i / 10, f)] + pipe.flush()
    assert [fp.index for fp in out] == [0, 1, 2, 3]
    assert all(p.joints_3d is not None and p.joints_3d.shape == (17, 3) for fp in out for p in fp.people)


def test_describe_2d_names_what_runs(engine: Engine) -> None:
    d = engine.describe_2d()
    assert d["person_detector"]["name"] == "nanodet"  # type: ignore[index]
    assert d["keypoints"]["name"] == "blazepose_full"  # type: ignore[index]
    assert d["tracker"] == {"name": "motion", "max_gap_s": 2.5}


def test_without_weights_the_engine_serves_2d_only(tmp_path: Path) -> None:
    e = Engine(EngineConfig.from_settings(Settings(device="cpu", lifter="mlp", data_dir=tmp_path)))
    try:
        assert e.lifter is None and e.window == 0
        pipe = e.pipeline()
        out = pipe.push(0, 0.0, astronaut_frames(1)[0]) + pipe.flush()
        assert len(out) == 1 and all(p.joints_3d is None for p in out[0].people)
    finally:
        e.close()
