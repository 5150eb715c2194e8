"""The models of a running service and their batching schedulers (no web import).

One detector scheduler batches the next frame of every clip job and live stream (each with its
own tracking state); one lifter scheduler batches the windows of every person of every stream.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hotpose.models import Lifter, create_lifter, resolve_weights
from hotpose.models.detector import Person, create_detector
from hotpose.models.detector.topdown import StreamState, TopDown
from hotpose.models.device import pick_device
from hotpose.models.kind import SEQ2SEQ, LifterKind
from hotpose.service import metrics
from hotpose.service.lifting import LiftPolicy, lift_root_relative, min_delay
from hotpose.service.pipeline import DetectFn, PosePipeline
from hotpose.service.placing import CameraRequest
from hotpose.service.scheduler import BatchConfig, BatchScheduler
from hotpose.service.settings import Settings
from hotpose.service.smoothing import OneEuroConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    """What the engine runs; built from `Settings` (the one source of defaults: see its fields)."""

    lifter: str
    lifter_weights: Path | None  # None: the weights shipped with the package
    device: str | None  # None: CUDA when present
    home: Path  # 2D weights cache
    person_detector: str
    keypoints: str
    keypoints_weights: Path | None  # the checkpoint of a heatmap keypoint model (hotpose.models.pose2d)
    tracker: str
    redetect_every: int
    lost_redetect_every: int
    idle_redetect_every: int
    track_max_gap_s: float
    detector_batch: BatchConfig
    lifter_batch: BatchConfig
    flip: bool  # test-time flip averaging in the lifter (2x lifter cost)
    threads: int | None  # torch CPU threads (None: torch's default)

    @classmethod
    def from_settings(cls, s: Settings) -> EngineConfig:
        return cls(
            lifter=s.lifter, lifter_weights=s.lifter_weights, device=s.device, home=s.home, flip=s.flip,
            threads=s.threads, person_detector=s.person_detector, keypoints=s.keypoints,
            keypoints_weights=s.keypoints_weights, tracker=s.tracker,
            redetect_every=s.redetect_every, lost_redetect_every=s.lost_redetect_every,
            idle_redetect_every=s.idle_redetect_every, track_max_gap_s=s.track_max_gap_s,
            detector_batch=BatchConfig(s.detector_max_batch, s.detector_max_wait_ms),
            lifter_batch=BatchConfig(s.lifter_max_batch, s.lifter_max_wait_ms),
        )  # fmt: skip


def create_2d_stage(config: EngineConfig, device: str) -> TopDown:
    """The 2D stage the config names (detector, keypoints, tracker and their schedule) on `device`."""
    stage = create_detector(
        config.person_detector, config.keypoints, config.tracker, device=device, home=config.home,
        tracker_config={"max_gap_s": config.track_max_gap_s},
        keypoint_config={"weights": config.keypoints_weights} if config.keypoints_weights is not None else None,
        redetect_every=config.redetect_every, lost_redetect_every=config.lost_redetect_every,
        idle_redetect_every=config.idle_redetect_every,
    )  # fmt: skip
    assert isinstance(stage, TopDown)
    return stage


class Engine:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        if config.threads:
            torch.set_num_threads(config.threads)
        device = str(pick_device(config.device))
        self.device = device
        self.detector = create_2d_stage(config, device)
        weights = resolve_weights(config.lifter, config.lifter_weights)
        self.weights = weights
        self.lifter: Lifter | None = None
        if weights is None:
            log.warning("no trained weights for lifter %r: 2D only (set HOTPOSE_LIFTER_WEIGHTS)", config.lifter)
        else:
            self.lifter = create_lifter(config.lifter, weights=weights, device=device)
        self.window = self.lifter.config.frames if self.lifter is not None else 0
        self.kind: LifterKind = self.lifter.KIND if self.lifter is not None else SEQ2SEQ
        self.min_delay = min_delay(self.window, self.kind)  # future context the lifter needs (seq2frame)
        self.det_scheduler: BatchScheduler[tuple[np.ndarray, StreamState, float], list[Person]] = BatchScheduler(
            "detector", self._detect_batch, config.detector_batch
        )
        self.lift_scheduler: BatchScheduler[tuple[np.ndarray, bool], np.ndarray] = BatchScheduler(
            "lifter", self._lift_batch, config.lifter_batch
        )

    def warm_up(self) -> None:
        """One inference through each model (and its scheduler) before the service reports ready."""
        st = self.detector.new_stream()
        self.det_scheduler.submit((np.zeros((256, 256, 3), np.uint8), st, 0.0)).result()
        if self.lifter is not None:
            warm = np.zeros((self.window, 17, self.kind.channels), np.float32)
            self.lift_scheduler.submit((warm, self.config.flip)).result()

    def close(self) -> None:
        self.det_scheduler.close()
        self.lift_scheduler.close()

    # --- model calls (run on the scheduler threads) -----------------------------------

    def _detect_batch(self, items: list[tuple[np.ndarray, StreamState, float]]) -> list[list[Person]]:
        return self.detector.process_batch([(f, st) for f, st, _ in items], [t for _, _, t in items])

    def _lift_batch(self, items: list[tuple[np.ndarray, bool]]) -> list[np.ndarray]:
        """Windows [F, 17, C] with their flip flag -> 3D ([F, 17, 3], or [17, 3] from a seq2frame lifter);
        one model call per flag present."""
        assert self.lifter is not None
        out: list[np.ndarray | None] = [None] * len(items)
        for flip in (False, True):
            idx = [i for i, (_, f) in enumerate(items) if f == flip]
            if idx:
                y = lift_root_relative(self.lifter, np.stack([items[i][0] for i in idx]), flip=flip)
                for i, yi in zip(idx, y, strict=True):
                    out[i] = yi
        return [o for o in out if o is not None]

    # --- per-stream functions (blocking: call from worker threads) --------------------

    def detect_fn(self) -> DetectFn:
        """A detect function bound to a new stream's tracking state."""
        st = self.detector.new_stream()

        def detect(frame: np.ndarray, t: float) -> list[Person]:
            return self.det_scheduler.submit((frame, st, t)).result()

        return detect

    def lift(self, windows: np.ndarray, flip: bool | None = None) -> np.ndarray:
        t0 = time.perf_counter()
        f = self.config.flip if flip is None else flip
        out = np.stack(self.lift_scheduler.run([(w, f) for w in windows]))
        metrics.STAGE_SECONDS.labels("lift_wait").observe(time.perf_counter() - t0)
        return out

    def pipeline(
        self,
        policy: LiftPolicy | None = None,
        smoothing: OneEuroConfig | None = None,
        flip: bool | None = None,
        camera: CameraRequest | None = None,
    ) -> PosePipeline:
        """A pipeline for one clip or stream (default policy: offline clip quality; flip: the config's;
        camera: what the client says of its camera, for placing people)."""
        lift = (lambda w: self.lift(w, flip)) if self.lifter is not None else None
        window = self.window or 1
        policy = policy or LiftPolicy.clip(window, self.config.track_max_gap_s)
        return PosePipeline(self.detect_fn(), lift, window, policy, smoothing, camera, self.kind)

    def describe_2d(self) -> dict[str, object]:
        """What runs in the 2D stage (`/v1/info`)."""
        d = self.detector
        return {
            "person_detector": {"name": d.person_detector.name, **_fields(getattr(d.person_detector, "config", None))},
            "keypoints": {
                "name": d.keypoint_model.name, "layout": d.keypoint_model.layout,
                **_fields(getattr(d.keypoint_model, "config", None)),
            },
            "tracker": {"name": self.config.tracker, "max_gap_s": self.config.track_max_gap_s},
            "schedule": _fields(d.config),
        }  # fmt: skip


def _fields(config: object) -> dict[str, object]:
    return dict(vars(config)) if config is not None else {}
