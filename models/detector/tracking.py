"""Stable track ids for the people of a video, through short occlusions.

People that arrive with a known id (their crop was placed from that track's
previous keypoints) keep it. The others are matched to tracks lost within the
last `max_gap_s` seconds: each lost track predicts its box from its recent
motion (constant velocity, damped, for at most `predict_s`), and a person is
a candidate for it when their box centre lies within `gate` box sizes of the
prediction and their box size is within `size_ratio` of the track's. The
closest candidates are matched first (greedy on normalised distance);
whatever is left gets a new id. A hidden person is simply absent: the tracker
never reports a track that was not seen in the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TrackerConfig:
    max_gap_s: float = 3.0  # a track lost longer than this is forgotten
    gate: float = 1.0  # max centre distance from the prediction, in track box sizes (plus growth below)
    gate_growth_per_s: float = 0.5  # the gate widens by this many box sizes per second lost
    size_ratio: float = 2.0  # box heights within this factor of the track's
    predict_s: float = 1.0  # motion is extrapolated for at most this long
    velocity_smoothing: float = 0.5  # weight of the newest velocity in the running estimate


@dataclass
class Track:
    track_id: int
    bbox: np.ndarray  # last box x0, y0, x1, y1
    last_t: float
    velocity: np.ndarray  # [2] px/s of the box centre
    hits: int = 1

    def predicted(self, t: float, horizon_s: float) -> np.ndarray:
        """The box expected at time t from the motion seen so far."""
        dt = min(max(t - self.last_t, 0.0), horizon_s)
        shift = self.velocity * dt
        box: np.ndarray = self.bbox + np.array([shift[0], shift[1], shift[0], shift[1]])
        return box


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


def _centre(b: np.ndarray) -> np.ndarray:
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])


def _size(b: np.ndarray) -> float:
    return float(max(b[2] - b[0], b[3] - b[1], 1.0))


class MotionTracker:
    """Ids by the crop each person came from, else by predicted position and size (`TrackerConfig`)."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.tracks: dict[int, Track] = {}
        self.now = -float("inf")  # time of the last update
        self._next_id = 1

    def lost(self, min_hits: int = 1) -> list[int]:
        """Ids seen at least `min_hits` times, missing from the last update, that may still come back
        (within `max_gap_s`)."""
        return [tid for tid, tr in self.tracks.items() if tr.last_t < self.now and tr.hits >= min_hits]

    def kept(self) -> set[int]:
        """Every id the tracker still holds (seen now or lost within `max_gap_s`)."""
        return set(self.tracks)

    def drop(self, track_id: int) -> None:
        """Forget a track (an unconfirmed person who was not found again)."""
        self.tracks.pop(track_id, None)

    def update(self, people: list[tuple[int | None, np.ndarray]], t: float) -> list[int]:
        """people: (known track id or None, bbox) per person at time t (seconds) -> the track id of each."""
        cfg = self.config
        self.now = t
        ids: list[int | None] = [tid if tid in self.tracks else None for tid, _ in people]
        taken = {tid for tid in ids if tid is not None}
        lost = [tr for tr in self.tracks.values() if tr.track_id not in taken and t - tr.last_t <= cfg.max_gap_s]
        pairs = []
        for i, (_, bb) in enumerate(people):
            if ids[i] is not None:
                continue
            for tr in lost:
                pred = tr.predicted(t, cfg.predict_s)
                scale = _size(tr.bbox)
                dist = float(np.linalg.norm(_centre(bb) - _centre(pred))) / scale
                gate = cfg.gate + cfg.gate_growth_per_s * max(t - tr.last_t, 0.0)
                h_new, h_old = max(bb[3] - bb[1], 1.0), max(tr.bbox[3] - tr.bbox[1], 1.0)
                if dist <= gate and max(h_new / h_old, h_old / h_new) <= cfg.size_ratio:
                    pairs.append((dist, i, tr.track_id))
        for _, i, tid in sorted(pairs):
            if ids[i] is None and tid not in taken:
                ids[i] = tid
                taken.add(tid)
        out: list[int] = []
        for i, (_, bb) in enumerate(people):
            bb = np.asarray(bb, dtype=np.float64)
            known = ids[i]
            if known is None:
                tid = self._next_id
                self._next_id += 1
                self.tracks[tid] = Track(tid, bb, t, np.zeros(2))
            else:
                tid = known
                tr = self.tracks[tid]
                dt = t - tr.last_t
                if dt > 1e-6:
                    v = (_centre(bb) - _centre(tr.bbox)) / dt
                    a = cfg.velocity_smoothing if tr.hits > 1 else 1.0
                    tr.velocity = a * v + (1 - a) * tr.velocity
                tr.bbox, tr.last_t, tr.hits = bb, t, tr.hits + 1
            out.append(tid)
        for tid in [k for k, tr in self.tracks.items() if t - tr.last_t > cfg.max_gap_s]:
            del self.tracks[tid]
        return out
