"""BlazePose, run by our TFLite executor: its face-anchored person detector and its landmark models.

Parameters in `shared/design/blazepose-facts.md`.
- `BlazePoseFaceDetector` (`blazepose_face`): the frame letterboxed to 224x224
  in [-1, 1]; 2254 SSD anchors decode a box and 4 alignment keypoints each;
  weighted NMS. Its alignment points (hip centre, body size and rotation) give
  the landmark crop directly. It finds people by their face and upper body: a
  person turned away, hidden in part or small in the frame is rarely proposed.
- `BlazePoseLandmarks` (`blazepose_full`, `blazepose_heavy`): a rotated square
  crop 256x256 in [0, 1] with replicate borders; all crops of a batch run as
  one call; 33 landmarks (+2 ROI points) refined on the heatmap, mapped back
  to pixels. The two ROI points place the next frame's crop (tracking).

Pixel coordinates are continuous: x in [0, width], the centre of pixel i is i + 0.5.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from hotpose.models.detector.base import Detection, Keypoints, Roi
from hotpose.models.detector.tflite import TFLiteModule
from hotpose.models.detector.tracking import box_ious
from hotpose.models.detector.weights import blazepose_paths, npm_paths
from hotpose.models.device import DeviceLike, pick_device

log = logging.getLogger(__name__)

DET_SIZE = 224
LMK_SIZE = 256
HEATMAP_SIZE = 64


def roi_from_points(p0: np.ndarray, p1: np.ndarray, scale: float) -> Roi:
    """Square ROI from a centre point and a size/rotation point (pixels), as MediaPipe's alignment rects."""
    dx, dy = float(p1[0] - p0[0]), float(p1[1] - p0[1])
    angle = math.pi / 2 - math.atan2(-dy, dx)
    angle = (angle + math.pi) % (2 * math.pi) - math.pi
    size = 2.0 * math.hypot(dx, dy) * scale
    return Roi(float(p0[0]), float(p0[1]), size, size, angle)


def ssd_anchors() -> np.ndarray:
    """Anchor centres [2254, 2] in [0, 1] of the pose detector (fixed anchor size 1)."""
    strides = (8, 16, 32, 32, 32)
    out = []
    i = 0
    while i < len(strides):
        # consecutive layers with the same stride share one feature map; 2 anchors per layer
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        per_cell = 2 * (j - i)
        fm = math.ceil(DET_SIZE / strides[i])
        ys, xs = np.meshgrid((np.arange(fm) + 0.5) / fm, (np.arange(fm) + 0.5) / fm, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], axis=-1)
        out.append(np.repeat(cells, per_cell, axis=0))
        i = j
    anchors = np.concatenate(out).astype(np.float32)
    assert anchors.shape == (2254, 2)
    return anchors


def weighted_nms(
    boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray, iou_thr: float
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Weighted NMS: clusters of overlapping boxes are averaged, weighted by score.

    boxes [N, 4] (x0, y0, x1, y1), kps [N, K, 2], scores [N]. Returns (box, kps, top score) per cluster.
    """
    order = np.argsort(-scores, kind="stable")
    remaining = list(order)
    out = []
    while remaining:
        top = remaining[0]
        ious = box_ious(boxes[top], boxes[remaining])
        members = [r for r, iou in zip(remaining, ious, strict=True) if iou > iou_thr]
        w = scores[members][:, None]
        box = (boxes[members] * w).sum(0) / w.sum()
        kp = (kps[members] * w[:, :, None]).sum(0) / w.sum()
        out.append((box, kp, float(scores[top])))
        remaining = [r for r, iou in zip(remaining, ious, strict=True) if iou <= iou_thr]
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -100.0, 100.0)))


@dataclass(frozen=True)
class BlazePoseDetectorConfig:
    # Detections below this score are dropped. Measured on the shared office clip (README): at
    # MediaPipe's 0.5 a table leg was detected in 84 of 318 empty frames (max score 0.567); people
    # score 0.75-0.98 once in view, and a half-visible astronaut beside another 0.67.
    detection_threshold: float = 0.6
    nms_iou: float = 0.3  # weighted-NMS cluster overlap
    roi_scale: float = 1.25


class BlazePoseFaceDetector:
    """BlazePose's own person detector (face-anchored SSD): boxes plus the landmark crop it implies."""

    name = "blazepose_face"

    def __init__(
        self,
        config: BlazePoseDetectorConfig | None = None,
        device: DeviceLike = None,
        home: Path | None = None,
    ) -> None:
        self.config = config or BlazePoseDetectorConfig()
        self.device = pick_device(device)
        paths = blazepose_paths(home)  # home: the weights cache, None: default_home()
        self.model = TFLiteModule(paths["pose_detection.tflite"]).to(self.device).eval()
        self.anchors = ssd_anchors()

    def detect_batch(self, frames: list[np.ndarray]) -> list[list[Detection]]:
        """People per frame (one model call), best first."""
        if not frames:
            return []
        boxes_, imgs = [], []
        for frame in frames:
            h, w = frame.shape[:2]
            box = Roi(w / 2, h / 2, float(max(w, h)), float(max(w, h)))  # letterbox: the frame centred in a square
            boxes_.append(box)
            imgs.append(cv2.warpAffine(
                frame, box.warp_matrix(DET_SIZE), (DET_SIZE, DET_SIZE),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                borderValue=(0, 0, 0),
            ))  # fmt: skip
        x = torch.from_numpy(np.stack(imgs)).to(self.device).permute(0, 3, 1, 2)  # [N, 3, 224, 224]
        x = x.float() / 127.5 - 1.0
        with torch.inference_mode():
            reg_all, logits_all = self.model(x)
        reg_all = reg_all.cpu().numpy()  # [N, 2254, 12]
        scores_all = _sigmoid(logits_all[:, :, 0].cpu().numpy())
        return [self._decode(box, reg_all[n], scores_all[n]) for n, box in enumerate(boxes_)]

    def _decode(self, box: Roi, reg: np.ndarray, scores: np.ndarray) -> list[Detection]:
        keep = scores >= self.config.detection_threshold
        if not keep.any():
            return []
        reg, scores, anchors = reg[keep], scores[keep], self.anchors[keep]
        centre = anchors + reg[:, 0:2] / DET_SIZE
        half = reg[:, 2:4] / DET_SIZE / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        kps = anchors[:, None, :] + reg[:, 4:12].reshape(-1, 4, 2) / DET_SIZE
        out = []
        for _, kp, score in weighted_nms(boxes, kps, scores, self.config.nms_iou):
            kp_px = box.crop_to_image(kp)
            roi = roi_from_points(kp_px[0], kp_px[1], self.config.roi_scale)
            out.append(Detection(np.array(roi.bbox()), score, roi))
        return out


@dataclass(frozen=True)
class BlazePoseLandmarksConfig:
    variant: str = "full"  # "full" (pose_landmark_full, the mediapipe wheel) or "heavy" (@mediapipe/pose)
    # A detected box becomes a square crop whose side is `box_scale` x the box's longer side, centred
    # `box_shift` x that side below the box's centre: the medians of the crop the landmarks themselves
    # place against NanoDet's box of the same person on the shared development clips
    # (`hotpose eval-2d --crop-fit`; README, "the 2D stage"). BlazePose's crop is centred on the hips,
    # below a seated or half-visible person's box centre.
    box_scale: float = 1.7
    box_shift: float = 0.17
    refine_kernel: int = 7  # heatmap refinement window (cells)
    refine_min_confidence: float = 0.5
    roi_scale: float = 1.25  # next crop from the landmarks' ROI points
    batch: int = 16  # crops per model call


class BlazePoseLandmarks:
    """BlazePose's 33 landmarks on a rotated square crop; the landmarks also place the next crop."""

    layout = "blazepose33"

    def __init__(
        self,
        config: BlazePoseLandmarksConfig | None = None,
        device: DeviceLike = None,
        home: Path | None = None,
    ) -> None:
        self.config = config or BlazePoseLandmarksConfig()
        self.device = pick_device(device)
        if self.config.variant == "full":
            path = blazepose_paths(home)["pose_landmark_full.tflite"]
        elif self.config.variant == "heavy":
            path = npm_paths("blazepose_heavy", home)["pose_landmark_heavy.tflite"]
        else:
            raise ValueError(f"unknown BlazePose landmark variant {self.config.variant!r}: 'full' or 'heavy'")
        self.name = f"blazepose_{self.config.variant}"
        self.model = TFLiteModule(path).to(self.device).eval()

    def roi_for(self, detection: Detection) -> Roi:
        """The detector's own crop when it has one (BlazePose's detector), else a square about the box."""
        if detection.roi is not None:
            return detection.roi
        x0, y0, x1, y1 = (float(v) for v in detection.box)
        long = max(x1 - x0, y1 - y0)
        side = long * self.config.box_scale
        return Roi((x0 + x1) / 2, (y0 + y1) / 2 + self.config.box_shift * long, side, side, 0.0)

    def crops(self, frame: np.ndarray, rois: list[Roi]) -> Tensor:
        """[P, 3, 256, 256] float crops in [0, 1], replicate borders."""
        arr = np.stack([
            cv2.warpAffine(
                frame, r.warp_matrix(LMK_SIZE), (LMK_SIZE, LMK_SIZE),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
            )
            for r in rois
        ])  # fmt: skip
        return torch.from_numpy(arr).to(self.device).permute(0, 3, 1, 2).float() / 255.0

    def estimate(self, frame: np.ndarray, rois: list[Roi]) -> list[Keypoints]:
        return self.estimate_batch([(frame, rois)])[0]

    def estimate_batch(self, items: list[tuple[np.ndarray, list[Roi]]]) -> list[list[Keypoints]]:
        """All crops of several frames through the model in batches of `config.batch`."""
        owners = [(k, roi) for k, (_, rois) in enumerate(items) for roi in rois]
        out: list[list[Keypoints]] = [[] for _ in items]
        if not owners:
            return out
        x = torch.cat([self.crops(frame, rois) for frame, rois in items if rois])  # [P, 3, 256, 256]
        parts = []
        with torch.inference_mode():
            for i in range(0, len(x), self.config.batch):
                parts.append([t.cpu().numpy() for t in self.model(x[i : i + self.config.batch])])
        raw, flag, _seg, heat, world = (np.concatenate([p[i] for p in parts]) for i in range(5))
        n = len(owners)
        raw = raw.reshape(n, 39, 5)
        flag = flag.reshape(-1)
        world = world.reshape(n, 39, 3)  # heat: [P, 39, 64, 64]
        for p, (k, roi) in enumerate(owners):
            h, w = items[k][0].shape[:2]
            xy = self._refine(raw[p, :, :2] / LMK_SIZE, heat[p])  # crop-normalised
            px = roi.crop_to_image(xy)  # [39, 2]
            vis = _sigmoid(raw[p, :33, 3])
            kp = np.concatenate([px[:33], vis[:, None]], axis=1).astype(np.float32)
            c, s = math.cos(roi.angle), math.sin(roi.angle)
            wx, wy = world[p, :33, 0], world[p, :33, 1]
            w33 = np.stack([c * wx - s * wy, s * wx + c * wy, world[p, :33, 2]], axis=1).astype(np.float32)
            seen = kp[:, 2] > 0.5
            pts = kp[seen, :2] if seen.sum() >= 4 else kp[:, :2]
            x0, y0 = np.clip(pts.min(0), 0, [w, h])
            x1, y1 = np.clip(pts.max(0), 0, [w, h])
            nxt = roi_from_points(px[33], px[34], self.config.roi_scale)
            out[k].append(Keypoints(kp, float(flag[p]), np.array([x0, y0, x1, y1]), nxt, w33))
        return out

    def _refine(self, xy: np.ndarray, heat: np.ndarray) -> np.ndarray:
        """Heatmap refinement: confidence-weighted mean cell around each landmark."""
        k = self.config.refine_kernel // 2
        n = HEATMAP_SIZE
        out = xy.copy()
        conf = _sigmoid(heat)  # [39, 64, 64]
        for j in range(xy.shape[0]):
            col, row = int(xy[j, 0] * n), int(xy[j, 1] * n)
            if not (0 <= col < n and 0 <= row < n):
                continue
            r0, r1, c0, c1 = max(row - k, 0), min(row + k + 1, n), max(col - k, 0), min(col + k + 1, n)
            win = conf[j, r0:r1, c0:c1]
            total = win.sum()
            if win.max() < self.config.refine_min_confidence or total <= 0:
                continue
            rows, cols = np.mgrid[r0:r1, c0:c1]
            out[j, 0] = (win * cols).sum() / total / n
            out[j, 1] = (win * rows).sum() / total / n
        return out
