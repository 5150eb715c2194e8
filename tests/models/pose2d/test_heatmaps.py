"""The official top-down test pipeline's maths: the box rule, the crop affine, the flip test and decoding."""

from __future__ import annotations

import numpy as np
import pytest

from hotpose.models.pose2d.heatmaps import (
    COCO_FLIP_PAIRS,
    DARKPOSE,
    MMPOSE,
    HeatmapPipeline,
    apply_affine,
    box_to_crop,
    crop_matrix,
    decode,
    decode_dark,
    decode_quarter,
    flip_back,
    merge_flipped,
    pose_score,
    warp_crop,
)

HM = (64, 48)  # heatmap (height, width) of a 256x192 crop


def gaussians(centres: np.ndarray, size: tuple[int, int] = HM, sigma: float = 2.0) -> np.ndarray:
    """Heatmaps [1, J, h, w] with unit Gaussians at `centres` [J, 2] (x, y cells), as the training targets."""
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    maps = [np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2)) for cx, cy in centres]
    return np.stack(maps)[None].astype(np.float32)


def test_dark_decoding_recovers_subpixel_gaussian_centres() -> None:
    rng = np.random.default_rng(0)
    centres = np.stack([rng.uniform(4, 43, 17), rng.uniform(4, 59, 17)], axis=1)
    cells, scores = decode_dark(gaussians(centres))
    assert np.abs(cells[0] - centres).max() < 0.1
    assert np.allclose(scores[0], 1.0, atol=0.15)  # the maximum of the unblurred map, at a cell


def test_quarter_decoding_is_argmax_plus_a_quarter_cell_towards_the_higher_neighbour() -> None:
    centres = np.array([[10.25, 20.0], [30.0, 40.75], [5.75, 7.25]])  # a quarter either side of a cell
    cells, _ = decode_quarter(gaussians(centres))
    assert np.allclose(cells[0], centres)
    rng = np.random.default_rng(1)
    centres = np.stack([rng.uniform(4, 43, 17), rng.uniform(4, 59, 17)], axis=1)
    cells, _ = decode_quarter(gaussians(centres))
    assert np.abs(cells[0] - centres).max() <= 0.25 + 1e-9


def test_decoding_leaves_the_argmax_at_the_border_and_zero_maps_at_the_origin() -> None:
    maps = gaussians(np.array([[0.4, 30.0], [20.0, 63.0]]))
    maps = np.concatenate([maps, np.zeros((1, 1, *HM), np.float32)], axis=1)
    for pipeline in (DARKPOSE, MMPOSE):
        cells, scores = decode(maps, pipeline)
        assert np.allclose(cells[0, 0], [0, 30]) and np.allclose(cells[0, 1], [20, 63])
        assert np.allclose(cells[0, 2], [0, 0]) and scores[0, 2] == 0


@pytest.mark.parametrize("pipeline", [DARKPOSE, MMPOSE], ids=lambda p: p.name)
def test_box_rule_takes_the_crop_aspect_and_pads_by_a_quarter(pipeline: HeatmapPipeline) -> None:
    centre, size = box_to_crop((100, 50, 160, 250), 0.75, pipeline)  # 60 x 200: too narrow
    assert np.allclose(size, [150 * 1.25, 200 * 1.25])
    expected = [100 + 59 / 2, 50 + 199 / 2] if pipeline.aligned else [130, 150]
    assert np.allclose(centre, expected)
    _, size = box_to_crop((0, 0, 300, 100), 0.75, pipeline)  # too wide
    assert np.allclose(size, [300 * 1.25, 400 * 1.25])


def test_crop_affine_is_the_official_one() -> None:
    """The official get_affine_transform fixes the centre and a point half a width above it, with (n - 1)
    (DarkPose) or n (mmpose) extents; crop_matrix is its inverse."""
    centre, width = np.array([321.0, 207.5]), 150.0
    for pipeline, half_src, mid in ((DARKPOSE, (width - 1) / 2, (95.5, 127.5)), (MMPOSE, width / 2, (96.0, 128.0))):
        a = crop_matrix(centre, width, (256, 192), pipeline)
        half_dst = (191 if pipeline.aligned else 192) / 2
        assert np.allclose(apply_affine(a, np.array(mid)), centre)
        assert np.allclose(apply_affine(a, np.array([mid[0], mid[1] - half_dst])), centre - [0, half_src])
        assert np.allclose(apply_affine(a, np.array([mid[0] + half_dst, mid[1]])), centre + [half_src, 0])
    turned = crop_matrix(centre, width, (256, 192), DARKPOSE, angle=np.pi / 2)
    assert np.allclose(apply_affine(turned, np.array([96.5, 127.5])) - centre, [0, (width - 1) / 191], atol=1e-9)


@pytest.mark.parametrize("pipeline", [DARKPOSE, MMPOSE], ids=lambda p: p.name)
def test_a_point_goes_through_the_warp_and_back_within_half_a_pixel(pipeline: HeatmapPipeline) -> None:
    """A Gaussian blob in the image, resampled on the heatmap grid of a person box's crop, decodes back to
    the blob's centre in image pixels."""
    rng = np.random.default_rng(2)
    h, w = 480, 640
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    for _ in range(5):
        x0, y0 = rng.uniform(50, 250), rng.uniform(20, 100)
        box = (x0, y0, x0 + rng.uniform(120, 220), y0 + rng.uniform(250, 350))
        centre, size = box_to_crop(box, 0.75, pipeline)
        to_image = crop_matrix(centre, size[0], HM, pipeline)
        target = apply_affine(to_image, np.array([rng.uniform(8, 40), rng.uniform(8, 56)]))  # inside the crop
        cell = size[0] / HM[1]  # image pixels per heatmap cell
        blob = np.exp(-((xs - target[0]) ** 2 + (ys - target[1]) ** 2) / (2 * (2 * cell) ** 2)).astype(np.float32)
        heat = warp_crop(blob, to_image, HM)[None, None]  # [1, 1, 64, 48]
        cells, _ = decode(heat, pipeline)
        got = apply_affine(to_image, cells[0, 0])
        limit = 0.5 if pipeline.decoder == "dark" else 0.25 * cell + 0.5  # the quarter rule: a quarter cell
        assert np.abs(got - target).max() < limit, (got, target)


def test_flip_back_mirrors_and_swaps_left_and_right() -> None:
    rng = np.random.default_rng(3)
    h = rng.random((2, 17, 64, 48)).astype(np.float32)
    back = flip_back(h)
    assert np.array_equal(flip_back(back), h)
    assert np.array_equal(back[:, 0], h[:, 0, :, ::-1])
    for a, b in COCO_FLIP_PAIRS:
        assert np.array_equal(back[:, a], h[:, b, :, ::-1])


def test_flip_test_of_a_symmetric_input_is_symmetric_and_mmpose_shifts_one_column() -> None:
    rng = np.random.default_rng(4)
    h = rng.random((1, 17, 64, 48)).astype(np.float32)
    merged = merge_flipped(h, h, DARKPOSE)  # a symmetric input is its own mirror: the same maps twice
    assert np.allclose(flip_back(merged), merged)
    shifted = merge_flipped(h, h, MMPOSE)
    back = flip_back(h)
    assert np.allclose(shifted[..., 1:], (h[..., 1:] + back[..., :-1]) / 2)
    assert np.allclose(shifted[..., 0], (h[..., 0] + back[..., 0]) / 2)


def test_pose_score_is_the_mean_of_the_keypoint_scores_above_the_threshold() -> None:
    assert pose_score(np.array([0.9, 0.7, 0.1, 0.0])) == pytest.approx(0.8)
    assert pose_score(np.array([0.1, 0.15])) == 0.0
