"""Video -> 3D poses with no web framework: decode -> detect -> track -> window -> lift (the 2D shown
on live streams is smoothed; the lifter gets the detector's own).

One `PosePipeline` per video or live stream; the clip jobs, the WebSocket sessions and the
`hotpose run` command line all use it. The models are passed in as functions (`detect`, `lift`),
so the same code runs them directly (command line) or through the service's shared batching
schedulers.

Conventions of the output (`FramePoses`, `PoseSequence`):
- `keypoints_2d`: Human3.6M-17 joints in image pixels (x right, y down, pixel centres at
  i + 0.5) with a 0..1 score per joint;
- `joints_3d`: metres, camera frame (x right, y down, z away from the camera, as OpenCV),
  root-relative (the pelvis is the origin), Human3.6M-17 order.

Time handling, windows and causal/delayed emission: `hotpose.service.lifting`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from hotpose.models import Lifter
from hotpose.models.detector import Detector, Person
from hotpose.models.keypoints import H36M_EDGES, H36M_JOINTS
from hotpose.models.kind import SEQ2SEQ, LifterKind
from hotpose.models.placement import Camera
from hotpose.service.lifting import LiftFn, LiftPolicy, StreamLifter, lift_root_relative
from hotpose.service.placing import ROOT_LAG_FRAMES, CameraRequest, RootPlacer
from hotpose.service.smoothing import OneEuroConfig, OneEuroFilter
from hotpose_client import formats, schema

log = logging.getLogger(__name__)

FILTER_RESET_S = 0.25  # a person unseen for longer starts a fresh 2D filter (no pull to where they were)

DetectFn = Callable[[np.ndarray, float], list[Person]]  # the next RGB frame of this stream, its time (s) -> people
# the same, also given the frame as the client sent it (JPEG/PNG bytes): a remote 2D stage is sent those
EncodedDetectFn = Callable[[np.ndarray, float, bytes], list[Person]]


@dataclass
class PersonPose:
    track_id: int
    bbox: tuple[float, float, float, float]
    score: float
    keypoints_2d: np.ndarray  # [17, 3] x, y pixels, score
    joints_3d: np.ndarray | None = None  # [17, 3] metres, camera frame, root-relative
    root_3d: np.ndarray | None = None  # [3] metres, camera frame: where the pelvis is (`hotpose.service.placing`)
    raw_2d: np.ndarray | None = field(default=None, repr=False)  # [17, 3] the detector's own 2D (not sent)

    def to_wire(self) -> schema.Person:
        """As sent (`hotpose_client.schema.Person`): pixels to 0.01, metres to 0.1 mm, scores to 1e-4."""
        return schema.Person(
            track_id=self.track_id,
            bbox=[round(float(v), 2) for v in self.bbox],
            score=round(float(self.score), 4),
            keypoints_2d=np.round(self.keypoints_2d, 2).tolist(),
            joints_3d=None if self.joints_3d is None else np.round(self.joints_3d, 4).tolist(),
            root_3d=None if self.root_3d is None else np.round(self.root_3d, 4).tolist(),
        )

    def to_dict(self) -> dict[str, object]:
        return self.to_wire().model_dump(mode="json")


@dataclass
class FramePoses:
    index: int
    time: float
    people: list[PersonPose] = field(default_factory=list)

    def to_wire(self) -> schema.Frame:
        """As sent (`hotpose_client.schema.Frame`): a result's frame, one NDJSON line of a job's stream."""
        return schema.Frame(index=self.index, time=round(self.time, 4), people=[p.to_wire() for p in self.people])

    def to_json(self) -> str:
        """The frame's JSON (compact): pydantic's serialiser, faster than `json.dumps` of a dict."""
        return self.to_wire().model_dump_json()

    def to_dict(self) -> dict[str, object]:
        return self.to_wire().model_dump(mode="json")


@dataclass
class PoseSequence:
    fps: float
    width: int
    height: int
    frames: list[FramePoses]
    joint_names: tuple[str, ...] = H36M_JOINTS
    camera: Camera | None = None

    def to_wire(self) -> schema.Result:
        head = result_head(self.fps, self.width, self.height, self.camera)
        frames = [f.to_wire() for f in self.frames]
        return schema.Result(**{**dict(head), "joint_names": list(self.joint_names)}, frames=frames)

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = self.to_wire().model_dump(mode="json")
        if d["camera"] is None:  # as in the files: no camera, no key
            del d["camera"]
        return d


class PosePipeline:
    """Frames of one video or stream in order -> `FramePoses` in the same order, 3D filled in.

    `push` returns the frames that became complete (none, one or several: see the policy);
    `flush` at the end returns the rest. Without a lifter (`lift=None`) frames come out at once
    with `joints_3d = None`.
    """

    def __init__(
        self,
        detect: DetectFn,
        lift: LiftFn | None,
        window: int,
        policy: LiftPolicy,
        smoothing: OneEuroConfig | None = None,
        camera: CameraRequest | None = None,
        kind: LifterKind = SEQ2SEQ,
        detect_encoded: EncodedDetectFn | None = None,
    ) -> None:
        self.detect = detect
        self.detect_encoded = detect_encoded
        self.streamer = StreamLifter(window, lift, policy, kind) if lift is not None else None
        # roots wait for future context when the poses do (clips, delayed streams); causal ones are filtered
        self.placer = RootPlacer(camera or CameraRequest(), ROOT_LAG_FRAMES if policy.delay > 0 else 0)
        self.smoothing = smoothing
        self.filters: dict[int, OneEuroFilter] = {}
        self.width = self.height = 0

    def push(self, index: int, t: float, frame: np.ndarray, encoded: bytes | None = None) -> list[FramePoses]:
        """One RGB uint8 frame [H, W, 3] at time t (seconds, non-decreasing); `encoded`: the same frame as
        the client sent it, when it came encoded (a live stream's JPEG)."""
        self.height, self.width = frame.shape[:2]
        if encoded is not None and self.detect_encoded is not None:
            people = self.detect_encoded(frame, t, encoded)
        else:
            people = self.detect(frame, t)
        return self.push_people(index, t, people, self.width, self.height)

    def push_people(self, index: int, t: float, people: list[Person], width: int, height: int) -> list[FramePoses]:
        self.width, self.height = width, height
        fp = FramePoses(index, t)
        raw: list[tuple[int, np.ndarray]] = []  # what the lifter gets: the detector's own 2D and scores
        for p in people:
            kp = p.h36m17()
            raw.append((p.track_id, kp))
            detected = kp
            # smoothing is for the 2D shown: the lifter was trained on unfiltered, noisy 2D, and lifting
            # the filtered 2D measured worse in MPJPE and MPJVE alike (its lag; README, live mode)
            if self.smoothing is not None:
                f = self.filters.setdefault(p.track_id, OneEuroFilter(self.smoothing))
                kp = np.concatenate([f(t, kp[:, :2]), kp[:, 2:]], axis=1).astype(np.float32)
            fp.people.append(PersonPose(p.track_id, p.bbox, p.score, kp, raw_2d=detected))
        # a person unseen for a while starts a fresh filter when back (a filter's t: when it last saw them)
        gone = [tid for tid, f in self.filters.items() if f.t is not None and t - f.t > FILTER_RESET_S]
        for tid in gone:
            del self.filters[tid]
        if self.streamer is None:
            return [fp]
        done = self.streamer.push(fp, t, raw, width, height)
        return self.placer.push([_fill(key, y3d) for key, y3d in done], width, height)

    def flush(self) -> list[FramePoses]:
        if self.streamer is None:
            return []
        done = [_fill(key, y3d) for key, y3d in self.streamer.flush()]
        return self.placer.push(done, self.width, self.height) + self.placer.flush()

    @property
    def camera(self) -> Camera | None:
        """The camera people are placed with (known from the first frame on)."""
        return self.placer.camera


def _fill(key: object, y3d: dict[int, np.ndarray]) -> FramePoses:
    assert isinstance(key, FramePoses)
    for p in key.people:
        p.joints_3d = y3d.get(p.track_id)
    return key


def iter_poses(frames: Iterable[tuple[int, float, np.ndarray]], pipeline: PosePipeline) -> Iterator[FramePoses]:
    """Run a pipeline over (index, time, RGB frame) triples; yields frames in order as they complete.

    Memory is bounded by the lifter's window and delay, not by the video's length.
    """
    for index, t, frame in frames:
        yield from pipeline.push(index, t, frame)
    yield from pipeline.flush()


def clip_pipeline(
    detector: Detector,
    lifter: Lifter | None,
    max_gap_s: float,
    camera: CameraRequest | None = None,
    batch: int | None = None,
) -> PosePipeline:
    """The pipeline of one whole video with the models called directly (the `hotpose run` command);
    `max_gap_s`: the tracker's gap (`Settings.track_max_gap_s`); `camera`: what the user says of it;
    `batch`: windows per lifter call (`Settings.lifter_max_batch`; None: all that fall due at once)."""
    detector.reset()
    lift: LiftFn | None = None
    window = 0
    kind = SEQ2SEQ
    if lifter is not None:
        window, kind = lifter.config.frames, lifter.KIND
        lift = partial(lift_root_relative, lifter, batch=batch)
    policy = LiftPolicy.clip(max(window, 1), max_gap_s)
    return PosePipeline(detector.process, lift, window, policy, camera=camera, kind=kind)


# Units and axes of the result fields, in every result (JSON, NPZ) and in `/v1/info`.
COORDINATES = {
    "keypoints_2d": "image pixels, x right, y down, origin at the top-left corner; third value: score 0..1",
    "joints_3d": "metres, camera frame (x right, y down, z away from the camera), root-relative: pelvis = 0",
    "root_3d": "metres, camera frame: the pelvis; joints_3d + root_3d places the person (pinhole `camera`)",
    "time": "seconds from the first frame (container timestamps, or the client's t on streams)",
}


def result_head(fps: float, width: int, height: int, camera: Camera | None) -> schema.ResultHead:
    """Everything a result holds besides its frames (`hotpose_client.schema.ResultHead`)."""
    return schema.ResultHead(
        fps=fps, width=width, height=height, joint_names=list(H36M_JOINTS),
        skeleton_edges=[list(e) for e in H36M_EDGES], coordinates=COORDINATES,
        camera=None if camera is None else schema.Camera.model_validate(camera.to_dict()),
    )  # fmt: skip


def result_meta(fps: float, width: int, height: int, camera: Camera | None) -> dict[str, Any]:
    """`result_head` as JSON values (`camera` left out when there is none), as `meta.json` stores it."""
    return result_head(fps, width, height, camera).head_dict()


def write_poses_json(
    frames: Iterable[FramePoses], path: Path, fps: float, width: int, height: int, camera: Camera | None
) -> Iterator[FramePoses]:
    """Write frames as they come to `path` (the JSON of `PoseSequence.to_dict`, never all in memory),
    passing each one on; the file appears complete or not at all (written as `.part`, then renamed)."""
    part = path.with_name(path.name + ".part")
    with open(part, "w") as out:
        out.write(formats.json_head(result_meta(fps, width, height, camera)))
        for i, fp in enumerate(frames):
            out.write(("," if i else "") + fp.to_json())
            yield fp
        out.write("]}")
    part.replace(path)


def process_frames(
    frames: Iterable[tuple[int, float, np.ndarray]],
    detector: Detector,
    lifter: Lifter | None,
    fps: float,
    max_gap_s: float,
    progress: Callable[[int], None] | None = None,
    camera: CameraRequest | None = None,
) -> PoseSequence:
    """A whole video in one process, held in memory: clip policy, models called directly."""
    pipeline = clip_pipeline(detector, lifter, max_gap_s, camera)
    out: list[FramePoses] = []
    for fp in iter_poses(frames, pipeline):
        out.append(fp)
        if progress is not None:
            progress(len(out))
    return PoseSequence(fps=fps, width=pipeline.width, height=pipeline.height, frames=out, camera=pipeline.camera)
