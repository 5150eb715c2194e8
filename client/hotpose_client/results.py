"""Typed results: `Person` in a `Frame`, frames in a `PoseSequence`.

Units and frames (the server's `/v1/info` says the same under `coordinates`):
- `keypoints_2d` [17, 3]: image pixels (x right, y down, origin at the top-left corner), then a
  0..1 score per joint;
- `joints_3d` [17, 3]: metres in the camera frame (x right, y down, z away from the camera),
  root-relative (the pelvis is the origin); `None` when the lifter had not produced it;
- `root_3d` [3]: where that pelvis is, metres in the same camera frame (so `joints_3d + root_3d`
  places the person in front of the camera); `None` when it could not be solved (no lifter, too
  few joints seen) and in results written before it existed. The server solves it from the 2D
  with a pinhole `Camera` and the lifted skeleton's size; scale and depth are one unknown to one
  camera, so a person smaller than that skeleton is placed too far and a larger one too near, by
  the ratio of the sizes (a child of 0.7 times its size: at 1/0.7, about 1.4 times, the true
  distance, its whole path scaled by 1.4 about the camera);
- `time`: seconds from the first frame.
Joints are in Human3.6M-17 order (`PoseSequence.joint_names`).

The wire layout of each (field names, which may be null or absent) is `hotpose_client.schema`;
these classes are its numpy view: `from_wire` / `to_wire` convert, `from_dict` / `to_dict` read
and write the JSON layout through it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from hotpose_client import formats, schema

__all__ = ["Camera", "Frame", "Person", "PoseSequence"]


@dataclass(frozen=True)
class Camera:
    """The pinhole camera the server placed people with (`root_3d`), in the video's pixels.

    `focal_px` the focal length, (`cx`, `cy`) the principal point, `width` x `height` the image;
    `assumed` is True when the client gave neither a focal length nor a field of view and the
    server took a 70-degree horizontal field of view (then distances are as good as that guess).
    """

    focal_px: float
    cx: float
    cy: float
    width: int
    height: int
    assumed: bool

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Camera:
        """From the `camera` object of a result or a live `pose` message (`schema.Camera`)."""
        return cls(**formats.camera_dict(d))

    @classmethod
    def from_wire(cls, c: schema.Camera) -> Camera:
        return cls(**c.model_dump())

    def to_wire(self) -> schema.Camera:
        return schema.Camera(**self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in formats.CAMERA_KEYS}

    def project(self, points: np.ndarray) -> np.ndarray:
        """Camera-frame points [..., 3] (metres) -> pixels [..., 2], e.g. `joints_3d + root_3d` onto the video."""
        p = np.asarray(points, np.float64)
        out: np.ndarray = self.focal_px * p[..., :2] / p[..., 2:3] + np.array([self.cx, self.cy])
        return out


def _camera(c: schema.Camera | None) -> Camera | None:
    return None if c is None else Camera.from_wire(c)


@dataclass(frozen=True, eq=False)  # arrays inside: compare fields, not objects
class Person:
    track_id: int
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 pixels
    score: float
    keypoints_2d: np.ndarray  # [17, 3] x, y pixels, score
    joints_3d: np.ndarray | None  # [17, 3] metres, camera frame, root-relative
    root_3d: np.ndarray | None = None  # [3] metres, camera frame: the pelvis; None where not solved

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Person:
        return cls.from_wire(schema.Person.model_validate(d))

    @classmethod
    def from_wire(cls, p: schema.Person) -> Person:
        j3, root = p.joints_3d, p.root_3d
        x0, y0, x1, y1 = p.bbox
        return cls(
            track_id=p.track_id,
            bbox=(x0, y0, x1, y1),
            score=p.score,
            keypoints_2d=np.asarray(p.keypoints_2d, np.float64).reshape(-1, 3),
            joints_3d=None if j3 is None else np.asarray(j3, np.float64).reshape(-1, 3),
            root_3d=None if root is None else np.asarray(root, np.float64).reshape(3),
        )

    def to_wire(self) -> schema.Person:
        return schema.Person(
            track_id=self.track_id,
            bbox=[float(v) for v in self.bbox],
            score=float(self.score),
            keypoints_2d=self.keypoints_2d.tolist(),
            joints_3d=None if self.joints_3d is None else self.joints_3d.tolist(),
            root_3d=None if self.root_3d is None else self.root_3d.tolist(),
        )

    def to_dict(self) -> dict[str, Any]:
        return self.to_wire().model_dump(mode="json")


@dataclass(frozen=True, eq=False)
class Frame:
    """One video frame's people. On live streams also the server's latency, drop count and camera."""

    index: int
    time: float
    people: list[Person] = field(default_factory=list)
    latency_ms: float | None = None  # live: arrival at the server -> answer sent
    dropped: int | None = None  # live: frames of this stream the server has dropped so far
    camera: Camera | None = None  # live: the camera `root_3d` was solved with (results: `PoseSequence.camera`)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Frame:
        """A result's frame (`schema.Frame`), or a live `pose` message (`schema.PoseMessage`: `t` for `time`);
        a frame dict's `camera`, `latency_ms` and `dropped` (as `to_dict` writes them for live frames) are kept."""
        if "time" not in d and "t" in d:
            return cls.from_wire(schema.PoseMessage.model_validate({**d, "type": "pose"}))
        f = cls.from_wire(schema.Frame.model_validate(d))
        camera = None if d.get("camera") is None else Camera.from_dict(d["camera"])
        return cls(f.index, f.time, f.people, d.get("latency_ms"), d.get("dropped"), camera)

    @classmethod
    def from_wire(cls, f: schema.Frame | schema.PoseMessage) -> Frame:
        people = [Person.from_wire(p) for p in f.people]
        if isinstance(f, schema.PoseMessage):
            return cls(f.index, f.t, people, f.latency_ms, f.dropped, _camera(f.camera))
        return cls(f.index, f.time, people)

    def to_wire(self) -> schema.Frame:
        """A result's frame (without the live fields)."""
        return schema.Frame(index=self.index, time=self.time, people=[p.to_wire() for p in self.people])

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout of a result's frame (`schema.Frame`); `camera` only when the frame has one (live)."""
        d = self.to_wire().model_dump(mode="json")
        if self.camera is not None:
            d["camera"] = self.camera.to_dict()
        return d

    def person(self, track_id: int) -> Person | None:
        return next((p for p in self.people if p.track_id == track_id), None)


@dataclass
class PoseSequence:
    """The poses of a whole clip, frame by frame, with the video's size and frame rate, and the
    camera people were placed with (None in results written before `root_3d`, or without a lifter)."""

    frames: list[Frame]
    fps: float
    width: int
    height: int
    joint_names: tuple[str, ...]
    skeleton_edges: tuple[tuple[int, int], ...] = ()
    coordinates: dict[str, str] = field(default_factory=dict)
    camera: Camera | None = None

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def times(self) -> np.ndarray:
        """[T] seconds of each frame."""
        return np.array([f.time for f in self.frames], np.float64)

    def track_ids(self) -> list[int]:
        return sorted({p.track_id for f in self.frames for p in f.people})

    def joints_3d(self, track_id: int | None = None, frame: Literal["root", "camera"] = "root") -> np.ndarray:
        """[T, 17, 3] metres for one person over every frame; NaN where absent or not lifted.

        `frame="root"`: root-relative (the pelvis at the origin), as the server sends them.
        `frame="camera"`: placed in the camera frame, `joints_3d + root_3d`; NaN also in the frames
        whose root is unknown (see `root_trajectory`).
        `track_id` may be left out when the sequence holds exactly one person.
        """
        if frame not in ("root", "camera"):
            raise ValueError(f"frame must be 'root' or 'camera', got {frame!r}")
        tid = self._track(track_id)
        out = np.full((len(self.frames), len(self.joint_names), 3), np.nan)
        for i, f in enumerate(self.frames):
            p = f.person(tid)
            if p is not None and p.joints_3d is not None:
                out[i] = p.joints_3d
        if frame == "camera":
            out += self.root_trajectory(tid)[:, None]
        return out

    def root_trajectory(self, track_id: int | None = None) -> np.ndarray:
        """[T, 3] metres, camera frame: one person's pelvis over every frame (`Person.root_3d`);
        NaN where the person is absent or the root was not solved (all NaN in older results).

        `track_id` may be left out when the sequence holds exactly one person.
        """
        tid = self._track(track_id)
        out = np.full((len(self.frames), 3), np.nan)
        for i, f in enumerate(self.frames):
            p = f.person(tid)
            if p is not None and p.root_3d is not None:
                out[i] = p.root_3d
        return out

    def joint_angles(self, track_id: int | None = None) -> dict[str, np.ndarray]:
        """One person's knee, hip, elbow and shoulder angles over every frame: name -> [T] degrees,
        NaN where the person is absent or not lifted. Names and exact definitions:
        `hotpose_client.angles` (e.g. `r_knee`: at the knee, between knee->hip and knee->ankle,
        180 for a straight leg). `track_id` may be left out when the sequence holds exactly one person.
        """
        from hotpose_client.angles import joint_angles

        if len(self.joint_names) != 17:
            raise ValueError(f"joint angles need Human3.6M-17 joints, the sequence has {len(self.joint_names)}")
        return joint_angles(self.joints_3d(track_id))

    def angles_to_csv(self, path: str | Path | IO[str]) -> None:
        """Everyone's joint angles, one row per person and frame with 3D (`angles.CSV_COLUMNS`), degrees,
        as the server's `GET /v1/jobs/{id}/angles?format=csv`."""
        from hotpose_client.angles import angles_csv_chunks

        chunks = angles_csv_chunks(f.to_wire() for f in self.frames)
        if isinstance(path, (str, Path)):
            with open(path, "w", newline="") as f:
                f.writelines(chunks)
        else:
            path.writelines(chunks)

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

    def head(self) -> schema.ResultHead:
        """The result header (`schema.ResultHead`)."""
        return schema.ResultHead(
            fps=self.fps, width=self.width, height=self.height, joint_names=list(self.joint_names),
            skeleton_edges=[list(e) for e in self.skeleton_edges], coordinates=self.coordinates,
            camera=None if self.camera is None else self.camera.to_wire(),
        )  # fmt: skip

    def meta(self) -> dict[str, Any]:
        """The result header as JSON values (`schema.ResultHead`); `camera` only when the sequence has one."""
        return self.head().head_dict()

    @classmethod
    def from_wire(cls, head: schema.ResultHead, frames: Iterable[schema.Frame]) -> PoseSequence:
        """From a result's head and its frames (one at a time: the server's NDJSON, long clips)."""
        return cls(
            frames=[Frame.from_wire(f) for f in frames],
            fps=head.fps,
            width=head.width,
            height=head.height,
            joint_names=tuple(head.joint_names),
            skeleton_edges=tuple((a, b) for a, b in head.skeleton_edges),
            coordinates=dict(head.coordinates),
            camera=_camera(head.camera),  # absent in results written before it existed
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PoseSequence:
        """From the server's JSON result (`GET /v1/jobs/{id}/result`, `schema.Result`)."""
        try:
            head = schema.ResultHead.model_validate({k: v for k, v in d.items() if k != "frames"})
            return cls.from_wire(head, (schema.Frame.model_validate(f) for f in d["frames"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a hotpose result: {e}") from e

    def to_dict(self) -> dict[str, Any]:
        return {**self.meta(), "frames": [f.to_wire().model_dump(mode="json") for f in self.frames]}

    def to_json(self, path: str | Path | IO[str] | None = None) -> str | None:
        """The server's JSON result format; returns the text when no path is given."""
        return formats.write_json(self.to_dict(), path)

    @classmethod
    def from_json(cls, source: str | Path | IO[str]) -> PoseSequence:
        """From a JSON file, open file or JSON text."""
        return cls.from_dict(formats.read_json(source))

    def to_npz(self, path: str | Path | IO[bytes]) -> None:
        """One row per person-frame (arrays listed in `formats.npz_arrays`), as `?format=npz` returns."""
        formats.write_npz(path, formats.npz_arrays(self.head(), (f.to_wire() for f in self.frames)))

    @classmethod
    def from_npz(cls, path: str | Path | IO[bytes]) -> PoseSequence:
        meta, frames = formats.read_npz(path)
        return cls.from_dict({**meta, "frames": frames})

    def to_csv(self, path: str | Path | IO[str]) -> None:
        """Long format, one row per person, frame and joint (`formats.CSV_COLUMNS`), as `?format=csv`.

        CSV holds no video size or frame rate and no rows for frames without people; the root and
        the camera (focal length, principal point, assumed) are repeated on every row.
        """
        camera = None if self.camera is None else self.camera.to_dict()
        formats.write_csv(path, (f.to_wire() for f in self.frames), self.joint_names, camera)

    @classmethod
    def from_csv(cls, path: str | Path | IO[str], *, fps: float = 0.0, width: int = 0, height: int = 0) -> PoseSequence:
        """`fps`, `width` and `height` are not in a CSV: give them (they also become the camera's image size)."""
        names, frames, camera = formats.read_csv(path)
        meta = {"fps": fps, "width": width, "height": height, "joint_names": names}
        if camera is not None:
            meta["camera"] = {**camera, "width": width, "height": height}
        return cls.from_dict({**meta, "frames": frames})

    def to_bvh(
        self,
        path: str | Path,
        track_id: int | None = None,
        *,
        root_positions: np.ndarray | Literal["trajectory"] | None = "trajectory",
    ) -> None:
        """A BVH animation of one person (see `hotpose_client.bvh.write_bvh`).

        Frames where the person is absent hold the previous pose. The `Hips` position channels:
        - `root_positions="trajectory"` (default): the person's `root_trajectory`, with the frames
          whose root is unknown filled by `bvh.fill_root_gaps` (linear in time between the nearest
          known roots, the nearest one held before the first and after the last); when no frame has
          a root (older results, no lifter) the pelvis stays at the origin;
        - `root_positions=None`: the pelvis stays at the origin (a motion in place);
        - an array [T, 3] (metres, camera frame, one row per frame of the sequence): that path, as
          given (a NaN row holds the last frame that has both joints and root).
        BVH has one frame time: frames at uneven times (variable frame rate) are resampled from
        their timestamps onto an even grid at the clip's rate (the nearest frame for each grid
        time), so the motion keeps its real timing.
        """
        from hotpose_client.bvh import fill_root_gaps, write_bvh

        joints = self.joints_3d(track_id)
        root: np.ndarray | None
        if isinstance(root_positions, str):
            if root_positions != "trajectory":
                raise ValueError(f"root_positions: 'trajectory', None or an array [T, 3], not {root_positions!r}")
            root = self.root_trajectory(track_id)
            root = None if np.isnan(root).all() else fill_root_gaps(root, self.times)
        else:
            root = None if root_positions is None else np.asarray(root_positions, np.float64)
            t = len(self.frames)
            if root is not None and root.shape != (t, 3):
                raise ValueError(f"expected root_positions [{t}, 3] (one per frame), got {list(root.shape)}")
        fps = frame_rate(self.fps, self.times)
        pick = even_grid(self.times, fps)
        if pick is not None:
            joints = joints[pick]
            root = None if root is None else root[pick]
        write_bvh(path, joints, fps, root_positions=root)


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
