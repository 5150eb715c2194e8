"""The heatmap models as the 2D stage's keypoint model: crops, the flip test, keypoints back in image pixels, and
no model without its authors' weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from hotpose.models.detector import HEATMAP_KEYPOINT_MODELS, KEYPOINT_MODELS
from hotpose.models.detector.base import Detection
from hotpose.models.detector.heatmap_pose import HeatmapPose, HeatmapPoseConfig, load_heatmap_pose
from hotpose.models.detector.weights import WeightsError
from hotpose.models.pose2d import create_pose2d
from hotpose.models.pose2d.heatmaps import COCO_FLIP_PAIRS, DARKPOSE, MMPOSE, HeatmapPipeline, flip_back
from hotpose.service.cli import main

BOX = np.array([212.0, 96.0, 332.0, 416.0])  # a standing person, 120 x 320 px, in a 640 x 480 frame


@dataclass(frozen=True)
class TinyConfig:
    image_size: tuple[int, int] = (256, 192)
    joints: int = 17

    @property
    def heatmap_size(self) -> tuple[int, int]:
        return self.image_size[0] // 4, self.image_size[1] // 4


class TinyHeatmapNet(nn.Module):
    """Two stride-2 convolutions: a crop [B, 3, 256, 192] -> 17 heatmaps [B, 17, 64, 48], random weights."""

    def __init__(self) -> None:
        super().__init__()
        self.config = TinyConfig()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 17, 3, 2, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class GaussianNet(nn.Module):
    """Ignores the crop: unit Gaussians (sigma 2 cells) at fixed heatmap cells [17, 2]."""

    def __init__(self, cells: np.ndarray) -> None:
        super().__init__()
        self.config = TinyConfig()
        ys, xs = np.mgrid[0:64, 0:48].astype(np.float64)
        maps = [np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 8.0) for x, y in cells]
        self.register_buffer("maps", torch.from_numpy(np.stack(maps)).float())

    def forward(self, x: Tensor) -> Tensor:
        return self.maps.expand(x.shape[0], -1, -1, -1)


def frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (480, 640, 3), dtype=np.uint8)


def test_keypoints_of_a_person_box_lie_in_its_crop_with_the_right_shapes() -> None:
    # mmpose's decoding: DARK's Newton step, as the official code takes it, can throw a random model's
    # noisy peak far off (a trained model's peaks are Gaussian)
    torch.manual_seed(0)
    pose = HeatmapPose(TinyHeatmapNet(), MMPOSE, "tiny")
    roi = pose.roi_for(Detection(BOX, 0.9))
    assert roi.width / roi.height == pytest.approx(0.75)
    assert roi.height == pytest.approx(320 * 1.25) and (roi.cx, roi.cy) == pytest.approx((272.5, 256.5))
    assert pose.estimate_batch([]) == [] and pose.estimate_batch([(frame(), [])]) == [[]]
    (kp,) = pose.estimate(frame(), [roi])
    assert kp.keypoints.shape == (17, 3) and kp.keypoints.dtype == np.float32
    x0, y0, x1, y1 = roi.bbox()
    assert ((kp.keypoints[:, 0] >= x0) & (kp.keypoints[:, 0] <= x1)).all()
    assert ((kp.keypoints[:, 1] >= y0) & (kp.keypoints[:, 1] <= y1)).all()
    assert ((kp.keypoints[:, 2] >= 0) & (kp.keypoints[:, 2] <= 1)).all() and 0 <= kp.score <= 1
    assert kp.next_roi.width / kp.next_roi.height == pytest.approx(0.75)


def test_crops_of_several_frames_run_as_one_batch_in_order() -> None:
    torch.manual_seed(0)
    pose = HeatmapPose(TinyHeatmapNet(), DARKPOSE, "tiny", HeatmapPoseConfig(batch=2))
    rois = [pose.roi_for(Detection(BOX + d, 0.9)) for d in (0.0, 40.0, -60.0)]
    both = pose.estimate_batch([(frame(1), rois[:2]), (frame(2), []), (frame(3), rois[2:])])
    alone = [pose.estimate(frame(1), rois[:2]), [], pose.estimate(frame(3), rois[2:])]
    assert [len(b) for b in both] == [2, 0, 1]
    for got, want in zip(both, alone, strict=True):
        for a, b in zip(got, want, strict=True):
            assert np.allclose(a.keypoints, b.keypoints, atol=1e-4)


def _official_image_point(cell: np.ndarray, pipeline: HeatmapPipeline) -> np.ndarray:
    """The official decoding's image point of a heatmap cell for BOX, written out (pixel indices)."""
    x0, y0, x1, y1 = BOX
    w, h = x1 - x0, y1 - y0
    if pipeline.aligned:  # DarkPose: centre x + (w - 1) / 2, (n - 1) extents
        centre = np.array([x0 + (w - 1) / 2, y0 + (h - 1) / 2])
        width = h * 0.75 * 1.25
        return centre + (cell - [23.5, 31.5]) * (width - 1) / 47
    centre = np.array([x0 + w / 2, y0 + h / 2])  # mmpose: x + w / 2, n extents
    width = h * 0.75 * 1.25
    return cell * width / 48 + centre - [width / 2, width / 2 / 0.75]


@pytest.mark.parametrize("pipeline", [DARKPOSE, MMPOSE], ids=lambda p: p.name)
def test_heatmap_peaks_come_back_as_the_official_image_points(pipeline: HeatmapPipeline) -> None:
    rng = np.random.default_rng(5)
    cells = np.stack([rng.uniform(6, 41, 17), rng.uniform(6, 57, 17)], axis=1)
    if pipeline.decoder == "quarter":  # exact only a quarter cell off a cell centre
        cells = np.round(cells) + rng.choice([-0.25, 0.25], cells.shape)
    pose = HeatmapPose(GaussianNet(cells), pipeline, "gauss", HeatmapPoseConfig(flip_test=False))
    (kp,) = pose.estimate(frame(), [pose.roi_for(Detection(BOX, 0.9))])
    for j in range(17):  # hotpose's pixel frame is the official one + 0.5
        assert np.abs(kp.keypoints[j, :2] - (_official_image_point(cells[j], pipeline) + 0.5)).max() < 0.5
    assert kp.score == pytest.approx(1.0, abs=0.1)


def test_the_flip_test_of_a_symmetric_crop_is_symmetric() -> None:
    torch.manual_seed(0)
    pose = HeatmapPose(TinyHeatmapNet(), DARKPOSE, "tiny")
    x = torch.randn(2, 3, 256, 192)
    heat = pose.heatmaps(x + x.flip(3))  # left-right symmetric inputs
    assert np.allclose(flip_back(heat), heat, atol=1e-5)
    cells = np.stack([np.full(17, 12.25), np.linspace(8, 56, 17)], axis=1)
    for a, b in COCO_FLIP_PAIRS:  # a symmetric pose: each right joint the mirror image of its left one
        cells[b] = [47 - cells[a, 0], cells[a, 1]]
    cells[0, 0] = 23.5
    pose = HeatmapPose(GaussianNet(cells), DARKPOSE, "gauss")
    (kp,) = pose.estimate(frame(), [pose.roi_for(Detection(BOX, 0.9))])
    middle = (BOX[0] + BOX[2]) / 2
    for a, b in COCO_FLIP_PAIRS:
        assert kp.keypoints[a, 0] + kp.keypoints[b, 0] == pytest.approx(2 * middle, abs=1e-3)
        assert kp.keypoints[a, 1] == pytest.approx(kp.keypoints[b, 1], abs=1e-3)


def test_transpose_explains_a_keypoint_with_attention_over_its_crop() -> None:
    torch.manual_seed(0)
    pose = HeatmapPose(create_pose2d("transpose_r_a3", device="cpu"), DARKPOSE, "transpose_r_a3")
    img = frame()
    roi = pose.roi_for(Detection(BOX, 0.9))
    point, dependency = pose.explain(img, roi, 9)
    assert dependency.shape == img.shape[:2] and (dependency >= 0).all() and dependency.max() > 0
    x0, y0, x1, y1 = (int(v) for v in roi.bbox())
    assert dependency[:, : max(x0 - 2, 0)].max() == 0 and dependency[:, x1 + 2 :].max() == 0
    assert x0 <= point[0] <= x1 and y0 <= point[1] <= y1
    with pytest.raises(ValueError, match="no attention"):
        HeatmapPose(TinyHeatmapNet(), DARKPOSE, "tiny").explain(img, roi, 9)


def test_a_heatmap_model_without_weights_refuses_saying_where_the_authors_publish_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert set(HEATMAP_KEYPOINT_MODELS).isdisjoint(KEYPOINT_MODELS)
    with pytest.raises(WeightsError, match="HOTPOSE_KEYPOINTS_WEIGHTS") as info:
        HEATMAP_KEYPOINT_MODELS["transpose_h_a6"]("cpu", None)
    assert "releases/download/Hub/tp_h_48_256x192_enc6_d96_h192_mh1.pth" in str(info.value)
    with pytest.raises(WeightsError, match="drive.google.com"):
        load_heatmap_pose("uniformer_b_256x192", None)
    with pytest.raises(WeightsError, match="not found"):
        load_heatmap_pose("tokenpose_b", tmp_path / "absent.pth")
    with pytest.raises(ValueError, match="takes no weights file"):
        KEYPOINT_MODELS["blazepose_full"]("cpu", None, weights=tmp_path / "x.pth")


def test_the_server_does_not_start_a_heatmap_model_without_weights(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("uvicorn started")

    monkeypatch.setattr(uvicorn, "run", never)
    monkeypatch.setenv("HOTPOSE_KEYPOINTS", "tokenpose_l_d24")
    monkeypatch.delenv("HOTPOSE_KEYPOINTS_WEIGHTS", raising=False)
    assert main(["serve"]) == 1
    err = capsys.readouterr().err
    assert "tokenpose_l_d24 needs its authors' weights" in err and "github.com/leeyegy/TokenPose" in err
