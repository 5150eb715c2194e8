"""The models behind the routes, as backends: a 2D stage (`DetectorBackend`) and a lifter
(`LifterBackend`), each run in this process by a batching scheduler (`LocalDetector`, `LocalLifter`)
or by Ray Serve deployments (`hotpose.service.deploy.ray_app`). The routes, the WebSocket sessions and
the clip workers see only these interfaces, through `Engine`.

Constructing a backend is cheap; `start` loads its models (in the app's lifespan) and runs a warm-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from hotpose.models import Lifter, create_lifter
from hotpose.models.detector import Person
from hotpose.models.detector.topdown import StreamState, TopDown
from hotpose.models.device import pick_device
from hotpose.models.kind import LifterKind
from hotpose.service.lifting import lift_root_relative
from hotpose.service.scheduler import BatchConfig, BatchScheduler

JPEG_QUALITY = 95  # frames a clip worker sends to a remote 2D stage (live frames go as the client sent them)


class BackendError(RuntimeError):
    """A model backend could not answer: a remote replica died or cannot be reached (not a bad input)."""


class StreamDetect(Protocol):
    """The 2D stage bound to one stream's tracking state: the next RGB uint8 frame [H, W, 3] at time t
    (seconds) -> its people. `encoded`, the same frame as the client sent it (JPEG/PNG bytes), lets a
    remote stage receive bytes instead of pixels."""

    def __call__(self, frame: np.ndarray, t: float, encoded: bytes | None = None) -> list[Person]: ...


class DetectorBackend(Protocol):
    device: str

    def start(self) -> None: ...

    def new_stream(self) -> StreamDetect: ...

    def describe(self) -> dict[str, object]:
        """What runs in the 2D stage (`/v1/info`)."""
        ...

    def close(self) -> None: ...


class LifterBackend(Protocol):
    device: str

    def start(self) -> None: ...

    @property
    def info(self) -> LifterInfo:
        """What the lifter is (known once started)."""
        ...

    def lift(self, windows: np.ndarray, flip: bool) -> np.ndarray:
        """Normalised 2D windows [N, F, 17, C] -> root-relative 3D [N, F, 17, 3] (seq2seq) or [N, 17, 3]."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class LifterInfo:
    """A loaded lifter as the service describes and windows for it."""

    window: int  # frames per window
    kind: LifterKind
    weights: str  # the weights file's name (no server paths)
    config: dict[str, object]  # the model's config (`/v1/info`)


@dataclass(frozen=True)
class DetectorConfig:
    """The 2D stage a service runs (from `Settings` through `EngineConfig.detector`)."""

    person_detector: str
    keypoints: str
    keypoints_weights: Path | None  # the checkpoint of a heatmap keypoint model (hotpose.models.pose2d)
    tracker: str
    redetect_every: int
    lost_redetect_every: int
    idle_redetect_every: int
    track_max_gap_s: float
    home: Path  # 2D weights cache
    device: str | None  # None: CUDA when present
    batch: BatchConfig


@dataclass(frozen=True)
class LifterConfig:
    name: str
    weights: Path  # resolved (`hotpose.models.resolve_weights`)
    device: str | None
    batch: BatchConfig


def create_2d_stage(config: DetectorConfig, device: str) -> TopDown:
    """The 2D stage the config names (detector, keypoints, tracker and their schedule) on `device`."""
    from hotpose.models.detector import create_detector

    stage = create_detector(
        config.person_detector, config.keypoints, config.tracker, device=device, home=config.home,
        tracker_config={"max_gap_s": config.track_max_gap_s},
        keypoint_config={"weights": config.keypoints_weights} if config.keypoints_weights is not None else None,
        redetect_every=config.redetect_every, lost_redetect_every=config.lost_redetect_every,
        idle_redetect_every=config.idle_redetect_every,
    )  # fmt: skip
    assert isinstance(stage, TopDown)
    return stage


def describe_2d(stage: TopDown, config: DetectorConfig) -> dict[str, object]:
    detector = stage.person_detector
    return {
        "person_detector": {"name": detector.name, **_fields(getattr(detector, "config", None))},
        "keypoints": {
            "name": stage.keypoint_model.name, "layout": stage.keypoint_model.layout,
            **_fields(getattr(stage.keypoint_model, "config", None)),
        },
        "tracker": {"name": config.tracker, "max_gap_s": config.track_max_gap_s},
        "schedule": _fields(stage.config),
    }  # fmt: skip


def _fields(config: object) -> dict[str, object]:
    return dict(vars(config)) if config is not None else {}


def decode_rgb(data: bytes) -> np.ndarray:
    """JPEG/PNG bytes -> RGB uint8 [H, W, 3] (ValueError when they are not an image)."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("not a decodable image")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def encode_jpeg(frame: np.ndarray) -> bytes:
    """RGB uint8 [H, W, 3] -> JPEG bytes at `JPEG_QUALITY`."""
    ok, buf = cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("could not encode the frame as JPEG")
    return buf.tobytes()


class LocalDetector:
    """The 2D stage in this process: one scheduler batches the next frame of every stream."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.device = str(pick_device(config.device))
        self.stage: TopDown | None = None
        self._scheduler: BatchScheduler[tuple[np.ndarray, StreamState, float], list[Person]] | None = None

    def start(self) -> None:
        stage = create_2d_stage(self.config, self.device)
        self.stage = stage
        self._scheduler = BatchScheduler(
            "detector", lambda items: stage.process_batch([(f, st) for f, st, _ in items], [t for *_, t in items]),
            self.config.batch,
        )  # fmt: skip
        st = stage.new_stream()
        self._scheduler.submit((np.zeros((256, 256, 3), np.uint8), st, 0.0)).result()  # warm-up

    def new_stream(self) -> StreamDetect:
        assert self.stage is not None and self._scheduler is not None, "start() first"
        st, scheduler = self.stage.new_stream(), self._scheduler

        def detect(frame: np.ndarray, t: float, encoded: bytes | None = None) -> list[Person]:
            return scheduler.submit((frame, st, t)).result()

        return detect

    def describe(self) -> dict[str, object]:
        assert self.stage is not None, "start() first"
        return describe_2d(self.stage, self.config)

    def close(self) -> None:
        if self._scheduler is not None:
            self._scheduler.close()


class LocalLifter:
    """The lifter in this process: one scheduler batches the windows of every person of every stream."""

    def __init__(self, config: LifterConfig) -> None:
        self.config = config
        self.device = str(pick_device(config.device))
        self.model: Lifter | None = None
        self._info: LifterInfo | None = None
        self._scheduler: BatchScheduler[tuple[np.ndarray, bool], np.ndarray] | None = None

    def start(self) -> None:
        model, self._info = load_lifter(self.config, self.device)
        self.model = model
        self._scheduler = BatchScheduler("lifter", lambda items: lift_batch(model, items), self.config.batch)

    @property
    def info(self) -> LifterInfo:
        assert self._info is not None, "start() first"
        return self._info

    def lift(self, windows: np.ndarray, flip: bool) -> np.ndarray:
        assert self._scheduler is not None, "start() first"
        return np.stack(self._scheduler.run([(w, flip) for w in windows]))

    def close(self) -> None:
        if self._scheduler is not None:
            self._scheduler.close()


def load_lifter(config: LifterConfig, device: str) -> tuple[Lifter, LifterInfo]:
    """The lifter's model on `device` and what it is, warmed up by one window."""
    model = create_lifter(config.name, weights=config.weights, device=device)
    info = LifterInfo(model.config.frames, model.KIND, config.weights.name, model.config.to_dict())
    lift_batch(model, [(np.zeros((info.window, 17, info.kind.channels), np.float32), False)])
    return model, info


def lift_batch(model: Lifter, items: list[tuple[np.ndarray, bool]]) -> list[np.ndarray]:
    """Windows [F, 17, C] with their flip flag -> 3D ([F, 17, 3], or [17, 3] from a seq2frame lifter);
    one model call per flag present."""
    out: list[np.ndarray | None] = [None] * len(items)
    for flip in (False, True):
        idx = [i for i, (_, f) in enumerate(items) if f == flip]
        if idx:
            y = lift_root_relative(model, np.stack([items[i][0] for i in idx]), flip=flip)
            for i, yi in zip(idx, y, strict=True):
                out[i] = yi
    return [o for o in out if o is not None]
