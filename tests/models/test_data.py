from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hotpose.models.data import (
    Augment,
    Clip,
    DetectorNoise,
    EvalCameras,
    bone_lengths,
    eval_views,
    load_clips,
    look_at,
    mirror_world,
    resample,
    retarget,
    rig_proportions,
    rotation,
    scale_bones,
    split_by_subject,
    swing_limbs,
    training_sample,
    view,
    widen_shoulders,
    windows,
)
from hotpose.models.keypoints import H36M_PARENTS, denormalize_screen, normalize_screen


def _walker(t: int = 60) -> np.ndarray:
    """A crude standing skeleton (Y up, metres) that moves along X."""
    base = np.array([
        [0, 1.0, 0], [-0.1, 1.0, 0], [-0.1, 0.55, 0], [-0.1, 0.1, 0], [0.1, 1.0, 0], [0.1, 0.55, 0],
        [0.1, 0.1, 0], [0, 1.25, 0], [0, 1.5, 0], [0, 1.6, 0.05], [0, 1.75, 0], [0.18, 1.45, 0],
        [0.2, 1.2, 0], [0.22, 0.95, 0], [-0.18, 1.45, 0], [-0.2, 1.2, 0], [-0.22, 0.95, 0],
    ], dtype=np.float32)  # fmt: skip
    steps = np.linspace(0, 1, t, dtype=np.float32)[:, None, None] * np.array([1.0, 0, 0], dtype=np.float32)
    return base[None] + steps


def test_projection_and_normalisation_round_trip() -> None:
    world = _walker(10)
    cam = look_at(world[:, 0].mean(0), 0.4, 5.0, 1.4, 1145.0)
    cam_xyz = cam.to_camera(world)
    px = cam.project(cam_xyz)
    # the target (mean pelvis) is in front of the camera and projects to the image centre
    centre = cam.project(cam.to_camera(world[:, 0].mean(0)))
    assert np.allclose(centre, [500, 500], atol=1e-6)
    # back-project pixels with the known depth: the camera-frame points come back
    uv = denormalize_screen(normalize_screen(px, 1000, 1000), 1000, 1000)
    back = np.concatenate([(uv - 500) / 1145.0 * cam_xyz[..., 2:3], cam_xyz[..., 2:3]], axis=-1)
    assert np.allclose(back, cam_xyz, atol=1e-6)
    # camera axes: y points down (the head is above the pelvis: smaller y)
    _, target = view(world, cam)
    assert (target[:, 10, 1] < 0).all() and np.allclose(target[:, 0], 0)


def test_windows_edge_padding() -> None:
    x = np.arange(10)[:, None].astype(np.float32)
    w, t = windows(x, 4)
    assert t == 10 and w.shape == (3, 4, 1)
    assert w[-1, :, 0].tolist() == [8, 9, 9, 9]


def test_bone_scaling_keeps_structure_and_mirroring_swaps_sides() -> None:
    world = _walker(3)
    scaled = scale_bones(world, np.random.default_rng(0), 0.1)
    for j, p in enumerate(H36M_PARENTS):
        if p < 0:
            continue
        bone = np.linalg.norm(world[:, j] - world[:, p], axis=-1)
        ratio = np.linalg.norm(scaled[:, j] - scaled[:, p], axis=-1) / bone
        assert np.all((ratio > 0.899) & (ratio < 1.101))
    wide = widen_shoulders(world, 1.5)
    assert np.allclose(np.linalg.norm(wide[:, 11] - wide[:, 14], axis=-1), 1.5 * 0.36, atol=1e-6)
    assert np.allclose(wide[:, 13] - wide[:, 11], world[:, 13] - world[:, 11])  # the arm moves with it
    m = mirror_world(world)
    assert np.allclose(m[:, 1, 0], -world[:, 4, 0])  # r_hip <- mirrored l_hip


def test_retarget_gives_the_requested_bone_lengths_and_keeps_directions() -> None:
    world = _walker(5)
    short = scale_bones(world, np.random.default_rng(1), 0.3)
    clips = [Clip("a", "s1", world, 30.0, rig="tall"), Clip("b", "s2", short, 30.0, rig="short")]
    props = rig_proportions(clips)
    assert set(props) == {"tall", "short"}
    assert np.allclose(props["tall"], bone_lengths(world))
    moved = retarget(short, props["tall"])
    assert np.allclose(bone_lengths(moved), bone_lengths(world), atol=1e-5)
    assert np.allclose(moved[:, 0], short[:, 0])  # the pelvis stays
    for j, p in enumerate(H36M_PARENTS):
        if p < 0:
            continue
        a, b = moved[:, j] - moved[:, p], short[:, j] - short[:, p]
        cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
        assert np.all(cos > 1 - 1e-6)  # joint angles kept
    # a retargeted training window carries the other family's proportions (up to the bone jitter)
    clip = Clip("c", "s", short, 30.0, rig="short")
    aug = Augment(retarget_p=1.0, bone_scale=0.0, mirror_p=0.0)
    _, y = training_sample(clip, 4, np.random.default_rng(0), aug, DetectorNoise(), [props["tall"]])
    assert np.allclose(bone_lengths(y), bone_lengths(world), atol=1e-4)


def test_rotation_turns_a_hanging_leg_forward() -> None:
    # 90 degrees about world X takes a leg hanging along -Y to one pointing along -Z (or +Z)
    leg = np.array([0.0, -1.0, 0.0]) @ rotation(np.array([1.0, 0.0, 0.0]), math.pi / 2).T
    assert np.allclose(np.abs(leg), [0, 0, 1], atol=1e-9)


def test_swing_limbs_keeps_bones_and_roots_and_makes_new_poses() -> None:
    world = _walker(30)
    moved = [swing_limbs(world, np.random.default_rng(seed), 75.0, 30.0) for seed in range(20)]
    for m in moved:
        assert np.allclose(bone_lengths(m), bone_lengths(world), atol=1e-5)
        assert np.allclose(m[:, :2], world[:, :2]) and np.allclose(m[:, 4], world[:, 4])  # pelvis, hips
        assert np.allclose(m[:, 7], (m[:, 0] + m[:, 8]) / 2, atol=1e-6)  # spine: pelvis-thorax midpoint
        # one rotation for the whole window: the offsets of a limb from its root move rigidly
        d = m[:, 3] - m[:, 1]
        assert np.allclose(d, d[:1], atol=1e-6)
    ankles = np.array([m[0, 3] - m[0, 1] for m in moved])
    assert (np.linalg.norm(ankles - (world[0, 3] - world[0, 1]), axis=-1) > 0.1).sum() >= 5  # legs swung
    assert (ankles[:, 1] > -0.8).any()  # some far from hanging straight down
    # training windows get them when asked, and only then
    clip = Clip("c", "s", world, 30.0)
    off = Augment(bone_scale=0.0, shoulder_width=(1.0, 1.0), mirror_p=0.0, swing_p=0.0)
    on = Augment(bone_scale=0.0, shoulder_width=(1.0, 1.0), mirror_p=0.0, swing_p=1.0, torso_deg=0.0)

    def pairwise(x: np.ndarray) -> np.ndarray:  # joint-to-joint distances: the pose, not the camera
        return np.linalg.norm(x[:, :, None] - x[:, None], axis=-1)

    _, y0 = training_sample(clip, 8, np.random.default_rng(3), off, DetectorNoise())
    _, y1 = training_sample(clip, 8, np.random.default_rng(3), on, DetectorNoise())
    assert np.allclose(pairwise(y0), pairwise(world[:8]), atol=1e-5)
    assert not np.allclose(pairwise(y1), pairwise(world[:8]), atol=1e-3)
    assert np.allclose(bone_lengths(y1), bone_lengths(world), atol=1e-5)


def test_resample_speed() -> None:
    x = np.arange(20, dtype=np.float32)[:, None, None] * np.ones((1, 17, 3), np.float32)
    assert np.allclose(resample(x, 2.0, 0.5, 4)[:, 0, 0], [2, 2.5, 3, 3.5])
    assert np.allclose(resample(x, 15.0, 2.0, 4)[:, 0, 0], [15, 17, 19, 19])  # clamped at the end


def test_training_sample_shapes_and_noise() -> None:
    clip = Clip("c", "s", _walker(300), 30.0)
    rng = np.random.default_rng(0)
    x, y = training_sample(clip, 81, rng, Augment(), DetectorNoise())
    assert x.shape == (81, 17, 2) and y.shape == (81, 17, 3)
    assert np.allclose(y[:, 0], 0) and np.isfinite(x).all()


def test_padded_windows_run_off_either_end_of_the_clip() -> None:
    wobble = np.random.default_rng(1).normal(0, 0.02, (300, 17, 3)).astype(np.float32)
    clip = Clip("c", "s", _walker(300) + wobble, 30.0)  # a new pose every frame: clamped frames repeat
    aug = Augment(speed=(1.0, 1.0), swing_p=0.0)

    def ends(pad_p: float, seed: int) -> tuple[int, int]:
        rng = np.random.default_rng(seed)
        front = back = 0
        for _ in range(100):
            _, y = training_sample(clip, 81, rng, Augment(**{**aug.__dict__, "pad_p": pad_p}), DetectorNoise())
            front += bool(np.allclose(y[0], y[1]))
            back += bool(np.allclose(y[-1], y[-2]))
        return front, back

    assert ends(0.0, 0) == (0, 0)  # windows inside the clip: never padded
    front, back = ends(1.0, 0)  # anchored anywhere: start and end padding, each about 81 / 380 of windows
    assert 5 <= front <= 45 and 5 <= back <= 45
    # off by default, with no extra draw: the windows of earlier training runs are unchanged
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    x0, _ = training_sample(clip, 81, a, Augment(), DetectorNoise())
    x1, _ = training_sample(clip, 81, b, Augment(pad_p=0.0), DetectorNoise())
    assert np.array_equal(x0, x1) and a.random() == b.random()


def test_turned_cameras_see_the_subject_off_the_image_centre() -> None:
    clip = Clip("c", "s", _walker(300), 30.0)

    def offsets(aim_p: float) -> np.ndarray:
        rng = np.random.default_rng(0)
        aug = Augment(noise_p=0.0, aim_p=aim_p)
        return np.array([np.linalg.norm(training_sample(clip, 27, rng, aug, DetectorNoise())[0][:, 0].mean(0))
                         for _ in range(200)])  # fmt: skip

    aimed, turned = offsets(0.0), offsets(1.0)
    # pan up to 25 degrees at a focal length of 800-1600 px in a 1000 px image: up to 0.75-1.5 units off
    assert np.percentile(aimed, 90) < 0.35 < np.percentile(turned, 90)
    assert turned.max() > 0.6
    # the turn is the camera's: the root-relative target keeps its shape, only its frame changes
    rng = np.random.default_rng(1)
    still = Augment(aim_p=1.0, bone_scale=0.0, shoulder_width=(1.0, 1.0), mirror_p=0.0)
    _, y = training_sample(clip, 27, rng, still, DetectorNoise())
    hip = np.linalg.norm(clip.joints[0, 1] - clip.joints[0, 0])
    assert np.allclose(np.linalg.norm(y[:, 1], axis=-1), hip, atol=1e-4)
    # off by default, with no extra draw: the windows of earlier training runs are unchanged
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    x0, _ = training_sample(clip, 27, a, Augment(), DetectorNoise())
    x1, _ = training_sample(clip, 27, b, Augment(aim_p=0.0), DetectorNoise())
    assert np.array_equal(x0, x1) and a.random() == b.random()


def test_other_eval_cameras_change_only_the_cameras() -> None:
    clips = [Clip("a", "s1", _walker(50), 30.0)]
    protocol, same = eval_views(clips), eval_views(clips, cameras=EvalCameras())
    assert all(np.array_equal(a.inputs["noisy2d"], b.inputs["noisy2d"]) for a, b in zip(protocol, same, strict=True))
    webcam = eval_views(clips, cameras=EvalCameras(focal=715.0, distance=(2.3, 3.2)))
    for p, w in zip(protocol, webcam, strict=True):
        # the same poses and frames: only the camera (its rotation) differs in the targets
        assert np.allclose(np.linalg.norm(p.target, axis=-1), np.linalg.norm(w.target, axis=-1), atol=1e-5)
        # closer with a shorter focal length: about the same size on screen, stronger perspective
        h_p = np.ptp(p.inputs["gt2d"][..., 1], axis=-1).mean()
        h_w = np.ptp(w.inputs["gt2d"][..., 1], axis=-1).mean()
        assert 0.8 < h_w / h_p < 1.6 and not np.allclose(p.inputs["gt2d"], w.inputs["gt2d"], atol=0.01)


def test_eval_views_are_fixed_and_four_per_clip() -> None:
    clips = [Clip("a", "s1", _walker(50), 30.0), Clip("b", "s2", _walker(40), 30.0)]
    v1, v2 = eval_views(clips), eval_views(clips)
    assert len(v1) == 8
    assert all(np.array_equal(a.inputs["noisy2d"], b.inputs["noisy2d"]) for a, b in zip(v1, v2, strict=True))
    assert not np.array_equal(v1[0].inputs["gt2d"], v1[0].inputs["noisy2d"])
    # four azimuths 90 degrees apart: the camera-frame targets differ
    assert not np.allclose(v1[0].target, v1[1].target)


def test_split_holds_out_subjects_across_releases(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    arrays = {f"c{i}": _walker(30 + i) for i in range(4)}
    np.savez(
        path, **arrays, clip_names=np.array(list(arrays)),
        clip_desc=np.array(["walk", "run", "walk", "dance (CMU subj. 94)"]),
        clip_source=np.array(["x :: subjects/005/005_01.bvh", "y :: data/05/05_02.bvh", "z :: data/07/07_01.bvh", ""]),
        clip_fps=np.array([30.0] * 4),
    )  # fmt: skip
    clips = load_clips(path)
    assert [c.subject for c in clips] == ["cmu005", "cmu005", "cmu007", "cmu094"]
    train, val = split_by_subject(clips)
    assert {c.subject for c in val} == {"cmu005", "cmu007"} and {c.subject for c in train} == {"cmu094"}


def test_load_rejects_bad_shapes(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, a=np.zeros((5, 16, 3)), clip_names=np.array(["a"]))
    with pytest.raises(ValueError, match="expected \\[T, 17, 3\\]"):
        load_clips(path)


def test_look_at_azimuths_circle_the_subject() -> None:
    target = np.array([1.0, 1.0, 2.0])
    for az in (0.0, math.pi / 2, math.pi):
        cam = look_at(target, az, 5.0, 1.5, 1000.0)
        assert np.hypot(*(cam.position - target)[[0, 2]]) == pytest.approx(5.0)
        assert cam.to_camera(target)[2] > 0
