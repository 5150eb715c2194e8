from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from hotpose_client import Camera, Frame, Person, PoseSequence, formats
from hotpose_client._base import StreamState, stream_line
from hotpose_client.bvh import read_bvh
from hotpose_client.formats import CSV_COLUMNS, CSV_COLUMNS_V1
from hotpose_client.results import even_grid, frame_rate

NAMES = tuple(f"j{i}" for i in range(17))
CAMERA = Camera(focal_px=457.02, cx=320.0, cy=240.0, width=640, height=480, assumed=True)


def make_sequence(rng: np.random.Generator) -> PoseSequence:
    frames = []
    for i in range(6):
        people = []
        for tid in (1, 4):
            if tid == 4 and i in (0, 3):  # person 4 is absent in frames 0 and 3 ...
                continue
            j3 = None if (tid == 1 and i == 5) else rng.normal(size=(17, 3))  # ... person 1 not lifted in 5
            root = None if (tid == 4 and i == 2) or j3 is None else rng.normal(size=3) + [0, 0, 4]  # ... 4's root in 2
            kp = np.concatenate([rng.uniform(0, 640, (17, 2)), rng.uniform(0, 1, (17, 1))], axis=1)
            people.append(Person(tid, tuple(rng.uniform(0, 600, 4)), float(rng.uniform()), kp, j3, root))
        frames.append(Frame(i, i / 30, people))
    frames.append(Frame(6, 0.2, []))  # a frame with nobody
    return PoseSequence(frames, 30.0, 640, 480, NAMES, ((0, 1), (1, 2)), {"joints_3d": "metres"}, CAMERA)


def as_old_result(doc: dict[str, object]) -> dict[str, object]:
    """A result dict as servers wrote them before `camera` and `root_3d`."""
    old = json.loads(json.dumps(doc))
    del old["camera"]
    for f in old["frames"]:
        for p in f["people"]:
            del p["root_3d"]
    return dict(old)


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
            assert (p.root_3d is None) == (q.root_3d is None)
            if p.root_3d is not None:
                np.testing.assert_allclose(q.root_3d, p.root_3d, atol=tol)  # type: ignore[arg-type]


def test_json_round_trip_is_exact(tmp_path: Path) -> None:
    seq = make_sequence(np.random.default_rng(0))
    seq.to_json(tmp_path / "s.json")
    back = PoseSequence.from_json(tmp_path / "s.json")
    assert_same(seq, back, 0.0)
    assert (back.fps, back.width, back.height, back.joint_names) == (30.0, 640, 480, NAMES)
    assert back.skeleton_edges == ((0, 1), (1, 2)) and back.coordinates == {"joints_3d": "metres"}
    assert back.camera == CAMERA and isinstance(back.camera.width, int) and back.camera.assumed is True
    assert_same(seq, PoseSequence.from_json(seq.to_json() or ""), 0.0)
    people = json.loads(seq.to_json() or "")["frames"][2]["people"]
    assert [p["root_3d"] for p in people][1] is None and len(people[0]["root_3d"]) == 3  # the wire's null


def test_json_head_streams_the_same_result() -> None:
    """The server writes `json_head(meta)`, then the frames, then `]}`: the same document as `to_dict`."""
    seq = make_sequence(np.random.default_rng(7))
    frames = [f.to_dict() for f in seq.frames]
    text = formats.json_head(seq.meta()) + ",".join(json.dumps(f) for f in frames) + "]}"
    assert json.loads(text) == seq.to_dict()
    assert json.loads(text)["camera"] == {
        "focal_px": 457.02, "cx": 320.0, "cy": 240.0, "width": 640, "height": 480, "assumed": True,
    }  # fmt: skip
    no_camera = {k: v for k, v in seq.meta().items() if k != "camera"}
    assert "camera" not in json.loads(formats.json_head(no_camera) + "]}")  # a server without one: left out
    assert "camera" not in json.loads(formats.json_head({**no_camera, "camera": None}) + "]}")
    with pytest.raises(ValueError, match=r"camera object without \['assumed'\]"):
        formats.json_head({**no_camera, "camera": {"focal_px": 1, "cx": 0, "cy": 0, "width": 2, "height": 2}})


def test_results_without_camera_or_root_still_parse() -> None:
    seq = make_sequence(np.random.default_rng(8))
    old = PoseSequence.from_dict(as_old_result(seq.to_dict()))
    assert old.camera is None
    assert all(p.root_3d is None for f in old.frames for p in f.people)
    np.testing.assert_array_equal(old.joints_3d(4), seq.joints_3d(4))
    assert np.isnan(old.root_trajectory(4)).all() and np.isnan(old.joints_3d(4, frame="camera")).all()
    assert "camera" not in old.to_dict() and PoseSequence.from_json(old.to_json() or "").camera is None


def test_npz_round_trip_to_float32(tmp_path: Path) -> None:
    seq = make_sequence(np.random.default_rng(1))
    seq.to_npz(tmp_path / "s.npz")
    back = PoseSequence.from_npz(tmp_path / "s.npz")
    assert_same(seq, back, 1e-5)  # the NPZ stores float32
    assert (back.fps, back.width, back.height, back.joint_names) == (30.0, 640, 480, NAMES)
    assert back.skeleton_edges == ((0, 1), (1, 2)) and back.coordinates == {"joints_3d": "metres"}
    assert back.camera == CAMERA


def test_npz_arrays_of_root_and_camera(tmp_path: Path) -> None:
    seq = make_sequence(np.random.default_rng(1))
    arrays = formats.npz_arrays(seq.meta(), (f.to_dict() for f in seq.frames))
    assert set(arrays) == set(formats.NPZ_ARRAYS)  # the documented list is what is written
    rows = [(f.index, p) for f in seq.frames for p in f.people]
    assert arrays["root_3d"].shape == (len(rows), 3) and arrays["root_3d"].dtype == np.float32
    missing = [r for r, (i, p) in enumerate(rows) if p.root_3d is None]
    assert np.isnan(arrays["root_3d"][missing]).all() and len(missing) == 2
    assert arrays["camera_focal_px"] == pytest.approx(457.02) and arrays["camera_width"] == 640
    assert arrays["camera_assumed"].dtype == np.bool_ and bool(arrays["camera_assumed"])
    no_camera = formats.npz_arrays({k: v for k, v in seq.meta().items() if k != "camera"}, [])
    assert not any(k.startswith("camera_") for k in no_camera)  # absent, not NaN, without a camera


def test_npz_written_before_coordinates_were_stored_still_reads(tmp_path: Path) -> None:
    arrays = formats.npz_arrays(make_sequence(np.random.default_rng(1)).meta(), [])
    del arrays["coordinates"]
    formats.write_npz(tmp_path / "old.npz", arrays)
    assert PoseSequence.from_npz(tmp_path / "old.npz").coordinates == {}


def test_npz_written_before_root_and_camera_still_reads(tmp_path: Path) -> None:
    seq = make_sequence(np.random.default_rng(9))
    arrays = formats.npz_arrays(seq.meta(), (f.to_dict() for f in seq.frames))
    for k in ("root_3d", *formats.CAMERA_NPZ_ARRAYS):
        del arrays[k]
    formats.write_npz(tmp_path / "old.npz", arrays)
    old = PoseSequence.from_npz(tmp_path / "old.npz")
    assert old.camera is None and all(p.root_3d is None for f in old.frames for p in f.people)
    np.testing.assert_allclose(old.joints_3d(1), seq.joints_3d(1), atol=1e-5)
    arrays = formats.npz_arrays(seq.meta(), [])
    del arrays["camera_cx"]
    formats.write_npz(tmp_path / "half.npz", arrays)
    with pytest.raises(ValueError, match="incomplete camera"):
        PoseSequence.from_npz(tmp_path / "half.npz")


def test_csv_round_trip_keeps_people_not_empty_frames(tmp_path: Path) -> None:
    seq = make_sequence(np.random.default_rng(2))
    seq.to_csv(tmp_path / "s.csv")
    header = (tmp_path / "s.csv").read_text().splitlines()[0]
    assert tuple(header.split(",")) == CSV_COLUMNS
    back = PoseSequence.from_csv(tmp_path / "s.csv", fps=30.0, width=640, height=480)
    assert back.joint_names == NAMES
    assert_same(seq, back, 0.0, empty_frames=False)
    assert back.camera == CAMERA  # focal, principal point and `assumed` from the rows; the size as given


def test_csv_root_and_camera_columns(tmp_path: Path) -> None:
    seq = make_sequence(np.random.default_rng(2))
    seq.to_csv(tmp_path / "s.csv")
    lines = (tmp_path / "s.csv").read_text().splitlines()
    rows = [dict(zip(CSV_COLUMNS, line.split(","), strict=True)) for line in lines[1:]]
    assert len(rows) == sum(len(f.people) for f in seq.frames) * 17
    p = seq.frames[0].people[0]
    assert [float(rows[0][k]) for k in ("root_x", "root_y", "root_z")] == p.root_3d.tolist()  # type: ignore[union-attr]
    unsolved = [r for r in rows if r["frame"] == "2" and r["track_id"] == "4"]
    assert len(unsolved) == 17 and all(r["root_x"] == r["root_y"] == r["root_z"] == "" for r in unsolved)
    assert {(r["camera_focal_px"], r["camera_cx"], r["camera_cy"], r["camera_assumed"]) for r in rows} == {
        ("457.02", "320.0", "240.0", "1")
    }
    no_camera = PoseSequence(seq.frames, 30.0, 640, 480, NAMES)
    no_camera.to_csv(tmp_path / "n.csv")
    assert PoseSequence.from_csv(tmp_path / "n.csv").camera is None
    assert (tmp_path / "n.csv").read_text().splitlines()[1].endswith(",,,,")


def test_csv_written_before_root_and_camera_still_reads(tmp_path: Path) -> None:
    seq = PoseSequence.from_dict(as_old_result(make_sequence(np.random.default_rng(3)).to_dict()))
    seq.to_csv(tmp_path / "s.csv")
    v1 = [",".join(line.split(",")[: len(CSV_COLUMNS_V1)]) for line in (tmp_path / "s.csv").read_text().splitlines()]
    (tmp_path / "v1.csv").write_text("\n".join(v1) + "\n")
    back = PoseSequence.from_csv(tmp_path / "v1.csv", fps=30.0)
    assert back.camera is None
    assert_same(seq, back, 0.0, empty_frames=False)


def test_joints_in_the_camera_frame_and_the_root_trajectory() -> None:
    seq = make_sequence(np.random.default_rng(4))
    root = seq.root_trajectory(4)
    assert root.shape == (7, 3)
    assert np.isnan(root[[0, 3]]).all()  # person 4 absent
    assert np.isnan(root[2]).all()  # present and lifted, but the root was not solved
    assert np.isnan(root[6]).all() and not np.isnan(root[[1, 4, 5]]).any()  # 6: a frame with nobody
    np.testing.assert_array_equal(root[1], seq.frames[1].person(4).root_3d)  # type: ignore[union-attr, arg-type]
    cam = seq.joints_3d(4, frame="camera")
    np.testing.assert_array_equal(cam[[1, 4, 5]], (seq.joints_3d(4) + root[:, None])[[1, 4, 5]])
    assert np.isnan(cam[2]).all() and not np.isnan(seq.joints_3d(4)[2]).any()  # no root: not placed
    one = PoseSequence([Frame(f.index, f.time, [p for p in f.people if p.track_id == 1]) for f in seq.frames],
                       30.0, 640, 480, NAMES)  # fmt: skip
    np.testing.assert_array_equal(one.root_trajectory(), seq.root_trajectory(1))  # one person: no track_id
    with pytest.raises(ValueError, match="pass track_id"):
        seq.root_trajectory()
    with pytest.raises(ValueError, match="no person with track_id 9"):
        seq.root_trajectory(9)
    with pytest.raises(ValueError, match="frame must be 'root' or 'camera'"):
        seq.joints_3d(4, frame="world")  # type: ignore[arg-type]


def test_camera_projects_placed_joints_to_pixels() -> None:
    cam = Camera(focal_px=500.0, cx=320.0, cy=240.0, width=640, height=480, assumed=False)
    np.testing.assert_allclose(cam.project(np.array([[0.0, 0.0, 4.0], [1.0, -0.5, 2.0]])), [[320, 240], [570, 115]])
    assert Camera.from_dict(cam.to_dict()) == cam


def test_live_messages_carry_root_and_camera() -> None:
    person = {"track_id": 3, "bbox": [1, 2, 3, 4], "score": 0.9, "keypoints_2d": [[0, 0, 1]] * 17,
              "joints_3d": [[0.1, 0.2, 0.3]] * 17, "root_3d": [0.5, -0.1, 3.25]}  # fmt: skip
    camera = {"focal_px": 457.02, "cx": 320, "cy": 240, "width": 640, "height": 480, "assumed": True}
    state = StreamState()
    frame = state.on_message(json.dumps({"type": "pose", "index": 5, "t": 0.5, "people": [person], "camera": camera}))
    assert frame is not None and frame.camera == CAMERA
    np.testing.assert_array_equal(frame.people[0].root_3d, [0.5, -0.1, 3.25])  # type: ignore[arg-type]
    assert Frame.from_dict(frame.to_dict()).camera == CAMERA
    old = {k: v for k, v in person.items() if k != "root_3d"}  # a server from before: neither
    frame = state.on_message(json.dumps({"type": "pose", "index": 6, "t": 0.6, "people": [old]}))
    assert frame is not None and frame.camera is None and frame.people[0].root_3d is None
    assert "camera" not in frame.to_dict()
    line = stream_line(json.dumps({"index": 0, "time": 0.0, "people": [{**person, "root_3d": None}]}), "job")
    assert line is not None and line.people[0].root_3d is None and line.people[0].joints_3d is not None


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
