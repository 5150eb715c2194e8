"""Typed results: `Person` in a `Frame`, frames in a `PoseSequence`.

Units and frames (the server's `/v1/info` says the same under `coordinates`):
- `keypoints_2d` [17, 3]: image pixels (x right, y down, origin at the top-left corner), then a
  0..1 score per joint;
- `joints_3d` [17, 3]: metres in the camera frame (x right, y down, z away from the camera),
  root-relative (the pelvis is the origin); `None` when the lifter had not produced it;
- `time`: seconds from the first frame.
Joints are in Human3.6M-17 order (`PoseSequence.joint_names`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from hotpose_client import formats

__all__ = ["Frame", "Person", "PoseSequence"]


@dataclass(frozen=True, eq=False)  # arrays inside: compare fields, not objects
class Person:
    track_id: int
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 pixels
    score: float
    keypoints_2d: np.ndarray  # [17, 3] x, y pixels, score
    joints_3d: np.ndarray | None  # [17, 3] metres, camera frame, root-relative

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Person:
        j3 = d.get("joints_3d")
        return cls(
            track_id=int(d["track_id"]),
            bbox=tuple(float(v) for v in d["bbox"]),  # type: ignore[arg-type]
            score=float(d["score"]),
            keypoints_2d=np.asarray(d["keypoints_2d"], np.float64).reshape(-1, 3),
            joints_3d=None if j3 is None else np.asarray(j3, np.float64).reshape(-1, 3),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "bbox": [float(v) for v in self.bbox],
            "score": float(self.score),
            "keypoints_2d": self.keypoints_2d.tolist(),
            "joints_3d": None if self.joints_3d is None else self.joints_3d.tolist(),
        }


@dataclass(frozen=True, eq=False)
class Frame:
    """One video frame's people. On live streams also the server's latency and drop count."""

    index: int
    time: float
    people: list[Person] = field(default_factory=list)
    latency_ms: float | None = None  # live: arrival at the server -> answer sent
    dropped: int | None = None  # live: frames of this stream the server has dropped so far

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Frame:
        return cls(
            index=int(d["index"]),
            time=float(d["time"] if "time" in d else d["t"]),
            people=[Person.from_dict(p) for p in d.get("people", [])],
            latency_ms=d.get("latency_ms"),
            dropped=d.get("dropped"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "time": self.time, "people": [p.to_dict() for p in self.people]}

    def person(self, track_id: int) -> Person | None:
        return next((p for p in self.people if p.track_id == track_id), None)


@dataclass
class PoseSequence:
    """The poses of a whole clip, frame by frame, with the video's size and frame rate."""

    frames: list[Frame]
    fps: float
    width: int
    height: int
    joint_names: tuple[str, ...]
    skeleton_edges: tuple[tuple[int, int], ...] = ()
    coordinates: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def times(self) -> np.ndarray:
        """[T] seconds of each frame."""
        return np.array([f.time for f in self.frames], np.float64)

    def track_ids(self) -> list[int]:
        return sorted({p.track_id for f in self.frames for p in f.people})

    def joints_3d(self, track_id: int | None = None) -> np.ndarray:
        """[T, 17, 3] metres for one person over every frame; NaN where absent or not lifted.

        `track_id` may be left out when the sequence holds exactly one person.
        """
        tid = self._track(track_id)
        out = np.full((len(self.frames), len(self.joint_names), 3), np.nan)
        for i, f in enumerate(self.frames):
            p = f.person(tid)
            if p is not None and p.joints_3d is not None:
                out[i] = p.joints_3d
        return out

    def keypoints_2d(self, track_id: int | None = None) -> np.ndarray:
        """[T, 17, 3] pixels and score for one person over every frame; NaN where absent."""
        tid = self._track(track_id)
        out = np.full((len(self.frames), len(self.joint_names), 3), np.nan)
        for i, f in enumerate(self.frames):
            p = f.person(tid)
            if p is not None:
                out[i] = p.keypoints_2d
        return out

    def _track(self, track_id: int | None) -> int:
        ids = self.track_ids()
        if track_id is None:
            if len(ids) != 1:
                raise ValueError(f"the sequence holds {len(ids)} people {ids}: pass track_id")
            return ids[0]
        if track_id not in ids:
            raise ValueError(f"no person with track_id {track_id} (have {ids})")
        return track_id

    # --- formats -----------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {
            "fps": self.fps, "width": self.width, "height": self.height, "joint_names": list(self.joint_names),
            "skeleton_edges": [list(e) for e in self.skeleton_edges], "coordinates": self.coordinates,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PoseSequence:
        """From the server's JSON result (`GET /v1/jobs/{id}/result`)."""
        try:
            return cls(
                frames=[Frame.from_dict(f) for f in d["frames"]],
                fps=float(d["fps"]),
                width=int(d["width"]),
                height=int(d["height"]),
                joint_names=tuple(d["joint_names"]),
                skeleton_edges=tuple((int(a), int(b)) for a, b in d.get("skeleton_edges", [])),
                coordinates=dict(d.get("coordinates", {})),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a hotpose result: {e!r}") from e

    def to_dict(self) -> dict[str, Any]:
        return {**self.meta(), "frames": [f.to_dict() for f in self.frames]}

    def to_json(self, path: str | Path | IO[str] | None = None) -> str | None:
        """The server's JSON result format; returns the text when no path is given."""
        return formats.write_json(self.to_dict(), path)

    @classmethod
    def from_json(cls, source: str | Path | IO[str]) -> PoseSequence:
        """From a JSON file, open file or JSON text."""
        return cls.from_dict(formats.read_json(source))

    def to_npz(self, path: str | Path | IO[bytes]) -> None:
        """One row per person-frame (arrays listed in `formats.npz_arrays`), as `?format=npz` returns."""
        formats.write_npz(path, formats.npz_arrays(self.meta(), (f.to_dict() for f in self.frames)))

    @classmethod
    def from_npz(cls, path: str | Path | IO[bytes]) -> PoseSequence:
        meta, frames = formats.read_npz(path)
        return cls.from_dict({**meta, "frames": frames})

    def to_csv(self, path: str | Path | IO[str]) -> None:
        """Long format, one row per person, frame and joint (`formats.CSV_COLUMNS`), as `?format=csv`.

        CSV holds no video size or frame rate and no rows for frames without people.
        """
        formats.write_csv(path, (f.to_dict() for f in self.frames), self.joint_names)

    @classmethod
    def from_csv(cls, path: str | Path | IO[str], *, fps: float = 0.0, width: int = 0, height: int = 0) -> PoseSequence:
        names, frames = formats.read_csv(path)
        return cls.from_dict({"fps": fps, "width": width, "height": height, "joint_names": names, "frames": frames})

    def to_bvh(
        self, path: str | Path, track_id: int | None = None, *, root_positions: np.ndarray | None = None
    ) -> None:
        """A BVH animation of one person (see `hotpose_client.bvh.write_bvh`).

        Frames where the person is absent hold the previous pose. `root_positions` [T, 3] (metres,
        camera frame) adds the trajectory; without it the pelvis stays at the origin, since the
        server's 3D is root-relative. BVH has one frame time: frames at uneven times (variable
        frame rate) are resampled from their timestamps onto an even grid at the clip's rate (the
        nearest frame for each grid time), so the motion keeps its real timing.
        """
        from hotpose_client.bvh import write_bvh

        joints = self.joints_3d(track_id)
        fps = frame_rate(self.fps, self.times)
        pick = even_grid(self.times, fps)
        if pick is not None:
            joints = joints[pick]
            root_positions = None if root_positions is None else np.asarray(root_positions)[pick]
        write_bvh(path, joints, fps, root_positions=root_positions)


def even_grid(times: np.ndarray, fps: float) -> np.ndarray | None:
    """For frames at `times` (s, non-decreasing): the frame nearest each time of an even grid at `fps`
    from the first frame to the last, or None when the frames are already even (within 1/4 frame)."""
    t = np.asarray(times, np.float64)
    if len(t) < 2 or fps <= 0:
        return None
    step = 1.0 / fps
    if np.all(np.abs(t - (t[0] + step * np.arange(len(t)))) <= step / 4):
        return None
    grid = t[0] + step * np.arange(int(np.floor((t[-1] - t[0]) / step + 1e-6)) + 1)
    right = np.clip(np.searchsorted(t, grid), 1, len(t) - 1)
    left = right - 1
    out: np.ndarray | None = np.where(np.abs(t[right] - grid) < np.abs(grid - t[left]), right, left)
    return out


def frame_rate(stated: float, times: np.ndarray) -> float:
    """The rate to write: the container's `stated` fps unless the frames' own times disagree with it
    by more than 25% (some containers state 1000 fps, some nothing); then the times' median rate."""
    d = np.diff(np.asarray(times, np.float64))
    d = d[d > 0]
    measured = float(1.0 / np.median(d)) if len(d) else 0.0
    if stated > 0 and (measured == 0.0 or abs(stated - measured) <= 0.25 * measured):
        return stated
    return measured if measured > 0 else 30.0
