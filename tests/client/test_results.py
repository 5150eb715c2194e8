from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from hotpose_client import Frame, Person, PoseSequence, formats
from hotpose_client.bvh import read_bvh
from hotpose_client.formats import CSV_COLUMNS
from hotpose_client.results import even_grid, frame_rate

NAMES = tuple(f"j{i}" for i in range(17))


def make_sequence(rng: np.random.Generator) -> PoseSequence:
    frames = []
    for i in range(6):
        people = []
        for tid in (1, 4):
            if tid == 4 and i in (0, 3):  # person 4 is absent in frames 0 and 3 ...
                continue
            j3 = None if (tid == 1 and i == 5) else rng.normal(size=(17, 3))  # ... person 1 not lifted in 5
            kp = np.concatenate([rng.uniform(0, 640, (17, 2)), rng.uniform(0, 1, (17, 1))], axis=1)
            people.append(Person(tid, tuple(rng.uniform(0, 600, 4)), float(rng.uniform()), kp, j3))
        frames.append(Frame(i, i / 30, people))
    frames.append(Frame(6, 0.2, []))  # a frame with nobody
    return PoseSequence(frames, 30.0, 640, 480, NAMES, ((0, 1), (1, 2)), {"joints_3d": "metres"})


def assert_same(a: PoseSequence, b: PoseSequence, tol: float, empty_frames: bool = True) -> None:
    fa = [f for f in a.frames if f.people or empty_frames]
    assert [f.index for f in fa] == [f.index for f in b.frames]
    for x, y in zip(fa, b.frames, strict=True):
        assert y.time == pytest.approx(x.time, abs=1e-6)
        assert [p.track_id for p in x.people] == [p.track_id for p in y.people]
        for p, q in zip(x.people, y.people, strict=True):
            np.testing.assert_allclose(q.keypoints_2d, p.keypoints_2d, atol=tol * 1000)
            np.testing.assert_allclose(q.bbox, p.bbox, atol=tol * 1000)
            assert q.score == pytest.approx(p.score, abs=tol)
            assert (p.joints_3d is None) == (q.joints_3d is None)
            if p.joints_3d is not None:
                np.testing.assert_allclose(q.joints_3d, p.joints_3d, atol=tol)  # type: ignore[arg-type]


def test_json_round_trip_is_exact(tmp_path: Path) -> None:
    seq = make_sequence(np.random.default_rng(0))
    seq.to_json(tmp_path / "s.json")
    back = PoseSequence.from_json(tmp_path / "s.json")
    assert_same(seq, back, 0.0)
    assert (back.fps, back.width, back.height, back.joint_names) == (30.0, 640, 480, NAMES)
    assert back.skeleton_edges == ((0, 1), (1, 2)) and back.coordinates == {"joints_3d": "metres"}
    assert_same(seq, PoseSequence.from_json(seq.to_json() or ""), 0.0)


def test_npz_round_trip_to_float32(tmp_path: Path) -> None:
    seq = make_sequence(np.random.default_rng(1))
    seq.to_npz(tmp_path / "s.npz")
    back = PoseSequence.from_npz(tmp_path / "s.npz")
    assert_same(seq, back, 1e-5)  # the NPZ stores float32
    assert (back.fps, back.width, back.height, back.joint_names) == (30.0, 640, 480, NAMES)
    assert back.skeleton_edges == ((0, 1), (1, 2)) and back.coordinates == {"joints_3d": "metres"}


def test_npz_written_before_coordinates_were_stored_still_reads(tmp_path: Path) -> None:
    arrays = formats.npz_arrays(make_sequence(np.random.default_rng(1)).meta(), [])
    del arrays["coordinates"]
    formats.write_npz(tmp_path / "old.npz", arrays)
    assert PoseSequence.from_npz(tmp_path / "old.npz").coordinates == {}


def test_csv_round_trip_keeps_people_not_empty_frames(tmp_path: Path) -> None:
    seq = make_sequence(np.random.default_rng(2))
    seq.to_csv(tmp_path / "s.csv")
    header = (tmp_path / "s.csv").read_text().splitlines()[0]
    assert tuple(header.split(",")) == CSV_COLUMNS
    back = PoseSequence.from_csv(tmp_path / "s.csv", fps=30.0)
    assert back.joint_names == NAMES
    assert_same(seq, back, 0.0, empty_frames=False)


def test_numpy_accessors_align_with_frames() -> None:
    seq = make_sequence(np.random.default_rng(3))
    assert seq.track_ids() == [1, 4]
    j = seq.joints_3d(4)
    assert j.shape == (7, 17, 3)
    assert np.isnan(j[[0, 3, 6]]).all() and not np.isnan(j[[1, 2, 4, 5]]).any()
    assert np.isnan(seq.joints_3d(1)[5]).all() and not np.isnan(seq.keypoints_2d(1)[5]).any()
    with pytest.raises(ValueError, match="pass track_id"):
        seq.joints_3d()
    with pytest.raises(ValueError, match="no person with track_id 9"):
        seq.joints_3d(9)


def test_bvh_of_a_variable_frame_rate_clip_keeps_real_timing(tmp_path: Path) -> None:
    assert even_grid(np.arange(10) / 30 + 0.004, 30.0) is None  # even enough: every frame as it is
    times = np.array([0.0, 0.1, 0.15, 0.4, 0.5])  # a phone clip: frames bunch up, then a gap
    assert even_grid(times, 10.0).tolist() == [0, 1, 2, 3, 3, 4]  # grid 0, .1, .2, .3, .4, .5: nearest frames
    rng = np.random.default_rng(0)
    frames = [
        Frame(i, float(t), [Person(1, (0, 0, 1, 1), 1.0, np.zeros((17, 3)), rng.normal(size=(17, 3)))])
        for i, t in enumerate(times)
    ]
    seq = PoseSequence(frames, 10.0, 640, 480, NAMES, ((0, 1),), {})
    seq.to_bvh(tmp_path / "vfr.bvh")
    bvh = read_bvh(tmp_path / "vfr.bvh")
    assert len(bvh.motion) == 6 and bvh.frame_time == pytest.approx(0.1)
    np.testing.assert_array_equal(bvh.motion[3], bvh.motion[4])  # 0.3 s and 0.4 s both show the frame at 0.4 s


def test_readers_reject_foreign_files(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match="not a hotpose CSV"):
        PoseSequence.from_csv(tmp_path / "x.csv")
    buf = io.BytesIO()
    np.savez(buf, a=np.zeros(3))
    buf.seek(0)
    with pytest.raises(ValueError, match="not a hotpose NPZ"):
        PoseSequence.from_npz(buf)
    with pytest.raises(ValueError, match="not a hotpose result"):
        PoseSequence.from_json('{"frames": []}')


def test_webcam_yields_timed_rgb_frames(astronaut_clip: Path) -> None:
    from hotpose_client import webcam

    frames = list(webcam(str(astronaut_clip), max_frames=5))
    assert len(frames) == 5
    times = [t for t, _ in frames]
    assert times == sorted(times) and all(img.shape == (512, 512, 3) and img.dtype == np.uint8 for _, img in frames)
    with pytest.raises(OSError, match="cannot open camera"):
        next(webcam("/nonexistent/camera.mp4"))


def test_bvh_rate_follows_the_frame_times_when_the_container_states_nonsense(tmp_path: Path) -> None:
    times = np.arange(90) / 30.0  # 3 s at 30 fps
    assert frame_rate(29.97, times) == 29.97  # the container's rate, when the times agree with it
    assert frame_rate(1000.0, times) == pytest.approx(30.0)  # some WebM files state 1000 fps
    assert frame_rate(0.0, times) == pytest.approx(30.0) and frame_rate(25.0, times[:1]) == 25.0
    pose = np.random.default_rng(5).normal(size=(17, 3))
    frames = [Frame(i, float(t), [Person(1, (0, 0, 1, 1), 1.0, np.zeros((17, 3)), pose)]) for i, t in enumerate(times)]
    PoseSequence(frames, 1000.0, 640, 480, NAMES, ((0, 1),), {}).to_bvh(tmp_path / "webm.bvh")
    bvh = read_bvh(tmp_path / "webm.bvh")
    assert len(bvh.motion) == 90 and bvh.frame_time == pytest.approx(1 / 30)
