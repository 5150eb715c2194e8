"""Stable track ids for the people of a video.

People that arrive with a known id (their ROI was placed from that track's
previous landmarks) keep it. Others are matched to recently lost tracks by
box overlap, greedily, best overlap first; a lost track survives `max_gap`
frames without a match. Whatever is left gets a new id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Track:
    track_id: int
    bbox: np.ndarray  # last box x0, y0, x1, y1
    last_frame: int
    hits: int = 1


def box_ious(a: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of box a (x0, y0, x1, y1) with each of boxes [N, 4]."""
    x0 = np.maximum(a[0], boxes[:, 0])
    y0 = np.maximum(a[1], boxes[:, 1])
    x1 = np.minimum(a[2], boxes[:, 2])
    y1 = np.minimum(a[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.asarray(inter / np.maximum(area_a + area_b - inter, 1e-9))


class Tracker:
    def __init__(self, max_gap: int = 15, min_iou: float = 0.3) -> None:
        self.max_gap = max_gap
        self.min_iou = min_iou
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    def update(self, people: list[tuple[int | None, np.ndarray]], frame: int) -> list[int]:
        """people: (known track id or None, bbox) per person -> the track id of each."""
        ids: list[int | None] = [tid if tid in self.tracks else None for tid, _ in people]
        taken = {tid for tid in ids if tid is not None}
        lost = [t for t in self.tracks.values() if t.track_id not in taken and frame - t.last_frame <= self.max_gap]
        pairs = sorted(
            (
                (float(box_ious(bb, t.bbox[None])[0]), i, t.track_id)
                for i, (_, bb) in enumerate(people)
                if ids[i] is None
                for t in lost
            ),
            reverse=True,
        )
        for iou, i, tid in pairs:
            if iou < self.min_iou:
                break
            if ids[i] is None and tid not in taken:
                ids[i] = tid
                taken.add(tid)
        out: list[int] = []
        for i, (_, bb) in enumerate(people):
            known = ids[i]
            if known is None:
                tid = self._next_id
                self._next_id += 1
                self.tracks[tid] = Track(tid, bb, frame)
            else:
                tid = known
                t = self.tracks[tid]
                t.bbox, t.last_frame, t.hits = bb, frame, t.hits + 1
            out.append(tid)
        for tid in [t for t, tr in self.tracks.items() if frame - tr.last_frame > self.max_gap]:
            del self.tracks[tid]
        return out
