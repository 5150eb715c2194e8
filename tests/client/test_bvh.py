from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hotpose_client import Frame, Person, PoseSequence
from hotpose_client.bvh import (
    BVH_JOINTS,
    H36M_PARENTS,
    _euler_zxy,
    bvh_to_camera,
    fill_root_gaps,
    read_bvh,
    write_bvh,
)

REST = np.array([  # a rigid body (metres, camera frame: y down), Human3.6M-17
    [0, 0, 0], [-0.12, 0.02, 0.01], [-0.13, 0.45, 0.03], [-0.13, 0.88, 0.06], [0.12, 0.02, 0.01],
    [0.13, 0.45, 0.03], [0.13, 0.88, 0.06], [0, -0.23, -0.02], [0, -0.48, -0.03], [0, -0.58, -0.08],
    [0, -0.72, -0.05], [0.17, -0.46, -0.02], [0.45, -0.46, -0.01], [0.70, -0.46, 0.0],
    [-0.17, -0.46, -0.02], [-0.45, -0.46, -0.01], [-0.70, -0.46, 0.0],
])  # fmt: skip


def random_rotation(rng: np.random.Generator, scale: float) -> np.ndarray:
    v = rng.normal(size=3) * scale
    angle = np.linalg.norm(v)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]]) / max(angle, 1e-12)
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def rigid_motion(t: int, seed: int = 0) -> np.ndarray:
    """[T, 17, 3]: the rigid body above moved by random joint rotations (bone lengths fixed)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((t, 17, 3))
    for i in range(t):
        world = [random_rotation(rng, 3.0)]  # any body orientation
        out[i, 0] = 0
        for j in range(1, 17):
            p = H36M_PARENTS[j]
            # rotate each bone about its parent joint; the hip and shoulder triangles may bend too
            r = world[p] @ random_rotation(rng, 0.8)
            world.append(r)
            out[i, j] = out[i, p] + r @ (REST[j] - REST[p])
    return out


def fk(path: Path) -> np.ndarray:
    b = read_bvh(path)
    pos = b.positions()  # [T, N, 3] cm
    return bvh_to_camera(pos[:, [b.names.index(n) for n in BVH_JOINTS]])


def test_bvh_round_trip_recovers_rigid_joints(tmp_path: Path) -> None:
    joints = rigid_motion(50)
    root = np.cumsum(np.full((50, 3), 0.01), axis=0)
    write_bvh(tmp_path / "a.bvh", joints, 25.0, root_positions=root)
    b = read_bvh(tmp_path / "a.bvh")
    assert len(b.motion) == 50 and b.frame_time == pytest.approx(0.04)
    assert {"Hips", "LeftForeArm", "RightFoot", "Head", "LowerBack", "LeftShoulder"} <= set(b.names)
    err = np.linalg.norm(fk(tmp_path / "a.bvh") - (joints + root[:, None]), axis=-1)
    assert err.max() < 1e-4  # metres: 0.1 mm, the file's 6-decimal rounding


def test_bvh_round_trip_on_real_mocap_within_millimetres(tmp_path: Path, shared_dir: Path) -> None:
    z = np.load(shared_dir / "mocap" / "cmu_h36m17_30fps.npz", allow_pickle=True)
    world = z["acrnn_salsa_01"].astype(np.float64)  # y up -> our camera convention (y down, z forward)
    cam = world * np.array([1.0, -1.0, -1.0])
    root = cam[:, 0].copy()
    write_bvh(tmp_path / "m.bvh", cam - root[:, None], 30.0, root_positions=root)
    err = np.linalg.norm(fk(tmp_path / "m.bvh") - cam, axis=-1) * 1000  # mm
    # mocap bone lengths vary by a few mm (derived spine/neck points); the rest is exact
    assert err.mean() < 3.0 and np.percentile(err, 99) < 12.0


def test_missing_frames_hold_the_last_pose(tmp_path: Path) -> None:
    joints = rigid_motion(6, seed=3)
    joints[[0, 3]] = np.nan
    write_bvh(tmp_path / "h.bvh", joints, 30.0)
    out = fk(tmp_path / "h.bvh")
    np.testing.assert_allclose(out[0], joints[1], atol=1e-4)
    np.testing.assert_allclose(out[3], joints[2], atol=1e-4)
    np.testing.assert_allclose(out[4], joints[4], atol=1e-4)


def test_a_frame_missing_its_root_holds_the_last_full_frame(tmp_path: Path) -> None:
    joints = rigid_motion(5, seed=4)
    root = np.arange(15, dtype=float).reshape(5, 3) / 10
    root[2] = np.nan
    write_bvh(tmp_path / "r.bvh", joints, 30.0, root_positions=root)
    out = fk(tmp_path / "r.bvh")
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[2], joints[1] + root[1], atol=1e-4)
    np.testing.assert_allclose(out[3], joints[3] + root[3], atol=1e-4)


def test_euler_angles_at_gimbal_lock_rebuild_the_rotation() -> None:
    def rot(axis: int, deg: float) -> np.ndarray:
        c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
        i, j = [(1, 2), (2, 0), (0, 1)][axis]
        m = np.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        return m

    for b in (90.0, -90.0, 89.0, 10.0):
        r = rot(2, 40.0) @ rot(0, b) @ rot(1, 25.0)  # Rz Rx Ry, the file's ZXY channels
        a, b2, c = _euler_zxy(r)
        np.testing.assert_allclose(rot(2, a) @ rot(0, b2) @ rot(1, c), r, atol=1e-9)


def test_bad_inputs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"expected root_positions \[4, 3\]"):
        write_bvh(tmp_path / "x.bvh", rigid_motion(4), 30.0, root_positions=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"expected joints \[T, 17, 3\]"):
        write_bvh(tmp_path / "x.bvh", np.zeros((4, 16, 3)), 30.0)
    with pytest.raises(ValueError, match="no frame has 3D joints"):
        write_bvh(tmp_path / "x.bvh", np.full((4, 17, 3), np.nan), 30.0)
    (tmp_path / "bad.bvh").write_text("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n")
    with pytest.raises(ValueError, match="unexpected end of file"):
        read_bvh(tmp_path / "bad.bvh")


def walking_sequence(roots: list[list[float] | None], joints: np.ndarray | None = None) -> PoseSequence:
    """One person at 30 fps, the rigid body above as its pose, the pelvis at `roots` (None: not solved)."""
    pose = rigid_motion(len(roots), seed=6) if joints is None else joints
    kp = np.zeros((17, 3))
    frames = [
        Frame(i, i / 30, [Person(1, (0, 0, 1, 1), 1.0, kp, pose[i], None if r is None else np.asarray(r))])
        for i, r in enumerate(roots)
    ]
    return PoseSequence(frames, 30.0, 640, 480, BVH_JOINTS)


def hips_cm(path: Path) -> np.ndarray:
    b = read_bvh(path)
    assert b.names[0] == "Hips" and b.channels[0][:3] == ["Xposition", "Yposition", "Zposition"]
    return b.motion[:, :3]


def test_hips_follow_the_root_trajectory_by_default(tmp_path: Path) -> None:
    """1 m to the right over 30 frames, 3 m from the camera, 0.1 m below its axis: the file's x, -y, -z in cm."""
    x = np.linspace(0.0, 1.0, 30)
    roots: list[list[float] | None] = [[v, 0.1, 3.0] for v in x]
    roots[10] = None  # not solved in frame 10: interpolated between its neighbours
    seq = walking_sequence(roots)
    seq.to_bvh(tmp_path / "walk.bvh")
    hips = hips_cm(tmp_path / "walk.bvh")
    np.testing.assert_allclose(hips[:, 0], x * 100, atol=1e-5)  # 0 -> 100 cm to the right, frame 10 included
    np.testing.assert_allclose(hips[:, 1], -10.0, atol=1e-5)  # y up: 0.1 m below the camera axis
    np.testing.assert_allclose(hips[:, 2], -300.0, atol=1e-5)  # facing +z: 3 m in front is -300 cm
    # read back through forward kinematics: the placed joints within the file's precision
    placed = seq.joints_3d(frame="camera")
    ok = ~np.isnan(placed).any(axis=(1, 2))
    assert ok.sum() == 29
    np.testing.assert_allclose(fk(tmp_path / "walk.bvh")[ok], placed[ok], atol=1e-4)
    # and the trajectory itself, back in camera metres
    np.testing.assert_allclose(bvh_to_camera(hips)[ok], seq.root_trajectory()[ok], atol=1e-7)


def test_root_positions_none_keeps_the_motion_in_place_and_an_array_wins(tmp_path: Path) -> None:
    seq = walking_sequence([[0.02 * i, 0.0, 3.0] for i in range(8)])
    seq.to_bvh(tmp_path / "still.bvh", root_positions=None)
    assert np.abs(hips_cm(tmp_path / "still.bvh")).max() == 0
    mine = np.tile([[0.0, -1.0, 2.0]], (8, 1))
    seq.to_bvh(tmp_path / "mine.bvh", root_positions=mine)
    np.testing.assert_allclose(hips_cm(tmp_path / "mine.bvh"), np.tile([[0.0, 100.0, -200.0]], (8, 1)), atol=1e-6)
    with pytest.raises(ValueError, match=r"expected root_positions \[8, 3\]"):
        seq.to_bvh(tmp_path / "bad.bvh", root_positions=np.zeros((7, 3)))
    with pytest.raises(ValueError, match="'trajectory', None or an array"):
        seq.to_bvh(tmp_path / "bad.bvh", root_positions="world")  # type: ignore[arg-type]


def test_a_result_without_roots_exports_in_place(tmp_path: Path) -> None:
    walking_sequence([None] * 5).to_bvh(tmp_path / "old.bvh")  # older results, or no lifter: no root anywhere
    assert np.abs(hips_cm(tmp_path / "old.bvh")).max() == 0


def test_fill_root_gaps_interpolates_in_time_and_holds_the_ends() -> None:
    root = np.full((6, 3), np.nan)
    root[1] = [0.0, 0.0, 2.0]
    root[4] = [0.3, 0.0, 5.0]
    np.testing.assert_allclose(
        fill_root_gaps(root),
        [[0, 0, 2], [0, 0, 2], [0.1, 0, 3], [0.2, 0, 4], [0.3, 0, 5], [0.3, 0, 5]],
    )
    times = np.array([0.0, 0.1, 0.15, 0.2, 0.4, 0.5])  # uneven frames: linear in time, not in frame number
    np.testing.assert_allclose(fill_root_gaps(root, times)[2:4, 0], [0.05, 0.1])
    with pytest.raises(ValueError, match="no frame has a root position"):
        fill_root_gaps(np.full((3, 3), np.nan))
