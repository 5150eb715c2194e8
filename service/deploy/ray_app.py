"""hotpose on Ray Serve: the same FastAPI app and clip workers as the single-process server, with the
models in their own deployments.

- `Ingress`: the FastAPI app (`hotpose.service.app.build_app`) over handles to the model deployments.
  A live WebSocket session, with its per-person windows, stays on the Ingress replica holding its
  socket; clip uploads are stored and queued there (no clip runs on an Ingress).
- `Detector`: the 2D stage; `@serve.batch` gathers the next frame of every stream and clip.
- `Lifter`: the lifter; `@serve.batch` gathers the windows of every person of every stream.
- `ClipWorker`: takes queued clip jobs from the job store (`JobStore.claim`: a killed worker's job is
  taken again when its lease ends) and runs them through the same Detector and Lifter handles.

Every replica reads its settings from the `HOTPOSE_*` environment (`runtime_env.env_vars` of the Serve
config, `serve.yaml`), as the single-process server does. Jobs and results must be where every
replica can reach them: on one machine the default SQLite file and directory serve (SQLite's write
lock keeps claims exclusive); on several, `HOTPOSE_JOB_DB=postgresql://...` and
`HOTPOSE_RESULTS=s3://...`.

Run: `hotpose serve --ray` (a local cluster, or the one `RAY_ADDRESS` names), or
`serve run service/deploy/serve.yaml` / `serve deploy service/deploy/serve.yaml`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import numpy as np
from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from hotpose.models import Lifter as LifterModel
from hotpose.models.detector import Person
from hotpose.models.detector.topdown import StreamState
from hotpose.service.app import build_app
from hotpose.service.backends import (
    LifterInfo,
    create_2d_stage,
    decode_rgb,
    describe_2d,
    lift_batch,
    load_lifter,
)
from hotpose.service.deploy.ray_backends import RayDetector, RayLifter
from hotpose.service.engine import Engine, EngineConfig
from hotpose.service.jobs import ClipLimits, JobRunner, Jobs, RunnerConfig
from hotpose.service.settings import Settings
from hotpose.service.stores import open_job_store, open_result_store

log = logging.getLogger(__name__)


def _model_settings() -> tuple[Settings, EngineConfig]:
    """The replica's settings and engine config; torch threads and the GPU memory cap applied."""
    import torch

    s = Settings()
    config = EngineConfig.from_settings(s)
    if config.threads:
        torch.set_num_threads(config.threads)
    if s.gpu_memory_fraction is not None and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(s.gpu_memory_fraction)
    return s, config


@serve.deployment(max_ongoing_requests=32, ray_actor_options={"num_cpus": 0.5})
class Detector:
    """The 2D stage: (encoded frame, the stream's tracking state, time) -> (people, the updated state)."""

    def __init__(self) -> None:
        from hotpose.models.device import pick_device

        s, config = _model_settings()
        self.config = config.detector
        self._device = str(pick_device(config.device))
        self.stage = create_2d_stage(self.config, self._device)
        self.detect.set_max_batch_size(s.detector_max_batch)  # type: ignore[attr-defined]  # added by @serve.batch
        self.detect.set_batch_wait_timeout_s(s.detector_max_wait_ms / 1000)  # type: ignore[attr-defined]  # added by @serve.batch
        self.stage.process_image(np.zeros((256, 256, 3), np.uint8))  # warm-up

    def device(self) -> str:
        return self._device

    def describe(self) -> dict[str, object]:
        return describe_2d(self.stage, self.config)

    def new_stream(self) -> StreamState:
        return self.stage.new_stream()

    def pid(self) -> int:
        return os.getpid()

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.002)
    async def detect(self, items: list[tuple[bytes, StreamState, float]]) -> list[tuple[list[Person], StreamState]]:
        return await asyncio.to_thread(self._detect, items)

    def _detect(self, items: list[tuple[bytes, StreamState, float]]) -> list[tuple[list[Person], StreamState]]:
        frames = [decode_rgb(data) for data, _, _ in items]
        people = self.stage.process_batch([(f, st) for f, (_, st, _) in zip(frames, items, strict=True)],
                                          [t for *_, t in items])  # fmt: skip
        return [(p, st) for p, (_, st, _) in zip(people, items, strict=True)]


@serve.deployment(max_ongoing_requests=256, ray_actor_options={"num_cpus": 0.5})
class Lifter:
    """The lifter: (normalised 2D window [F, 17, C], flip) -> root-relative 3D. None of it without weights."""

    def __init__(self) -> None:
        from hotpose.models.device import pick_device

        s, config = _model_settings()
        lifter = config.lifter_config()
        self._device = str(pick_device(config.device)) if lifter is not None else "none"
        # loaded and warmed up here; Serve batches the calls (no scheduler of our own)
        self.model: LifterModel | None = None
        self._info: LifterInfo | None = None
        if lifter is not None:
            self.model, self._info = load_lifter(lifter, self._device)
        self.lift.set_max_batch_size(s.lifter_max_batch)  # type: ignore[attr-defined]  # added by @serve.batch
        self.lift.set_batch_wait_timeout_s(s.lifter_max_wait_ms / 1000)  # type: ignore[attr-defined]  # added by @serve.batch

    def info(self) -> LifterInfo | None:
        return self._info

    def device(self) -> str:
        return self._device

    def pid(self) -> int:
        return os.getpid()

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def lift(self, items: list[tuple[np.ndarray, bool]]) -> list[np.ndarray]:
        assert self.model is not None, "no lifter weights"
        return await asyncio.to_thread(lift_batch, self.model, items)


async def _engine(detector: DeploymentHandle[Any], lifter: DeploymentHandle[Any], s: Settings) -> Engine:
    info: LifterInfo | None = await lifter.info.remote()
    det, lif = RayDetector(detector), RayLifter(lifter, info) if info is not None else None
    await asyncio.to_thread(det.start)
    if lif is not None:
        await asyncio.to_thread(lif.start)
    return Engine(detector=det, lifter=lif, flip=s.flip, track_max_gap_s=s.track_max_gap_s)


@serve.deployment(max_ongoing_requests=4, ray_actor_options={"num_cpus": 0.1})
class ClipWorker:
    """`HOTPOSE_JOB_WORKERS` threads taking queued clip jobs from the job store."""

    async def __init__(self, detector: DeploymentHandle[Any], lifter: DeploymentHandle[Any]) -> None:  # type: ignore[misc]
        s = Settings()
        engine = await _engine(detector, lifter, s)
        self.jobs = Jobs.open(s.data_dir, s.job_db, s.results, shared=True)
        limits = ClipLimits(s.max_clip_frames, s.max_clip_seconds, s.max_frame_pixels)
        self.runner = JobRunner(self.jobs, lambda camera: engine.pipeline(camera=camera), limits,
                                RunnerConfig.from_settings(s))  # fmt: skip
        self.runner.start()
        log.info("clip worker %s: %d threads on %s", self.runner.name, s.job_workers, self.jobs.table.url)

    def pid(self) -> int:
        return os.getpid()

    def check_health(self) -> None:
        if not self.runner.alive():
            raise RuntimeError("a clip worker thread has stopped")

    def __del__(self) -> None:
        runner = getattr(self, "runner", None)
        if runner is not None:
            runner.close()  # its running jobs go back to the queue


@serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.1})
@serve.ingress()
class Ingress:
    """The FastAPI app over the model deployments; the clip workers run elsewhere (`workers=0`)."""

    async def __init__(  # type: ignore[misc]  # Serve awaits an async constructor
        self, detector: DeploymentHandle[Any], lifter: DeploymentHandle[Any], clip_workers: DeploymentHandle[Any]
    ) -> None:
        self.settings = Settings()
        self.detector, self.lifter, self.clip_workers = detector, lifter, clip_workers
        self.lifter_info: LifterInfo | None = await lifter.info.remote()

    def __serve_build_asgi_app__(self) -> FastAPI:
        s = self.settings
        detector = RayDetector(self.detector)
        lifter = RayLifter(self.lifter, self.lifter_info) if self.lifter_info is not None else None
        jobs, results = open_job_store(s.job_db, s.data_dir, shared=True), open_result_store(s.results, s.data_dir)
        return build_app(s, detector=detector, lifter=lifter, jobs=jobs, results=results, workers=0)


DEPLOYMENTS: dict[str, Any] = {"Ingress": Ingress, "Detector": Detector, "Lifter": Lifter, "ClipWorker": ClipWorker}


def build(options: dict[str, dict[str, Any]] | None = None) -> Any:
    """The Serve application; `options`: per deployment name, `Deployment.options` keywords (replicas,
    autoscaling, CPUs and GPUs, max_ongoing_requests), as the `deployments` of a Serve config give them
    (`serve run serve.yaml` applies that file's itself)."""
    options = options or {}
    unknown = set(options) - set(DEPLOYMENTS)
    if unknown:
        raise ValueError(f"unknown deployments {sorted(unknown)}; hotpose has {', '.join(DEPLOYMENTS)}")
    dep = {name: d.options(**options.get(name, {})) for name, d in DEPLOYMENTS.items()}
    detector = dep["Detector"].bind()
    lifter = dep["Lifter"].bind()
    return dep["Ingress"].bind(detector, lifter, dep["ClipWorker"].bind(detector, lifter))


app = build()
