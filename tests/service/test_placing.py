"""People placed over time: roots solved per frame, smoothed per person, frames kept in order."""

from __future__ import annotations

import numpy as np
import pytest

from hotpose.models.placement import Camera, solve_root
from hotpose.service.pipeline import FramePoses, PersonPose
from hotpose.service.placing import ROOT_LAG_FRAMES, CameraRequest, RootPlacer
from tests.models.test_placement import STAND

W, H = 1280, 720


def walk(n: int, noise: float = 0.0, seed: int = 0) -> tuple[list[FramePoses], np.ndarray]:
    """Two people, one walking across at 3 m, one still at 6 m; 2D from the default camera (+ noise px)."""
    rng = np.random.default_rng(seed)
    cam = Camera.for_image(W, H)
    truth = np.zeros((n, 2, 3))
    frames = []
    for i in range(n):
        truth[i] = [[-1.0 + i * 0.04, 0.2, 3.0], [0.8, 0.1, 6.0]]
        people = []
        for tid, root in enumerate(truth[i]):
            uv = cam.project(STAND + root) + rng.normal(0, noise, (17, 2))
            kp = np.concatenate([uv, np.ones((17, 1))], axis=1).astype(np.float32)
            people.append(PersonPose(tid, (0, 0, 1, 1), 1.0, kp, joints_3d=STAND.astype(np.float32), raw_2d=kp))
        frames.append(FramePoses(i, i / 30, people))
    return frames, truth


def run(placer: RootPlacer, frames: list[FramePoses]) -> list[FramePoses]:
    out = []
    for fp in frames:
        out += placer.push([fp], W, H)
    return out + placer.flush()


def test_delayed_roots_leave_in_order_after_the_lag_and_land_where_people_are() -> None:
    frames, truth = walk(40)
    placer = RootPlacer(CameraRequest(), ROOT_LAG_FRAMES)
    first = []
    for fp in frames[: ROOT_LAG_FRAMES + 1]:
        first += placer.push([fp], W, H)
    assert [f.index for f in first] == [0]  # the first frame waited for its future half-window
    out = first + run(placer, frames[ROOT_LAG_FRAMES + 1 :])
    assert [f.index for f in out] == list(range(40))
    got = np.array([[p.root_3d for p in f.people] for f in out])
    # noise-free 2D: exact inside; a uniform walk stays exact under centred weights except near the ends
    np.testing.assert_allclose(
        got[ROOT_LAG_FRAMES:-ROOT_LAG_FRAMES], truth[ROOT_LAG_FRAMES:-ROOT_LAG_FRAMES], atol=1e-4
    )
    assert placer.camera is not None and placer.camera.assumed


def test_smoothing_reduces_the_noise_of_per_frame_roots() -> None:
    frames, truth = walk(60, noise=2.0)
    cam = Camera.for_image(W, H)
    raw_roots = np.array([[solve_root(p.joints_3d, p.keypoints_2d[:, :2], p.keypoints_2d[:, 2], cam)
                           for p in f.people] for f in frames])  # fmt: skip
    smoothed = np.array(
        [[p.root_3d for p in f.people] for f in run(RootPlacer(CameraRequest(), ROOT_LAG_FRAMES), frames)]
    )
    inner = slice(ROOT_LAG_FRAMES, -ROOT_LAG_FRAMES)
    err_raw = np.linalg.norm(raw_roots - truth, axis=-1)[inner].mean()
    err_smooth = np.linalg.norm(smoothed - truth, axis=-1)[inner].mean()
    assert err_smooth < 0.7 * err_raw


def test_causal_roots_come_at_once() -> None:
    frames, truth = walk(10)
    placer = RootPlacer(CameraRequest(focal_px=Camera.for_image(W, H).focal_px), 0)
    for fp in frames:
        assert placer.push([fp], W, H) == [fp]  # no waiting
        assert all(p.root_3d is not None for p in fp.people)
    assert placer.flush() == [] and placer.camera is not None and not placer.camera.assumed
    np.testing.assert_allclose(frames[0].people[1].root_3d, truth[0, 1], atol=1e-4)  # a still person: exact


def test_people_without_3d_or_2d_have_no_root() -> None:
    frames, _ = walk(3)
    frames[1].people[0].joints_3d = None
    out = run(RootPlacer(CameraRequest(), 1), frames)
    assert out[1].people[0].root_3d is None and out[1].people[1].root_3d is not None


@pytest.mark.parametrize(
    "bad", [{"focal_px": -1.0}, {"fov_deg": 200.0}, {"focal_px": 900.0, "fov_deg": 60.0}, {"person_height_m": 4.0}]
)
def test_a_bad_camera_request_says_why(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CameraRequest(**bad)


def test_causal_filters_of_people_gone_are_let_go() -> None:
    # a long stream whose people come and go gets a new track id each time: no filter outlives its person
    placer = RootPlacer(CameraRequest(), 0)
    frames, _ = walk(200)
    for i, fp in enumerate(frames):
        fp.people = [p for p in fp.people if p.track_id == 1 or i < 5]  # person 0 leaves after frame 4
        for p in fp.people:
            p.track_id = 1000 + i // 20 if p.track_id == 1 else p.track_id  # person 1: a new id every 20 frames
        placer.push([fp], W, H)
    assert set(placer._filters) == {1000 + 199 // 20}
    assert frames[-1].people[0].root_3d is not None
