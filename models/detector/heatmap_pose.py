"""The seed papers' heatmap models (TransPose, TokenPose, UniFormer) as the 2D stage's `KeypointModel`.

Each person box becomes the official test crop (`hotpose.models.pose2d.heatmaps`: the model's aspect
0.75, x1.25, an affine warp to 256x192 or 384x288, ImageNet normalisation); all crops of a batch
and their mirror images run as one forward; the heatmaps are averaged with the mirrored ones,
decoded as the family's official code decodes them and mapped back to image pixels. Keypoints are
COCO-17 (`layout = "coco17"`); each one's score is its heatmap's maximum, the pose score the mean
of those above 0.2 (the official COCO rescoring without the box score).

The models need their authors' weights: `load_heatmap_pose` refuses to build one without a
checkpoint, saying where the authors publish it (hotpose ships none and never runs random weights).

For TransPose, `explain` gives the paper's dependency maps: the last encoder layer's attention from
a predicted keypoint's location over the image.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from hotpose.models.detector.base import Detection, Keypoints, Roi
from hotpose.models.detector.weights import WeightsError
from hotpose.models.device import DeviceLike, pick_device
from hotpose.models.pose2d.heatmaps import (
    HeatmapPipeline,
    apply_affine,
    box_to_crop,
    crop_matrix,
    decode,
    merge_flipped,
    normalise,
    pose_score,
    warp_crop,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeatmapPoseConfig:
    flip_test: bool = True  # the official test: the mean with the mirrored crop's heatmaps (2x the compute)
    batch: int = 16  # crops per forward (their mirror images ride along)
    visible_threshold: float = 0.2  # keypoint score above which a keypoint counts (pose score, box)
    # The next frame's crop: the box of the keypoints above `visible_threshold`, grown by this factor
    # before the official box rule (aspect, x1.25). Keypoints are joints: the head top, the feet and the
    # hands reach past them, and a detector's box holds them.
    keypoint_box_scale: float = 1.15


class HeatmapPose:
    """A top-down heatmap model on person boxes: the official test pipeline of its family."""

    layout = "coco17"

    def __init__(
        self,
        model: nn.Module,
        pipeline: HeatmapPipeline,
        name: str,
        config: HeatmapPoseConfig | None = None,
        device: DeviceLike = None,
    ) -> None:
        self.config = config or HeatmapPoseConfig()
        self.name = name
        self.pipeline = pipeline
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        cfg: Any = getattr(model, "config")  # noqa: B009  # every pose2d model carries its config
        self.input_size: tuple[int, int] = tuple(cfg.image_size)  # (height, width)

    # --- crops ------------------------------------------------------------------------

    def roi_for(self, detection: Detection) -> Roi:
        """The official crop of a detected box (in hotpose's pixel frame: the official centre + 0.5)."""
        return self._roi_from_box(detection.box)

    def _roi_from_box(self, box: np.ndarray) -> Roi:
        h, w = self.input_size
        centre, size = box_to_crop(box, w / h, self.pipeline)
        return Roi(float(centre[0]) + 0.5, float(centre[1]) + 0.5, float(size[0]), float(size[1]))

    def crop_matrix(self, roi: Roi, out_size: tuple[int, int] | None = None) -> np.ndarray:
        """2x3: a pixel of the crop (or of a grid of `out_size` over it, e.g. the heatmap) -> image pixel,
        both in the official pixel-index frame."""
        centre = np.array([roi.cx - 0.5, roi.cy - 0.5])
        return crop_matrix(centre, roi.width, out_size or self.input_size, self.pipeline, roi.angle)

    def crops(self, frame: np.ndarray, rois: list[Roi]) -> np.ndarray:
        """uint8 crops [P, H, W, 3] of the RGB frame."""
        return np.stack([warp_crop(frame, self.crop_matrix(r), self.input_size) for r in rois])

    # --- inference --------------------------------------------------------------------

    def heatmaps(self, x: Tensor) -> np.ndarray:
        """Normalised crops [P, 3, H, W] -> heatmaps [P, 17, H/4, W/4] (flip-tested when configured)."""
        outs = []
        with torch.inference_mode():
            for i in range(0, len(x), self.config.batch):
                part = x[i : i + self.config.batch].to(self.device)
                if self.config.flip_test:
                    both = self.model(torch.cat([part, part.flip(3)]))  # [2p, J, h, w]
                    outs.append(both.float().cpu().numpy())
                else:
                    outs.append(self.model(part).float().cpu().numpy())
        if not self.config.flip_test:
            return np.concatenate(outs)
        merged = []
        for out in outs:
            n = len(out) // 2
            merged.append(merge_flipped(out[:n], out[n:], self.pipeline))
        return np.concatenate(merged)

    def estimate(self, frame: np.ndarray, rois: list[Roi]) -> list[Keypoints]:
        return self.estimate_batch([(frame, rois)])[0]

    def estimate_batch(self, items: list[tuple[np.ndarray, list[Roi]]]) -> list[list[Keypoints]]:
        """Keypoints in each crop of each frame; all crops run through the model together."""
        owners = [(k, roi) for k, (_, rois) in enumerate(items) for roi in rois]
        out: list[list[Keypoints]] = [[] for _ in items]
        if not owners:
            return out
        crops = np.concatenate([self.crops(frame, rois) for frame, rois in items if rois])
        heat = self.heatmaps(torch.from_numpy(normalise(crops)))  # [P, J, h, w]
        cells, scores = decode(heat, self.pipeline)
        hm_size = (heat.shape[2], heat.shape[3])
        for p, (k, roi) in enumerate(owners):
            frame = items[k][0]
            xy = apply_affine(self.crop_matrix(roi, hm_size), cells[p]) + 0.5  # hotpose's pixel frame
            out[k].append(self._keypoints(xy, scores[p], frame.shape[1], frame.shape[0]))
        return out

    def _keypoints(self, xy: np.ndarray, scores: np.ndarray, width: int, height: int) -> Keypoints:
        conf = np.clip(scores, 0.0, 1.0)
        kp = np.concatenate([xy, conf[:, None]], axis=1).astype(np.float32)  # [17, 3]
        seen = conf > self.config.visible_threshold
        pts = xy[seen] if seen.sum() >= 2 else xy
        lo, hi = pts.min(0), pts.max(0)
        box = np.array([*np.clip(lo, 0, [width, height]), *np.clip(hi, 0, [width, height])])
        return Keypoints(kp, float(pose_score(scores, self.config.visible_threshold)), box, self.roi_from_keypoints(kp))

    def roi_from_keypoints(self, keypoints: np.ndarray) -> Roi:
        """The crop a pose [17, 3] (x, y pixels, score) places: the box of its keypoints above
        `visible_threshold` (all of them when fewer than two are), grown by `keypoint_box_scale`, then the
        official box rule."""
        seen = keypoints[:, 2] > self.config.visible_threshold
        pts = keypoints[seen, :2] if seen.sum() >= 2 else keypoints[:, :2]
        lo, hi = pts.min(0), pts.max(0)
        mid, half = (lo + hi) / 2, (hi - lo) / 2 * self.config.keypoint_box_scale
        return self._roi_from_box(np.concatenate([mid - half, mid + half]))

    # --- TransPose's explanation ----------------------------------------------------------

    def explain(self, frame: np.ndarray, roi: Roi, joint: int) -> tuple[np.ndarray, np.ndarray]:
        """TransPose's dependency map for one crop: (the keypoint `joint` in image pixels [2], the last
        encoder layer's attention from the feature cell at that keypoint's location [H, W] over the frame,
        zero outside the crop). The keypoint is decoded from the crop's own heatmaps (no flip), as the
        paper's maps use the predicted location."""
        attend = getattr(self.model, "forward_with_attention", None)
        if attend is None:
            raise ValueError(f"{self.name} has no attention maps to explain (the TransPose models have)")
        x = torch.from_numpy(normalise(self.crops(frame, [roi]))).to(self.device)
        with torch.inference_mode():
            heat_t, attn_t = attend(x)  # [1, J, h, w], [1, L, L]
        heat, attn = heat_t.float().cpu().numpy(), attn_t.float().cpu().numpy()[0]
        cells, _ = decode(heat, self.pipeline)
        in_h, in_w = self.input_size
        hm_h, hm_w = heat.shape[2:]
        image_xy = apply_affine(self.crop_matrix(roi, (hm_h, hm_w)), cells[0, joint])
        to_crop = cv2.invertAffineTransform(self.crop_matrix(roi))
        crop_xy = apply_affine(to_crop, image_xy)
        stride = round((in_h * in_w / attn.shape[0]) ** 0.5)  # the encoder's feature stride (8)
        fh, fw = in_h // stride, in_w // stride
        if fh * fw != attn.shape[0]:
            raise ValueError(f"attention over {attn.shape[0]} tokens does not fit a {in_h}x{in_w} crop")
        row = int(np.clip(crop_xy[1] // stride, 0, fh - 1)) * fw + int(np.clip(crop_xy[0] // stride, 0, fw - 1))
        grid = attn[row].reshape(fh, fw)  # [h/8, w/8]: where this location looks
        up = torch.nn.functional.interpolate(
            torch.from_numpy(grid)[None, None], size=(in_h, in_w), mode="bilinear", align_corners=False
        )[0, 0].numpy()  # [H, W] over the crop, as the paper's figures upsample it
        h, w = frame.shape[:2]
        full = cv2.warpAffine(
            up, to_crop, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT
        )
        return image_xy + 0.5, full


def load_heatmap_pose(
    name: str,
    weights: str | Path | None,
    device: DeviceLike = None,
    config: HeatmapPoseConfig | None = None,
) -> HeatmapPose:
    """The keypoint model `name` (a `hotpose.models.pose2d` name) with the authors' checkpoint `weights`.

    Raises WeightsError without weights: hotpose ships none for these models and runs no random ones.
    """
    from hotpose.models.pose2d import create_pose2d, spec

    path = require_weights(name, weights)
    model = create_pose2d(name, weights=path, device=device)
    return HeatmapPose(model, spec(name).pipeline, name, config, device)


def require_weights(name: str, weights: str | Path | None) -> Path:
    """`weights` as a path to an existing file, else WeightsError saying where the authors of `name` publish
    theirs (what `hotpose serve` checks before it starts)."""
    from hotpose.models.pose2d import weights_source

    if weights is None:
        raise WeightsError(
            f"keypoint model {name} needs its authors' weights, which hotpose does not ship: download them from "
            f"{weights_source(name)}, then set HOTPOSE_KEYPOINTS_WEIGHTS=path (or pass --keypoints-weights path)"
        )
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(f"weights file not found for keypoint model {name}: {path}")
    return path
