"""Joint angles (`hotpose_client.angles`) on hand-made poses: a straight leg is 180 degrees, a right angle 90."""

from __future__ import annotations

import io

import numpy as np
import pytest

from hotpose_client import Frame, Person, PoseSequence
from hotpose_client.angles import ANGLE_NAMES, CSV_COLUMNS, joint_angles

H36M = (
    "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine", "thorax", "neck_nose",
    "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
)  # fmt: skip

# Standing straight, arms hanging: camera axes (x right, y down, z forward), metres, pelvis at 0.
STANDING = np.array([
    [0, 0, 0], [-0.13, 0, 0], [-0.13, 0.45, 0], [-0.13, 0.9, 0], [0.13, 0, 0], [0.13, 0.45, 0],
    [0.13, 0.9, 0], [0, -0.25, 0], [0, -0.5, 0], [0, -0.6, 0], [0, -0.72, 0], [0.18, -0.48, 0],
    [0.18, -0.2, 0], [0.18, 0.05, 0], [-0.18, -0.48, 0], [-0.18, -0.2, 0], [-0.18, 0.05, 0],
], np.float64)  # fmt: skip


def sitting() -> np.ndarray:
    """Sitting upright on a chair: thighs forward (towards the camera, -z), shins down; the left
    forearm raised forwards (elbow at 90), the right arm raised sideways to shoulder height."""
    j = STANDING.copy()
    for hip, knee, ankle in ((1, 2, 3), (4, 5, 6)):
        j[knee] = j[hip] + [0, 0, -0.45]
        j[ankle] = j[knee] + [0, 0.45, 0]
    j[13] = j[12] + [0, 0, -0.25]  # l_wrist forward of the l_elbow
    j[15] = j[14] + [-0.28, 0, 0]  # r_elbow out to the right, level with the shoulder
    j[16] = j[15] + [-0.25, 0, 0]  # and the forearm straight on
    return j


def test_a_straight_body_is_180_at_knees_hips_elbows_and_0_at_the_shoulders() -> None:
    a = joint_angles(STANDING)
    assert set(a) == set(ANGLE_NAMES)
    for side in ("l", "r"):
        assert a[f"{side}_knee"] == pytest.approx(180)
        assert a[f"{side}_hip"] == pytest.approx(180)
        assert a[f"{side}_elbow"] == pytest.approx(180)
        assert a[f"{side}_shoulder"] == pytest.approx(0, abs=1e-6)


def test_right_angles_are_90() -> None:
    a = joint_angles(sitting())
    for side in ("l", "r"):
        assert a[f"{side}_knee"] == pytest.approx(90)
        assert a[f"{side}_hip"] == pytest.approx(90)
    assert a["l_elbow"] == pytest.approx(90) and a["l_shoulder"] == pytest.approx(0, abs=1e-6)
    assert a["r_elbow"] == pytest.approx(180) and a["r_shoulder"] == pytest.approx(90)


def test_angles_do_not_depend_on_where_the_person_is_or_faces() -> None:
    theta = 0.7  # turned about the vertical axis and moved away from the camera
    rot = np.array([[np.cos(theta), 0, np.sin(theta)], [0, 1, 0], [-np.sin(theta), 0, np.cos(theta)]])
    moved = sitting() @ rot.T + [0.5, 0.2, 4.0]
    a, b = joint_angles(sitting()), joint_angles(moved)
    for name in ANGLE_NAMES:
        assert b[name] == pytest.approx(a[name], abs=1e-9)


def test_batches_and_missing_joints() -> None:
    poses = np.stack([STANDING, sitting(), np.full((17, 3), np.nan)])  # [T=3, 17, 3]
    gone = STANDING.copy()
    gone[3] = np.nan  # r_ankle not seen
    a = joint_angles(poses)
    assert a["r_knee"].shape == (3,)
    np.testing.assert_allclose(a["r_knee"][:2], [180, 90])
    assert np.isnan(a["r_knee"][2])
    g = joint_angles(gone)
    assert np.isnan(g["r_knee"]) and g["l_knee"] == pytest.approx(180)
    with pytest.raises(ValueError, match=r"\[\.\.\., 17, 3\]"):
        joint_angles(np.zeros((16, 3)))


def test_pose_sequence_angles_and_their_csv() -> None:
    kp = np.zeros((17, 3))
    frames = [
        Frame(0, 0.0, [Person(1, (0, 0, 1, 1), 0.9, kp, STANDING)]),
        Frame(1, 0.1, []),  # person 1 absent
        Frame(2, 0.2, [Person(1, (0, 0, 1, 1), 0.9, kp, sitting()), Person(2, (0, 0, 1, 1), 0.8, kp, None)]),
    ]
    seq = PoseSequence(frames, 10.0, 64, 48, H36M)
    knee = seq.joint_angles(1)["r_knee"]
    assert knee.shape == (3,) and knee[0] == pytest.approx(180) and np.isnan(knee[1]) and knee[2] == pytest.approx(90)
    buf = io.StringIO()
    seq.angles_to_csv(buf)
    lines = buf.getvalue().splitlines()
    assert lines[0].split(",") == list(CSV_COLUMNS)
    rows = [line.split(",") for line in lines[1:]]
    assert [r[:3] for r in rows] == [["0", "0.0", "1"], ["2", "0.2", "1"]]  # person 2 was not lifted: no row
    assert float(rows[1][CSV_COLUMNS.index("r_knee")]) == pytest.approx(90)
    with pytest.raises(ValueError, match="Human3.6M-17"):
        PoseSequence(frames, 10.0, 64, 48, H36M[:16]).joint_angles(1)
