"""BlazePose (full), several people per frame, run by our TFLite executor.

Two stages, as in MediaPipe's pose graph (parameters in
`shared/design/blazepose-facts.md`):
1. Detector: the frame letterboxed to 224x224 in [-1, 1]; 2254 SSD anchors
   decode a box and 4 alignment keypoints each; weighted NMS.
2. Landmarks: per person a rotated square ROI (centre = hip-centre keypoint,
   size = 2.5 x |kp1 - kp0|, rotation from kp0 -> kp1) cropped to 256x256 in
   [0, 1] with replicate borders; all crops of a frame run as one batch; 33
   landmarks (+2 ROI points) refined on the heatmap, mapped back to pixels.
Tracking: a person's next ROI comes from its own landmarks 33/34; the
detector reruns every `redetect_every` frames (to find people who walk in),
on every frame while nobody is tracked or a new person awaits confirmation,
and on every frame for the tracker's `max_gap` frames after a tracked person
is lost (so that one back from a short occlusion is found in time to keep
their id).

Pixel coordinates are continuous: x in [0, width], the centre of pixel i is i + 0.5.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from models.detector.base import Person
from models.detector.tflite import TFLiteModule
from models.detector.tracking import Tracker, box_ious
from models.detector.weights import blazepose_paths

log = logging.getLogger(__name__)

DET_SIZE = 224
LMK_SIZE = 256
HEATMAP_SIZE = 64


@dataclass(frozen=True)
class BlazePoseConfig:
    # Detections below this score are dropped. Measured on the shared office clip (README): at
    # MediaPipe's 0.5 a table leg was detected in 84 of 318 empty frames (max score 0.567); people
    # score 0.75-0.98 once in view, and a half-visible astronaut beside another 0.67.
    detection_threshold: float = 0.6
    # Temporal gating: a new person is reported once the detector has found it in this many
    # consecutive frames (the detector runs every frame while a person is unconfirmed).
    confirm_frames: int = 2
    nms_iou: float = 0.3  # weighted-NMS cluster overlap
    roi_scale: float = 1.25
    # A tracked person is kept while the landmark model's pose flag stays above this.
    presence_threshold: float = 0.5
    redetect_every: int = 10  # frames between detector runs while tracking (0: every frame)
    refine_kernel: int = 7  # heatmap refinement window (cells)
    refine_min_confidence: float = 0.5
    duplicate_iou: float = 0.5  # two ROIs that converged on one person: keep the better one
    max_people: int = 8
    landmark_batch: int = 16  # crops per landmark-model call


@dataclass
class Roi:
    """A rotated square in image pixels."""

    cx: float
    cy: float
    size: float
    angle: float  # radians, positive = the crop's x axis turns towards the image's y axis

    def crop_to_image(self, pts: np.ndarray) -> np.ndarray:
        """Crop-normalised points [..., 2] in [0, 1] -> image pixels."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        x = (pts[..., 0] - 0.5) * self.size
        y = (pts[..., 1] - 0.5) * self.size
        return np.stack([self.cx + c * x - s * y, self.cy + s * x + c * y], axis=-1)

    def warp_matrix(self, out_size: int) -> np.ndarray:
        """2x3 matrix from output pixel (integer centres) to source pixel (integer centres),
        for cv2.warpAffine with WARP_INVERSE_MAP."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        k = self.size / out_size
        off = 0.5 * k - self.size / 2
        return np.array(
            [
                [c * k, -s * k, self.cx + c * off - s * off - 0.5],
                [s * k, c * k, self.cy + s * off + c * off - 0.5],
            ],
            dtype=np.float64,
        )

    def bbox(self) -> tuple[float, float, float, float]:
        half = self.size / 2 * (abs(math.cos(self.angle)) + abs(math.sin(self.angle)))
        return (self.cx - half, self.cy - half, self.cx + half, self.cy + half)


def roi_from_points(p0: np.ndarray, p1: np.ndarray, scale: float) -> Roi:
    """ROI from a centre point and a size/rotation point (pixels), as MediaPipe's alignment rects."""
    dx, dy = float(p1[0] - p0[0]), float(p1[1] - p0[1])
    angle = math.pi / 2 - math.atan2(-dy, dx)
    angle = (angle + math.pi) % (2 * math.pi) - math.pi
    size = 2.0 * math.hypot(dx, dy) * scale
    return Roi(float(p0[0]), float(p0[1]), size, angle)


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


@dataclass
class _Candidate:
    roi: Roi
    track_id: int | None  # the track whose landmarks placed this ROI; None: fresh detection


@dataclass
class StreamState:
    """Tracking state of one video stream (one per clip or live session)."""

    confirm_frames: int = 2  # temporal gating (1: report people on their first detection)
    frame_index: int = 0
    tracker: Tracker = field(default_factory=Tracker)
    rois: dict[int, Roi] = field(default_factory=dict)  # track id -> ROI for the next frame
    hits: dict[int, int] = field(default_factory=dict)  # unconfirmed track id -> consecutive detections
    confirmed: set[int] = field(default_factory=set)
    lost_at: int = -(1 << 30)  # frame index at which a tracked person was last lost


class BlazePose:
    """BlazePose detector + landmarks with tracking.

    `process(frame)` runs one video held in `self.state`; `process_batch` runs one frame of each of
    several independent streams (each with its own `StreamState`) through each model as one batch,
    which is how the service shares the models between clips and live sessions.
    """

    name = "blazepose"

    def __init__(
        self, config: BlazePoseConfig | None = None, device: str | torch.device | None = None, home: Path | None = None
    ) -> None:
        self.config = config or BlazePoseConfig()
        self.device = (
            torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        )
        paths = blazepose_paths(home)  # home: the weights cache, default HOTPOSE_HOME
        self.detector = TFLiteModule(paths["pose_detection.tflite"]).to(self.device).eval()
        self.landmarker = TFLiteModule(paths["pose_landmark_full.tflite"]).to(self.device).eval()
        self.anchors = ssd_anchors()
        self.state = self.new_stream()

    # --- public API ----------------------------------------------------------------

    def new_stream(self) -> StreamState:
        return StreamState(confirm_frames=self.config.confirm_frames)

    def reset(self) -> None:
        """Forget tracks: call between unrelated videos."""
        self.state = self.new_stream()

    def __call__(self, frames: list[np.ndarray]) -> list[list[Person]]:
        """RGB uint8 frames [H, W, 3] of one video, in order -> people per frame."""
        return [self.process(f) for f in frames]

    def process_image(self, frame: np.ndarray) -> list[Person]:
        """A still image: detector + landmarks, no tracking or temporal gating; ids 1..P."""
        return self.process_batch([(frame, StreamState(confirm_frames=1))])[0]

    def process(self, frame: np.ndarray) -> list[Person]:
        """One RGB uint8 frame [H, W, 3] of the current video -> the people in it, with track ids."""
        return self.process_batch([(frame, self.state)])[0]

    def process_batch(self, items: list[tuple[np.ndarray, StreamState]]) -> list[list[Person]]:
        """The next frame of each of several streams (states updated in place) -> people per frame.

        Each state must appear at most once per call (frames of one stream are sequential).
        """
        for frame, _ in items:
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"expected an RGB uint8 frame [H, W, 3], got {frame.dtype} {frame.shape}")
        if len({id(st) for _, st in items}) != len(items):
            raise ValueError("a stream state appears twice in one batch")
        cfg = self.config
        cands = [[_Candidate(roi, tid) for tid, roi in st.rois.items()] for _, st in items]
        need = [
            k for k, (_, st) in enumerate(items)
            if not cands[k] or st.hits or cfg.redetect_every <= 0 or st.frame_index % cfg.redetect_every == 0
            or st.frame_index - st.lost_at <= st.tracker.max_gap
        ]  # fmt: skip
        for k, found in zip(need, self.detect_batch([items[k][0] for k in need]), strict=True):
            st = items[k][1]
            redetected: set[int] = set()
            for roi, _score in found:
                bb = np.array(roi.bbox())
                overlap = [c for c in cands[k] if box_ious(bb, np.array([c.roi.bbox()]))[0] > cfg.duplicate_iou]
                if overlap:  # already tracked: the detection only confirms that track
                    redetected.update(c.track_id for c in overlap if c.track_id is not None)
                    continue
                cands[k].append(_Candidate(roi, None))
            # an unconfirmed track the detector did not find again is dropped (temporal gating)
            cands[k] = [
                c for c in cands[k] if c.track_id is None or c.track_id not in st.hits or c.track_id in redetected
            ]
        cands = [c[: cfg.max_people] for c in cands]
        found_all = self.landmarks_batch([(frame, [c.roi for c in cands[k]]) for k, (frame, _) in enumerate(items)])
        return [self._finish(st, cands[k], found_all[k]) for k, (_, st) in enumerate(items)]

    def _finish(
        self, st: StreamState, candidates: list[_Candidate], found: list[dict[str, np.ndarray | float]]
    ) -> list[Person]:
        """Presence filter, duplicates, track ids, gating and next ROIs for one stream's frame."""
        cfg = self.config
        people: list[tuple[int | None, dict[str, np.ndarray | float]]] = []
        for cand, res in zip(candidates, found, strict=True):
            if res["presence"] < cfg.presence_threshold:
                continue
            people.append((cand.track_id, res))
        people = self._drop_duplicates(people)

        assigned = st.tracker.update([(tid, np.asarray(r["bbox"])) for tid, r in people], st.frame_index)
        if set(st.rois) - set(assigned):  # someone tracked into this frame is not in it
            st.lost_at = st.frame_index
        st.rois = {}
        out: list[Person] = []
        hits: dict[int, int] = {}
        for track_id, (_, res) in zip(assigned, people, strict=True):
            aux = np.asarray(res["aux"])
            st.rois[track_id] = roi_from_points(aux[0], aux[1], cfg.roi_scale)
            if track_id not in st.confirmed:
                n = st.hits.get(track_id, 0) + 1
                if n < st.confirm_frames:
                    hits[track_id] = n
                    continue
                st.confirmed.add(track_id)
            out.append(
                Person(
                    track_id=track_id,
                    bbox=tuple(float(v) for v in np.asarray(res["bbox"])),  # type: ignore[arg-type]
                    score=float(res["presence"]),
                    keypoints33=np.asarray(res["keypoints"], dtype=np.float32),
                    world33=np.asarray(res["world"], dtype=np.float32),
                )
            )
        st.hits = hits
        st.frame_index += 1
        return out

    # --- stage 1: detector -------------------------------------------------------------

    def detect(self, frame: np.ndarray) -> list[tuple[Roi, float]]:
        """People ROIs in one frame (detector only), best first."""
        return self.detect_batch([frame])[0]

    def detect_batch(self, frames: list[np.ndarray]) -> list[list[tuple[Roi, float]]]:
        """People ROIs per frame (detector only, one batch), best first."""
        if not frames:
            return []
        boxes_, imgs = [], []
        for frame in frames:
            h, w = frame.shape[:2]
            box = Roi(w / 2, h / 2, float(max(w, h)), 0.0)  # letterbox: the frame centred in a square
            boxes_.append(box)
            imgs.append(cv2.warpAffine(
                frame, box.warp_matrix(DET_SIZE), (DET_SIZE, DET_SIZE),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                borderValue=(0, 0, 0),
            ))  # fmt: skip
        x = torch.from_numpy(np.stack(imgs)).to(self.device).permute(0, 3, 1, 2)  # [N, 3, 224, 224]
        x = x.float() / 127.5 - 1.0
        with torch.inference_mode():
            reg_all, logits_all = self.detector(x)
        reg_all = reg_all.cpu().numpy()  # [N, 2254, 12]
        scores_all = _sigmoid(logits_all[:, :, 0].cpu().numpy())
        return [self._decode(box, reg_all[n], scores_all[n]) for n, box in enumerate(boxes_)]

    def _decode(self, box: Roi, reg: np.ndarray, scores: np.ndarray) -> list[tuple[Roi, float]]:
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
            out.append((roi_from_points(kp_px[0], kp_px[1], self.config.roi_scale), score))
        return out

    # --- stage 2: landmarks --------------------------------------------------------------

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

    def landmarks(self, frame: np.ndarray, rois: list[Roi]) -> list[dict[str, np.ndarray | float]]:
        """Run the landmark model on all ROIs of a frame as one batch."""
        return self.landmarks_batch([(frame, rois)])[0]

    def landmarks_batch(self, items: list[tuple[np.ndarray, list[Roi]]]) -> list[list[dict[str, np.ndarray | float]]]:
        """All ROIs of several frames through the landmark model in batches of `landmark_batch`."""
        owners = [(k, roi) for k, (_, rois) in enumerate(items) for roi in rois]
        out: list[list[dict[str, np.ndarray | float]]] = [[] for _ in items]
        if not owners:
            return out
        x = torch.cat([self.crops(frame, rois) for frame, rois in items if rois])  # [P, 3, 256, 256]
        parts = []
        with torch.inference_mode():
            for i in range(0, len(x), self.config.landmark_batch):
                parts.append([t.cpu().numpy() for t in self.landmarker(x[i : i + self.config.landmark_batch])])
        raw, flag, _seg, heat, world = (np.concatenate([p[i] for p in parts]) for i in range(5))
        n = len(owners)
        raw = raw.reshape(n, 39, 5)
        flag = flag.reshape(-1)
        world = world.reshape(n, 39, 3)  # heat: [P, 39, 64, 64]
        for p, (k, roi) in enumerate(owners):
            h, w = items[k][0].shape[:2]
            xy = raw[p, :, :2] / LMK_SIZE  # crop-normalised
            xy = self._refine(xy, heat[p])
            px = roi.crop_to_image(xy)  # [39, 2]
            vis = _sigmoid(raw[p, :33, 3])
            kp = np.concatenate([px[:33], vis[:, None]], axis=1)
            c, s = math.cos(roi.angle), math.sin(roi.angle)
            wx, wy = world[p, :33, 0], world[p, :33, 1]
            w33 = np.stack([c * wx - s * wy, s * wx + c * wy, world[p, :33, 2]], axis=1)
            seen = kp[:, 2] > 0.5
            pts = kp[seen, :2] if seen.sum() >= 4 else kp[:, :2]
            x0, y0 = np.clip(pts.min(0), 0, [w, h])
            x1, y1 = np.clip(pts.max(0), 0, [w, h])
            res: dict[str, np.ndarray | float] = {
                "keypoints": kp,
                "world": w33,
                "aux": px[33:35],
                "presence": float(flag[p]),
                "bbox": np.array([x0, y0, x1, y1]),
            }
            out[k].append(res)
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

    def _drop_duplicates(
        self, people: list[tuple[int | None, dict[str, np.ndarray | float]]]
    ) -> list[tuple[int | None, dict[str, np.ndarray | float]]]:
        """Two ROIs that converged on the same person: keep the tracked one, else the more confident."""
        ranked = sorted(people, key=lambda p: (p[0] is None, -float(p[1]["presence"])))  # type: ignore[arg-type]
        kept: list[tuple[int | None, dict[str, np.ndarray | float]]] = []
        for tid, res in ranked:
            bb = np.asarray(res["bbox"])
            kept_boxes = np.stack([np.asarray(r["bbox"]) for _, r in kept]) if kept else None
            if kept_boxes is not None and box_ious(bb, kept_boxes).max() > self.config.duplicate_iou:
                continue
            kept.append((tid, res))
        return kept
