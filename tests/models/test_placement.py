"""Placing a root-relative pose in the camera frame: the weighted least-squares root, the camera."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hotpose.models.placement import DEFAULT_FOV_DEG, Camera, skeleton_height, solve_root

# a standing Human3.6M-17 skeleton (metres, y down), pelvis at the origin
STAND = np.array([
    [0, 0, 0], [-0.13, 0, 0], [-0.13, 0.45, 0], [-0.13, 0.88, 0], [0.13, 0, 0], [0.13, 0.45, 0], [0.13, 0.88, 0],
    [0, -0.23, 0], [0, -0.48, 0], [0, -0.58, -0.05], [0, -0.7, 0], [0.18, -0.45, 0], [0.45, -0.45, 0],
    [0.7, -0.45, 0], [-0.18, -0.45, 0], [-0.45, -0.45, 0], [-0.7, -0.45, 0],
])  # fmt: skip


def test_the_root_that_projects_the_pose_onto_its_keypoints() -> None:
    rng = np.random.default_rng(0)
    cam = Camera.for_image(1280, 720)
    poses = STAND + rng.normal(0, 0.05, (8, 17, 3))
    poses -= poses[:, :1]
    roots = np.column_stack([rng.uniform(-1, 1, 8), rng.uniform(-0.5, 0.5, 8), rng.uniform(2, 9, 8)])
    uv = cam.project(poses + roots[:, None])
    np.testing.assert_allclose(solve_root(poses, uv, np.ones((8, 17)), cam), roots, atol=1e-9)


def test_low_scores_count_less_and_too_few_joints_or_behind_the_camera_give_nan() -> None:
    cam = Camera.for_image(640, 480, fov_deg=60)
    root = np.array([0.3, 0.1, 4.0])
    uv = cam.project(STAND + root)
    wrong = uv.copy()
    wrong[13] += 80  # one wrist far off ...
    w = np.ones(17)
    w[13] = 0.0  # ... with a zero score: ignored
    np.testing.assert_allclose(solve_root(STAND, wrong, w, cam), root, atol=1e-9)
    assert abs(solve_root(STAND, wrong, np.ones(17), cam)[2] - 4.0) > 1e-3  # counted: it moves the root
    one = np.zeros(17)
    one[0] = 1
    assert np.isnan(solve_root(STAND, uv, one, cam)).all()  # one joint: no solution
    assert np.isnan(solve_root(STAND, uv, np.ones(17), Camera(-500.0, 320, 240, 640, 480, False))).all()  # behind


def test_the_camera_from_focal_length_field_of_view_or_the_default() -> None:
    cam = Camera.for_image(1920, 1080)
    assert cam.assumed and math.isclose(cam.focal_px, 960 / math.tan(math.radians(DEFAULT_FOV_DEG / 2)))
    assert (cam.cx, cam.cy) == (960, 540)
    assert math.isclose(Camera.for_image(1000, 500, fov_deg=90).focal_px, 500.0)
    given = Camera.for_image(1000, 500, focal_px=1234.5)
    assert given.focal_px == 1234.5 and not given.assumed
    assert given.to_dict() == {"focal_px": 1234.5, "cx": 500.0, "cy": 250.0, "width": 1000, "height": 500,
                               "assumed": False}  # fmt: skip
    for bad in ({"focal_px": 0.0}, {"focal_px": float("nan")}, {"fov_deg": 0.5}, {"fov_deg": 180.0},
                {"focal_px": 800.0, "fov_deg": 60.0}):  # fmt: skip
        with pytest.raises(ValueError):
            Camera.for_image(640, 480, **bad)  # type: ignore[arg-type]


def test_a_smaller_person_is_placed_too_far_unless_their_height_is_given() -> None:
    cam = Camera.for_image(1280, 720)
    child = STAND * 0.6
    root = np.array([0.2, 0.3, 3.0])
    uv = cam.project(child + root)
    adult = solve_root(STAND, uv, np.ones(17), cam)  # the lifter's adult proportions
    assert math.isclose(adult[2], 3.0 / 0.6, rel_tol=1e-9)  # too far by the size ratio
    hinted = solve_root(STAND, uv, np.ones(17), cam, person_height_m=float(skeleton_height(child)))
    np.testing.assert_allclose(hinted, root, atol=1e-9)


def test_skeleton_height_sums_the_bones_of_head_spine_and_leg() -> None:
    assert math.isclose(float(skeleton_height(STAND)), 0.23 + 0.25 + math.hypot(0.1, 0.05) + math.hypot(0.12, 0.05)
                        + 0.13 + 0.45 + 0.43, rel_tol=1e-9)  # fmt: skip
