"""Clip jobs: rows in a `JobStore`, files in a `ResultStore` (`hotpose.service.stores`), run by workers.

A job exists only with its whole upload: the upload is received into the server's local staging
folder (`<data_dir>/uploads/<random>.part`), handed to the result store, and only then is the job's
row written (`Jobs.create`). Workers (`JobRunner`: threads of the server, or of a Ray ClipWorker
replica) take jobs from the store's queue (`JobStore.claim`) and renew their lease while they run one;
a job whose worker was killed is taken again once its lease ends (a shared store) or when its server
starts again (the single-server SQLite store: `JobRunner.recover`), and recomputed from its stored
upload; if its upload is gone it is marked failed with the reason. A failed job keeps the frames it
had lifted, except when the disk was full. Finished jobs older than the retention are deleted with
their files.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hotpose.service import metrics
from hotpose.service.backends import BackendError
from hotpose.service.pipeline import PosePipeline, iter_poses, result_meta
from hotpose.service.placing import CameraRequest
from hotpose.service.settings import Settings
from hotpose.service.stores import open_job_store, open_result_store
from hotpose.service.stores.base import STATUSES, Job, JobStore, ResultStore
from hotpose.service.video import VideoError, iter_frames, probe

log = logging.getLogger(__name__)

CAMERA_FILE = "camera.json"  # the upload's focal_px / fov_deg / person_height_m
META_FILE = "meta.json"  # the result's head (`hotpose_client.schema.ResultHead`)
PROGRESS_EVERY_S = 0.5  # how often a running job's progress is written (and its lease renewed)
LOST_UPLOAD = "the upload was lost when the server restarted"
TOO_MANY_ATTEMPTS = "the job was started {n} times and its worker stopped each time (killed, or out of memory?)"
STALE_UPLOAD_S = 3600.0  # an upload in the staging folder untouched this long was left by a killed server

__all__ = ["STATUSES", "ClipLimits", "Job", "JobRunner", "Jobs"]


class Jobs:
    """The clip jobs of a server: their rows (`table`) and files (`files`), and the local staging
    folder where uploads are received. Listeners hear of jobs created and deleted here (a local
    `JobRunner` wakes at once; remote workers find new jobs by polling the table)."""

    def __init__(self, table: JobStore, files: ResultStore, staging: Path) -> None:
        self.table = table
        self.files = files
        self.staging = staging
        staging.mkdir(parents=True, exist_ok=True)
        self.on_create: list[Callable[[str], None]] = []
        self.on_delete: list[Callable[[str], None]] = []

    @classmethod
    def open(cls, data_dir: Path, job_db: str | None = None, results: str | None = None, shared: bool = False) -> Jobs:
        """The stores these settings name (`HOTPOSE_JOB_DB`, `HOTPOSE_RESULTS`; unset: SQLite and a directory
        under `data_dir`), uploads staged in `data_dir/uploads`."""
        return cls(open_job_store(job_db, data_dir, shared), open_result_store(results, data_dir), data_dir / "uploads")

    def staging_file(self) -> Path:
        """Where an upload is received before it becomes a job (`create(upload=...)`)."""
        return self.staging / f"{uuid.uuid4().hex}.part"

    def create(
        self, filename: str, owner: str | None = None, upload: Path | None = None, camera: CameraRequest | None = None
    ) -> Job:
        """A queued job; `upload`, a whole received file, becomes its input (`input<suffix>`) and `camera`
        is stored beside it before the job's row exists, so a job is never seen half-stored."""
        now = time.time()
        job = Job(uuid.uuid4().hex, "queued", filename, now, now, owner=owner)
        try:
            if camera is not None:
                self.files.put_json(job.job_id, CAMERA_FILE, asdict(camera))
            if upload is not None:
                suffix = Path(filename).suffix.lower()
                self.files.put_input(job.job_id, upload, suffix if len(suffix) <= 6 else "")
            self.table.create(job)
        except BaseException:
            self.files.delete(job.job_id)
            raise
        for listener in self.on_create:
            listener(job.job_id)
        return job

    def get(self, job_id: str) -> Job | None:
        return self.table.get(job_id)

    def with_status(self, *statuses: str, owner: str | None = None) -> list[str]:
        return self.table.with_status(*statuses, owner=owner)

    def delete(self, job_id: str) -> None:
        """The job's row, then its files (a worker running it stops at its next progress update)."""
        for listener in self.on_delete:
            listener(job_id)
        self.table.delete(job_id)
        self.files.delete(job_id)

    def meta(self, job_id: str) -> dict[str, object] | None:
        return self.files.get_json(job_id, META_FILE)

    def camera(self, job_id: str) -> CameraRequest:
        stored = self.files.get_json(job_id, CAMERA_FILE)
        return CameraRequest(**stored) if stored else CameraRequest()

    def sweep(self) -> int:
        """Delete what a killed server left half-written: uploads being received (of a shared store: those
        untouched for `STALE_UPLOAD_S`) and, for a store of this server's own, job files without a row.
        Call before serving; returns how many."""
        stale = list(self.staging.iterdir())
        if self.table.shared:  # other servers on this machine may be receiving uploads here now
            stale = [p for p in stale if p.stat().st_mtime < time.time() - STALE_UPLOAD_S]
        for path in stale:
            path.unlink(missing_ok=True)
        orphans: set[str] = set()
        if not self.table.shared and not self.files.shared:  # others may be storing an upload right now
            orphans = self.files.ids() - self.table.ids()
            for job_id in orphans:
                self.files.delete(job_id)
        return len(stale) + len(orphans)

    def expire(self, retention_s: float) -> int:
        """Delete finished jobs last updated more than retention_s ago; returns how many."""
        ids = self.table.finished_before(time.time() - retention_s)
        for job_id in ids:
            self.delete(job_id)
        return len(ids)

    def close(self) -> None:
        self.table.close()
        self.files.close()


@dataclass(frozen=True)
class ClipLimits:
    max_frames: int
    max_seconds: float
    max_pixels: int


@dataclass(frozen=True)
class RunnerConfig:
    """A runner's workers and their leases (from `Settings`: `from_settings`)."""

    workers: int  # jobs run at once by this runner
    lease_s: float  # a job whose worker renews nothing for this long is taken again
    poll_s: float  # how often an idle worker looks for queued jobs created elsewhere
    max_attempts: int  # a job taken more often than this fails (its workers keep dying on it)

    @classmethod
    def from_settings(cls, s: Settings, workers: int | None = None) -> RunnerConfig:
        return cls(s.job_workers if workers is None else workers, s.job_lease_s, s.job_poll_s, s.job_max_attempts)


class JobRunner:
    """Worker threads that claim queued jobs from the store and run each through a fresh pipeline."""

    def __init__(
        self,
        jobs: Jobs,
        make_pipeline: Callable[[CameraRequest], PosePipeline],
        limits: ClipLimits,
        config: RunnerConfig,
    ) -> None:
        self.jobs = jobs
        self.make_pipeline = make_pipeline
        self.limits = limits
        self.config = config
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._wake = threading.Condition()
        self._pending = 0  # wake-ups not yet taken by a worker
        self._running: set[str] = set()  # ids of the jobs this runner's threads run now
        self._cancelled: set[str] = set()  # of those, the ones deleted meanwhile
        self._inputs: dict[str, Path] = {}  # job id -> the local file of its upload, while it runs
        self._stopping = threading.Event()
        jobs.on_create.append(self.submit)
        jobs.on_delete.append(self.cancel)
        self._threads = [
            threading.Thread(target=self._work, args=(f"{self.name}:{i}",), name=f"job-{i}", daemon=True)
            for i in range(config.workers)
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def recover(self) -> list[str]:
        """Before `start`: a single server's store (SQLite) gets back the jobs this server was running when it
        stopped, and what it left half-written is deleted (`Jobs.sweep`). Jobs whose upload is gone fail.
        A shared store recovers by leases instead (a killed worker's job is taken again when its lease ends)."""
        swept = self.jobs.sweep()
        if swept:
            log.info("deleted %d half-written uploads or job folders left by the previous server", swept)
        if self.jobs.table.shared:
            return []
        self.jobs.table.requeue_all_running()
        resumed = []
        for job_id in self.jobs.table.with_status("queued"):
            if not self.jobs.files.has_input(job_id):
                self.jobs.table.update(job_id, status="failed", error=LOST_UPLOAD)
                continue
            log.info("job %s: queued again after a restart", job_id)
            resumed.append(job_id)
        return resumed

    def alive(self) -> bool:
        """Every worker thread is running (after `start`, before `close`)."""
        return all(t.is_alive() for t in self._threads)

    def submit(self, job_id: str) -> None:
        """A job was queued: wake a worker (it claims from the store, so any queued job may be the one taken)."""
        with self._wake:
            self._pending += 1
            self._wake.notify()

    def cancel(self, job_id: str) -> None:
        """Stop a job being deleted at its next frame, if this runner runs it (another server's worker stops
        at its next renewal)."""
        if job_id in self._running:
            self._cancelled.add(job_id)

    def close(self) -> None:
        """Stop at the next frame: the running jobs go back to the queue, to be taken by another worker
        or at the next start."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout=30)

    def _work(self, worker: str) -> None:
        while not self._stopping.is_set():
            try:
                job = self.jobs.table.claim(worker, self.config.lease_s)
            except Exception:  # the store is unreachable for a moment: try again after a pause
                log.exception("could not claim a job")
                job = None
            if job is None:
                with self._wake:
                    if self._pending == 0 and not self._stopping.is_set():
                        self._wake.wait(self.config.poll_s)
                    self._pending = max(self._pending - 1, 0)
                continue
            self._running.add(job.job_id)
            try:
                self._process(job, worker)
            except Exception:  # the bookkeeping itself failed (a full disk): the next job still runs
                log.exception("job %s: could not record its end", job.job_id)
            finally:
                self._running.discard(job.job_id)
                self._cancelled.discard(job.job_id)
                self._inputs.pop(job.job_id, None)

    def _process(self, job: Job, worker: str) -> None:
        """Run one job and record how it ended."""
        job_id = job.job_id
        if job.attempts > self.config.max_attempts:
            log.error("job %s: taken %d times, its worker stopped each time; failed", job_id, job.attempts - 1)
            self._fail(job, worker, TOO_MANY_ATTEMPTS.format(n=job.attempts - 1))
            return
        try:
            self._run(job, worker)
            metrics.JOBS.labels("done").inc()
        except _CancelledError:
            log.info("job %s: cancelled, or taken by another worker", job_id)
        except (_StoppingError, BackendError) as e:  # not the job's fault: another worker (or this one) runs it again
            self.jobs.table.release(job_id, worker)
            why = "the server is stopping" if isinstance(e, _StoppingError) else str(e)
            log.warning("job %s: queued again: %s", job_id, why)
        except (VideoError, ClipLimitError) as e:
            log.info("job %s: failed: %s", job_id, e)
            self._fail(job, worker, self._public(job, str(e)))
        except Exception as e:
            if disk_full(e):
                log.error("job %s: failed: the disk is full (%s)", job_id, e)
                self._fail(job, worker, DISK_FULL, drop_frames=True)  # give the space back
            else:
                log.exception("job %s: failed", job_id)
                self._fail(job, worker, self._public(job, f"internal error: {type(e).__name__}: {e}"))

    def _fail(self, job: Job, worker: str, error: str, drop_frames: bool = False) -> None:
        """Record the failure, then drop its files, only while the job is still this worker's."""
        if not self.jobs.table.update(job.job_id, worker=worker, status="failed", error=error):
            return  # deleted, or another worker has it now: its files are not ours to drop
        metrics.JOBS.labels("failed").inc()
        self._drop_input(job.job_id)
        if drop_frames:
            self.jobs.files.drop_frames(job.job_id)

    def _public(self, job: Job, message: str) -> str:
        """An error as the client may read it: the server's path of the upload says the uploaded file's name."""
        path = self._inputs.get(job.job_id)
        if path is not None:
            message = message.replace(str(path), job.filename)
        return re.sub(r"\S*" + job.job_id, "<data>", message)

    def _drop_input(self, job_id: str) -> None:
        """A finished job's upload (up to `max_upload_mb`) and its camera request (now in meta.json) are not
        needed again: only its results are kept."""
        self.jobs.files.drop_input(job_id)
        self.jobs.files.delete_json(job_id, CAMERA_FILE)

    def _run(self, job: Job, worker: str) -> None:
        job_id = job.job_id
        files = self.jobs.files
        try:
            with files.open_input(job_id) as path:
                self._inputs[job_id] = path
                self._run_on(job, worker, path)
        except FileNotFoundError as e:
            if files.has_input(job_id):
                raise
            raise VideoError("the upload is missing") from e
        self._drop_input(job_id)

    def _run_on(self, job: Job, worker: str, path: Path) -> None:
        job_id, table, lim = job.job_id, self.jobs.table, self.limits
        info = probe(path)
        if info.width * info.height > lim.max_pixels:
            raise ClipLimitError(f"frames of {info.width}x{info.height} exceed the limit of {lim.max_pixels} pixels")
        if info.frames > lim.max_frames:
            raise ClipLimitError(f"the clip has {info.frames} frames; the limit is {lim.max_frames}")
        if info.fps > 0 and info.frames / info.fps > lim.max_seconds:
            raise ClipLimitError(f"the clip lasts {info.frames / info.fps:.0f} s; the limit is {lim.max_seconds:.0f} s")
        camera = self.jobs.camera(job_id)
        self.jobs.files.put_json(
            job_id, META_FILE, result_meta(info.fps, info.width, info.height, camera.camera(info.width, info.height))
        )
        total = max(info.frames, 1)
        lease = self.config.lease_s

        def renew(**fields: object) -> None:
            """Progress, and the lease renewed; stops the job once it is no longer this worker's."""
            if job_id in self._cancelled or not table.update(job_id, worker=worker, lease_s=lease, **fields):
                raise _CancelledError  # deleted, or its lease ran out and another worker has it

        renew(frames_total=info.frames, progress=0.0, frames_done=0, error=None)
        pipeline = self.make_pipeline(camera)
        done = 0
        last_update = time.monotonic()

        def frames() -> Iterator[tuple[int, float, np.ndarray]]:
            nonlocal last_update
            for index, t, frame in iter_frames(path):
                if self._stopping.is_set():
                    raise _StoppingError
                if index >= lim.max_frames:
                    raise ClipLimitError(f"the clip has more than {lim.max_frames} frames")
                if t > lim.max_seconds:
                    raise ClipLimitError(f"the clip lasts more than {lim.max_seconds:.0f} s")
                now = time.monotonic()  # renewed per frame read, not per frame out: a clip's first
                if now - last_update > PROGRESS_EVERY_S or job_id in self._cancelled:  # window holds 243
                    last_update = now
                    renew(frames_done=done, progress=min(done / total, 0.99))
                yield index, t, frame

        out = self.jobs.files.frames_writer(job_id, job.attempts)
        try:
            for fp in iter_poses(frames(), pipeline):
                out.write(fp.to_json())  # one `hotpose_client.schema.Frame`
                done += 1
                metrics.FRAMES.labels("clip").inc()
            renew(frames_done=done)  # still this worker's: only then is its attempt the result
            out.commit()
        finally:
            out.close()
        if not table.update(job_id, worker=worker, status="done", frames_done=done, frames_total=done, progress=1.0):
            raise _CancelledError
        log.info("job %s: done, %d frames", job_id, done)


DISK_FULL = "the server's disk is full: the results could not be written; try again later"


def disk_full(e: BaseException) -> bool:
    """A write failed for want of space: ENOSPC or a quota (EDQUOT), or SQLite's 'database or disk is full'."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(e, sqlite3.OperationalError) and "full" in str(e)


class ClipLimitError(ValueError):
    """The clip exceeds a configured limit."""


class _CancelledError(Exception):
    pass


class _StoppingError(Exception):
    pass
