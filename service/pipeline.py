"""Video -> 3D poses, with no web framework: decode -> detect -> track -> window -> lift.

Used by the `hotpose run` command line (and, with the service issue, by the
HTTP jobs and WebSocket sessions).

Conventions of the output (`PoseSequence`):
- `keypoints_2d`: Human3.6M-17 joints in image pixels (x right, y down) with a
  0..1 score per joint;
- `joints_3d`: metres, camera frame (x right, y down, z away from the camera),
  root-relative (the pelvis is the origin), Human3.6M-17 order.

Time: the lifter was trained at 30 fps. Each person's 2D track is resampled
to 30 fps from the frames' timestamps (so variable frame rate and 10 or 60 fps
video are lifted at the speed the model knows), lifted in overlapping
windows, and sampled back at the original frame times. Short gaps in a
track (frames where the detector lost the person) are bridged by
interpolation for the lifter's input only; no pose is reported for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from models import Lifter
from models.detector import Detector
from models.keypoints import H36M_JOINTS, flip_augment, normalize_screen

log = logging.getLogger(__name__)

LIFTER_FPS = 30.0


@dataclass
class PersonPose:
    track_id: int
    bbox: tuple[float, float, float, float]
    score: float
    keypoints_2d: np.ndarray  # [17, 3] x, y pixels, score
    joints_3d: np.ndarray | None = None  # [17, 3] metres, camera frame, root-relative

    def to_dict(self) -> dict[str, object]:
        return {
            "track_id": self.track_id,
            "bbox": [round(float(v), 2) for v in self.bbox],
            "score": round(float(self.score), 4),
            "keypoints_2d": np.round(self.keypoints_2d, 2).tolist(),
            "joints_3d": None if self.joints_3d is None else np.round(self.joints_3d, 4).tolist(),
        }


@dataclass
class FramePoses:
    index: int
    time: float
    people: list[PersonPose] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"index": self.index, "time": round(self.time, 4), "people": [p.to_dict() for p in self.people]}


@dataclass
class PoseSequence:
    fps: float
    width: int
    height: int
    frames: list[FramePoses]
    joint_names: tuple[str, ...] = H36M_JOINTS

    def to_dict(self) -> dict[str, object]:
        return {
            "fps": self.fps, "width": self.width, "height": self.height, "joint_names": list(self.joint_names),
            "frames": [f.to_dict() for f in self.frames],
        }  # fmt: skip


class TrackLifter:
    """Lift one person's 2D track [T, 17, 2] (pixels, with timestamps) to 3D [T, 17, 3]."""

    def __init__(self, lifter: Lifter, overlap: int = 3, flip: bool = True, batch: int = 8) -> None:
        self.lifter = lifter
        self.frames = lifter.config.frames
        self.overlap = overlap  # each frame is covered by about this many windows
        self.flip = flip
        self.batch = batch
        self.device = next(lifter.parameters()).device

    def __call__(self, xy: np.ndarray, times: np.ndarray, width: int, height: int) -> np.ndarray:
        if len(xy) == 0:
            return np.zeros((0, 17, 3), np.float32)
        # resample to the lifter's frame rate from the timestamps (made strictly increasing:
        # some containers repeat or reorder them)
        times = np.maximum.accumulate(np.asarray(times, dtype=np.float64)) + np.arange(len(times)) * 1e-6
        span = float(times[-1] - times[0])
        n = max(int(round(span * LIFTER_FPS)) + 1, 1)
        grid = times[0] + np.arange(n) / LIFTER_FPS
        x30 = _interp(times, xy, grid)  # [n, 17, 2]
        y30 = self.lift_sequence(np.asarray(normalize_screen(x30, width, height), dtype=np.float32))
        return _interp(grid, y30, times).astype(np.float32)

    @torch.no_grad()
    def lift_sequence(self, x: np.ndarray) -> np.ndarray:
        """Normalised 2D [T, 17, 2] -> 3D [T, 17, 3]: overlapping windows (edge-padded), averaged."""
        f = self.frames
        t = len(x)
        stride = max(f // self.overlap, 1)
        starts = list(range(0, max(t - f, 0) + 1, stride))
        if starts[-1] + f < t:
            starts.append(t - f)
        pad = max(f - t, 0)
        xp = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]) if pad else x
        acc = np.zeros((len(xp), 17, 3), np.float64)
        cnt = np.zeros((len(xp), 1, 1), np.float64)
        for i in range(0, len(starts), self.batch):
            chunk = starts[i : i + self.batch]
            xb = torch.from_numpy(np.stack([xp[s : s + f] for s in chunk])).to(self.device)
            yb = flip_augment(self.lifter, xb) if self.flip else self.lifter(xb)
            for s, y in zip(chunk, yb.float().cpu().numpy(), strict=True):
                acc[s : s + f] += y
                cnt[s : s + f] += 1
        return (acc / np.maximum(cnt, 1))[:t].astype(np.float32)


def _interp(t_src: np.ndarray, values: np.ndarray, t_dst: np.ndarray) -> np.ndarray:
    """Linear interpolation of values [T, ...] at t_src to t_dst (clamped at the ends)."""
    if len(t_src) == 1:
        return np.repeat(values, len(t_dst), axis=0)
    flat = values.reshape(len(values), -1)
    out = np.stack([np.interp(t_dst, t_src, flat[:, k]) for k in range(flat.shape[1])], axis=1)
    return out.reshape(len(t_dst), *values.shape[1:])


@dataclass
class _Track:
    frames: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    people: list[PersonPose] = field(default_factory=list)


def process_frames(
    frames: Iterable[tuple[int, float, np.ndarray]],
    detector: Detector,
    lifter: Lifter | None,
    fps: float = 0.0,
    progress: Callable[[int], None] | None = None,
    max_gap_s: float = 1.0,
) -> PoseSequence:
    """Run the whole pipeline on (index, time, RGB frame) triples of one video.

    Memory grows with the number of person-frames (17 x 3 floats each), not with the video's size:
    frames are decoded, detected and dropped one at a time.
    """
    detector.reset()
    out: list[FramePoses] = []
    tracks: dict[int, _Track] = {}
    width = height = 0
    for index, t, frame in frames:
        height, width = frame.shape[:2]
        fp = FramePoses(index, t)
        for p in detector.process(frame):
            kp = p.h36m17()
            pose = PersonPose(p.track_id, p.bbox, p.score, kp)
            fp.people.append(pose)
            tr = tracks.setdefault(p.track_id, _Track())
            tr.frames.append(len(out))
            tr.times.append(t)
            tr.people.append(pose)
        out.append(fp)
        if progress is not None:
            progress(len(out))
    if lifter is not None:
        lift = TrackLifter(lifter)
        for tr in tracks.values():
            for seg in _segments(tr, max_gap_s):
                xy = np.stack([pose.keypoints_2d[:, :2] for pose in seg.people])
                y3d = lift(xy, np.asarray(seg.times, dtype=np.float64), width, height)
                for pose, y in zip(seg.people, y3d, strict=True):
                    pose.joints_3d = y
    return PoseSequence(fps=fps, width=width, height=height, frames=out)


def _segments(tr: _Track, max_gap_s: float) -> list[_Track]:
    """Split a track where it was lost for longer than max_gap_s (the lifter is not fed long gaps)."""
    segs = [_Track()]
    for k, (f, t, p) in enumerate(zip(tr.frames, tr.times, tr.people, strict=True)):
        if k and t - tr.times[k - 1] > max_gap_s:
            segs.append(_Track())
        segs[-1].frames.append(f)
        segs[-1].times.append(t)
        segs[-1].people.append(p)
    return segs
