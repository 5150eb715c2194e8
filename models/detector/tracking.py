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


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(x1 - x0, 0.0) * max(y1 - y0, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


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
            ((box_iou(bb, t.bbox), i, t.track_id) for i, (_, bb) in enumerate(people) if ids[i] is None for t in lost),
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
