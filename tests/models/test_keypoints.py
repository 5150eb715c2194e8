from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hotpose.models.keypoints import (
    H36M_EDGES,
    H36M_FLIP_PERM,
    H36M_JOINTS,
    coco_to_h36m,
    denormalize_screen,
    flip_augment,
    flip_pose,
    normalize_image,
    normalize_screen,
)


def test_h36m_tables() -> None:
    assert len(H36M_JOINTS) == 17 and H36M_JOINTS[9] == "neck_nose" and H36M_JOINTS[14] == "r_shoulder"
    assert len(H36M_EDGES) == 16
    assert H36M_FLIP_PERM[1] == 4 and H36M_FLIP_PERM[16] == 13 and H36M_FLIP_PERM[0] == 0
    assert sorted(H36M_FLIP_PERM) == list(range(17))


def test_coco_to_h36m_hand_made() -> None:
    coco = np.zeros((17, 2), dtype=np.float32)
    coco[0] = [50, 10]  # nose
    coco[1], coco[2] = [52, 8], [48, 8]  # eyes
    coco[3], coco[4] = [55, 12], [45, 12]  # ears
    coco[5], coco[6] = [60, 30], [40, 30]  # l/r shoulder
    coco[11], coco[12] = [56, 70], [44, 70]  # l/r hip
    coco[13], coco[14] = [57, 90], [43, 90]
    coco[15], coco[16] = [58, 110], [42, 110]
    coco[7], coco[8], coco[9], coco[10] = [65, 50], [35, 50], [66, 65], [34, 65]
    h = coco_to_h36m(coco)
    np.testing.assert_allclose(h[0], [50, 70])  # pelvis: mid-hips
    np.testing.assert_allclose(h[1], [44, 70])  # r_hip
    np.testing.assert_allclose(h[6], [58, 110])  # l_ankle
    # neck = mid-ears - mid-shoulders = [0, -18], trunk = mid-shoulders - pelvis = [0, -40]
    np.testing.assert_allclose(h[8], [50, 30 - 0.156 * 18 - 0.049 * 40], rtol=1e-5)  # thorax: above mid-shoulders
    np.testing.assert_allclose(h[7], (h[0] + h[8]) / 2)  # spine: mid pelvis-thorax
    np.testing.assert_allclose(h[9], [50, 12])  # neck_nose: mid-ears
    np.testing.assert_allclose(h[10], [50, 12 + 0.074 * 18 - 0.28 * 40], rtol=1e-5)  # head: above the ears
    np.testing.assert_allclose(h[13], [66, 65])  # l_wrist
    np.testing.assert_allclose(h[16], [34, 65])  # r_wrist
    batched = coco_to_h36m(np.stack([coco, coco + 1]))
    np.testing.assert_allclose(batched[1], h + 1)


def test_derived_joints_sit_where_the_training_mocap_puts_them() -> None:
    clips = Path(__file__).resolve().parents[3] / "shared" / "mocap" / "cmu_h36m17_30fps.npz"
    if not clips.exists():
        pytest.skip("shared mocap data absent")
    from hotpose.models.data import load_clips, split_by_subject

    train, _ = split_by_subject(load_clips(clips))
    j = np.concatenate([c.joints for c in train])[::7]  # [N, 17, 3] metres
    coco = np.zeros((len(j), 17, 3))  # the detector's view of the same skeleton: hips, shoulders, ears
    coco[:, 11], coco[:, 12], coco[:, 5], coco[:, 6] = j[:, 4], j[:, 1], j[:, 11], j[:, 14]
    coco[:, 3] = coco[:, 4] = j[:, 9]  # ears: their mean is the head's centre
    xy, zy = coco_to_h36m(coco[..., :2]), coco_to_h36m(coco[..., 2:0:-1])  # (a third channel is a score)
    h = np.concatenate([xy, zy[..., :1]], axis=-1)
    trunk = np.median(np.linalg.norm(j[:, 8] - j[:, 0], axis=-1))

    def error(joint: int) -> float:
        return float(np.median(np.linalg.norm(h[:, joint] - j[:, joint], axis=-1)))

    # median over frames, as a fraction of the pelvis-thorax length; mid-shoulders as the thorax: 9%,
    # neck_nose + 0.9 x neck as the head: 21%
    assert error(8) < 0.02 * trunk and error(10) < 0.08 * trunk


def test_coco_to_h36m_rejects_wrong_joint_count() -> None:
    with pytest.raises(ValueError, match="COCO-17"):
        coco_to_h36m(np.zeros((33, 2)))


def test_screen_normalisation_round_trip() -> None:
    w, h = 1280.0, 720.0
    px = np.array([[0.0, 0.0], [w, h], [w / 2, h / 2]])
    n = normalize_screen(px, w, h)
    np.testing.assert_allclose(n[0], [-1, -h / w])
    np.testing.assert_allclose(n[1], [1, h / w])
    np.testing.assert_allclose(n[2], [0, 0], atol=1e-12)
    np.testing.assert_allclose(denormalize_screen(n, w, h), px)
    t = torch.tensor(px, dtype=torch.float64)
    assert torch.allclose(denormalize_screen(normalize_screen(t, w, h), w, h), t)


def test_portrait_images_are_normalised_by_their_long_side() -> None:
    px = np.array([[0.0, 0.0], [720.0, 1280.0], [360.0, 640.0]])  # corners and centre of a 720 x 1280 frame
    np.testing.assert_allclose(normalize_image(px, 720, 1280), [[-0.5625, -1], [0.5625, 1], [0, 0]])
    land = np.random.default_rng(0).uniform(0, 720, (5, 2))
    np.testing.assert_allclose(normalize_image(land, 1280, 720), normalize_screen(land, 1280, 720))
    np.testing.assert_allclose(normalize_image(land, 720, 720), normalize_screen(land, 720, 720))


def test_flip_pose_is_an_involution() -> None:
    x = torch.randn(2, 5, 17, 3)
    assert torch.equal(flip_pose(flip_pose(x)), x)


def test_flip_augmentation_symmetry() -> None:
    # A model that is exactly mirror-equivariant is left unchanged by flip augmentation ...
    def lift(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x.norm(dim=-1, keepdim=True)], dim=-1)

    x = torch.randn(2, 9, 17, 2)
    assert torch.allclose(flip_augment(lift, x), lift(x))

    # ... and for any model, augmenting x or its mirror gives mirrored results.
    w = torch.randn(2, 3)

    def skewed(x: torch.Tensor) -> torch.Tensor:
        return x @ w

    a = flip_augment(skewed, x)
    b = flip_augment(skewed, flip_pose(x))
    assert torch.allclose(flip_pose(a), b, atol=1e-6)
