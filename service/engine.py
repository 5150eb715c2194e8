"""The models of a running service as its routes, live sessions and clip workers use them: a 2D stage
and an optional lifter (`hotpose.service.backends`), run in this process or by Ray Serve.

Locally one detector scheduler batches the next frame of every clip job and live stream (each with
its own tracking state) and one lifter scheduler batches the windows of every person of every stream.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hotpose.models import resolve_weights
from hotpose.models.kind import SEQ2SEQ, LifterKind
from hotpose.service import metrics
from hotpose.service.backends import (
    DetectorBackend,
    DetectorConfig,
    LifterBackend,
    LifterConfig,
    LocalDetector,
    LocalLifter,
    StreamDetect,
)
from hotpose.service.lifting import LiftPolicy, min_delay
from hotpose.service.pipeline import PosePipeline
from hotpose.service.placing import CameraRequest
from hotpose.service.scheduler import BatchConfig
from hotpose.service.settings import Settings
from hotpose.service.smoothing import OneEuroConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    """What the engine runs; built from `Settings` (the one source of defaults: see its fields)."""

    lifter: str
    lifter_weights: Path | None  # None: the weights shipped with the package
    device: str | None  # None: CUDA when present
    lifter_batch: BatchConfig
    flip: bool  # test-time flip averaging in the lifter (2x lifter cost)
    threads: int | None  # torch CPU threads (None: torch's default)
    detector: DetectorConfig  # the 2D stage

    @classmethod
    def from_settings(cls, s: Settings) -> EngineConfig:
        detector = DetectorConfig(
            person_detector=s.person_detector, keypoints=s.keypoints, keypoints_weights=s.keypoints_weights,
            tracker=s.tracker, redetect_every=s.redetect_every, lost_redetect_every=s.lost_redetect_every,
            idle_redetect_every=s.idle_redetect_every, track_max_gap_s=s.track_max_gap_s, home=s.home,
            device=s.device, batch=BatchConfig(s.detector_max_batch, s.detector_max_wait_ms),
        )  # fmt: skip
        return cls(
            lifter=s.lifter, lifter_weights=s.lifter_weights, device=s.device, flip=s.flip, threads=s.threads,
            lifter_batch=BatchConfig(s.lifter_max_batch, s.lifter_max_wait_ms), detector=detector,
        )  # fmt: skip

    def lifter_config(self) -> LifterConfig | None:
        """The lifter to load, or None (with a warning) when there are no trained weights for it: 2D only."""
        weights = resolve_weights(self.lifter, self.lifter_weights)
        if weights is None:
            log.warning("no trained weights for lifter %r: 2D only (set HOTPOSE_LIFTER_WEIGHTS)", self.lifter)
            return None
        return LifterConfig(self.lifter, weights, self.device, self.lifter_batch)


def local_backends(config: EngineConfig) -> tuple[DetectorBackend, LifterBackend | None]:
    """The 2D stage and the lifter in this process (not started)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    lifter = config.lifter_config()
    return LocalDetector(config.detector), LocalLifter(lifter) if lifter is not None else None


class Engine:
    """A 2D stage and an optional lifter behind one interface (`Engine(config)` loads both here)."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        detector: DetectorBackend | None = None,
        lifter: LifterBackend | None = None,
        flip: bool = True,
        track_max_gap_s: float = 1.0,
    ) -> None:
        if config is not None:  # this process's own models, loaded now
            detector, lifter = local_backends(config)
            flip, track_max_gap_s = config.flip, config.detector.track_max_gap_s
            detector.start()
            if lifter is not None:
                lifter.start()
        assert detector is not None, "give a config or a detector backend"
        self.detector = detector
        self.lifter = lifter
        self.flip = flip
        self.track_max_gap_s = track_max_gap_s

    @property
    def device(self) -> str:
        return self.detector.device

    @property
    def window(self) -> int:
        """The lifter's frames per window (0 without a lifter)."""
        return self.lifter.info.window if self.lifter is not None else 0

    @property
    def kind(self) -> LifterKind:
        return self.lifter.info.kind if self.lifter is not None else SEQ2SEQ

    @property
    def min_delay(self) -> int:
        """The future context the lifter needs (seq2frame), in frames."""
        return min_delay(self.window, self.kind)

    def close(self) -> None:
        self.detector.close()
        if self.lifter is not None:
            self.lifter.close()

    def detect_fn(self) -> StreamDetect:
        """A detect function bound to a new stream's tracking state."""
        return self.detector.new_stream()

    def lift(self, windows: np.ndarray, flip: bool | None = None) -> np.ndarray:
        assert self.lifter is not None, "no lifter"
        t0 = time.perf_counter()
        out = self.lifter.lift(windows, self.flip if flip is None else flip)
        metrics.STAGE_SECONDS.labels("lift_wait").observe(time.perf_counter() - t0)
        return out

    def pipeline(
        self,
        policy: LiftPolicy | None = None,
        smoothing: OneEuroConfig | None = None,
        flip: bool | None = None,
        camera: CameraRequest | None = None,
    ) -> PosePipeline:
        """A pipeline for one clip or stream (default policy: offline clip quality; flip: the engine's;
        camera: what the client says of its camera, for placing people)."""
        lift = (lambda w: self.lift(w, flip)) if self.lifter is not None else None
        window = self.window or 1
        policy = policy or LiftPolicy.clip(window, self.track_max_gap_s)
        detect = self.detect_fn()
        return PosePipeline(detect, lift, window, policy, smoothing, camera, self.kind, detect_encoded=detect)

    def describe_2d(self) -> dict[str, object]:
        """What runs in the 2D stage (`/v1/info`)."""
        return self.detector.describe()
