"""Clip jobs: state in SQLite, files under the data directory, processed by worker threads.

Layout of `data_dir`: `jobs.sqlite3`, `uploads/` (uploads being received, `<random>.part`) and
`jobs/<id>/` holding the upload (`input<suffix>`, deleted once the job is done or has failed), the
frames as NDJSON while they are lifted (`frames.ndjson`, one `FramePoses` per line, in order; a
failed job keeps the frames it had lifted, except when the disk was full) and `meta.json` (fps,
width, height, joint names).

A job exists only with its whole upload: the upload is received into `uploads/`, then moved into
its folder, and only then is the job's row written (`JobStore.create`). A job that was queued or
running when the server stopped (or was killed) is queued again at start-up and recomputed from
its stored upload; if its upload is gone it is marked failed with the reason. What a killed server
left half-written (an upload being received, a folder without a job) is deleted at start-up.
Finished jobs older than the retention are deleted with their files.
"""

from __future__ import annotations

import errno
import json
import logging
import queue
import re
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from hotpose.service import metrics
from hotpose.service.pipeline import FramePoses, PosePipeline, iter_poses, result_meta
from hotpose.service.placing import CameraRequest
from hotpose.service.video import VideoError, iter_frames, probe

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "done", "failed")
CAMERA_FILE = "camera.json"  # the upload's focal_px / fov_deg / person_height_m


@dataclass
class Job:
    job_id: str
    status: str
    filename: str
    created: float
    updated: float
    progress: float = 0.0
    frames_done: int = 0
    frames_total: int = 0
    error: str | None = None
    owner: str | None = None  # who submitted it (`deps.client_id`: a hash, never the key), for per-key limits

    def public(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id, "status": self.status, "progress": round(self.progress, 4),
            "frames_done": self.frames_done, "frames_total": self.frames_total, "error": self.error,
            "filename": self.filename, "created": self.created,
        }  # fmt: skip


COLUMNS = "job_id, status, filename, created, updated, progress, frames_done, frames_total, error, owner"


class JobStore:
    """Thread-safe job table in SQLite."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.uploads = data_dir / "uploads"
        self.uploads.mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(data_dir / "jobs.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, status TEXT NOT NULL, filename TEXT,"
            " created REAL, updated REAL, progress REAL, frames_done INTEGER, frames_total INTEGER, error TEXT,"
            " owner TEXT)"
        )
        if "owner" not in {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}:  # an older data dir
            self._db.execute("ALTER TABLE jobs ADD COLUMN owner TEXT")

    def dir(self, job_id: str) -> Path:
        return self.root / job_id

    def staging_file(self) -> Path:
        """Where an upload is received before it becomes a job (`create(upload=...)`)."""
        return self.uploads / f"{uuid.uuid4().hex}.part"

    def create(
        self, filename: str, owner: str | None = None, upload: Path | None = None, camera: CameraRequest | None = None
    ) -> Job:
        """A queued job; `upload`, a whole received file, is moved in as its input (`input<suffix>`) and
        `camera` written beside it before the job's row exists, so a job is never seen half-stored."""
        now = time.time()
        job = Job(uuid.uuid4().hex, "queued", filename, now, now, owner=owner)
        d = self.dir(job.job_id)
        d.mkdir(parents=True)
        try:
            if camera is not None:
                write_camera_request(self, job.job_id, camera)
            if upload is not None:
                suffix = Path(filename).suffix.lower()
                upload.rename(d / f"input{suffix if len(suffix) <= 6 else ''}")
            with self._lock:
                self._db.execute(
                    "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, 0, 0, 0, NULL, ?)",
                    (job.job_id, job.status, filename, now, now, owner),
                )
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute(f"SELECT {COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()  # noqa: S608
        return Job(*row) if row else None

    def update(self, job_id: str, **fields: Any) -> None:
        fields["updated"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {cols} WHERE job_id = ?", (*fields.values(), job_id))  # noqa: S608

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
        shutil.rmtree(self.dir(job_id), ignore_errors=True)

    def with_status(self, *statuses: str, owner: str | None = None) -> list[str]:
        """Ids of the jobs in these statuses, oldest first; only `owner`'s when given."""
        marks = ",".join("?" * len(statuses))
        where, args = f"status IN ({marks})", list(statuses)
        if owner is not None:
            where, args = where + " AND owner = ?", [*args, owner]
        with self._lock:
            rows = self._db.execute(
                f"SELECT job_id FROM jobs WHERE {where} ORDER BY created",  # noqa: S608 - only "?"s
                args,
            ).fetchall()
        return [r[0] for r in rows]

    def sweep(self) -> int:
        """Delete what a killed server left half-written: uploads being received, job folders without a row.
        Call before serving (a running server's uploads are in `uploads/`); returns how many."""
        with self._lock:
            known = {r[0] for r in self._db.execute("SELECT job_id FROM jobs")}
        stale = [p for p in self.uploads.iterdir()] + [d for d in self.root.iterdir() if d.name not in known]
        for path in stale:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return len(stale)

    def expire(self, retention_s: float) -> int:
        """Delete finished jobs last updated more than retention_s ago; returns how many."""
        cutoff = time.time() - retention_s
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id FROM jobs WHERE status IN ('done', 'failed') AND updated < ?", (cutoff,)
            ).fetchall()
        for (job_id,) in rows:
            self.delete(job_id)
        return len(rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def input_path(store: JobStore, job_id: str) -> Path | None:
    found = sorted(store.dir(job_id).glob("input*"))
    return found[0] if found else None


@dataclass(frozen=True)
class ClipLimits:
    max_frames: int
    max_seconds: float
    max_pixels: int


class JobRunner:
    """Worker threads that take queued jobs and run them through a fresh pipeline each."""

    def __init__(
        self,
        store: JobStore,
        make_pipeline: Callable[[CameraRequest], PosePipeline],
        limits: ClipLimits,
        workers: int,
    ) -> None:
        self.store = store
        self.make_pipeline = make_pipeline
        self.limits = limits
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._cancelled: set[str] = set()
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._work, name=f"job-{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    def recover(self) -> list[str]:
        """Queue the jobs a previous server left queued or running; fail those whose upload is gone.
        What it left half-written is deleted first (`JobStore.sweep`)."""
        swept = self.store.sweep()
        if swept:
            log.info("deleted %d half-written uploads or job folders left by the previous server", swept)
        resumed = []
        for job_id in self.store.with_status("queued", "running"):
            if input_path(self.store, job_id) is None:
                self.store.update(job_id, status="failed", error="the upload was lost when the server restarted")
                continue
            self.store.update(job_id, status="queued", progress=0.0, frames_done=0)
            log.info("job %s: queued again after a restart", job_id)
            self.submit(job_id)
            resumed.append(job_id)
        return resumed

    def submit(self, job_id: str) -> None:
        self._queue.put(job_id)

    def cancel(self, job_id: str) -> None:
        """Stop a queued or running job (its id is forgotten once a worker has seen it)."""
        self._cancelled.add(job_id)

    def close(self) -> None:
        """Stop at the next frame: the running and queued jobs keep their status and run again at the next start."""
        self._stopping.set()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=30)

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            if self._stopping.is_set():
                continue  # left queued: recover() takes it at the next start
            try:
                if job_id in self._cancelled or self.store.get(job_id) is None:
                    continue
                self._process(job_id)
            except Exception:  # the bookkeeping itself failed (a full disk): the next job still runs
                log.exception("job %s: could not record its end", job_id)
            finally:
                self._cancelled.discard(job_id)

    def _process(self, job_id: str) -> None:
        """Run one job and record how it ended."""
        try:
            self._run(job_id)
            self._drop_input(job_id)
            metrics.JOBS.labels("done").inc()
        except _CancelledError:
            log.info("job %s: cancelled", job_id)
        except _StoppingError:
            log.info("job %s: interrupted by the server stopping; it runs again at the next start", job_id)
        except (VideoError, ClipLimitError) as e:
            log.info("job %s: failed: %s", job_id, e)
            self._fail(job_id, self._public(job_id, str(e)))
        except Exception as e:
            if disk_full(e):
                log.error("job %s: failed: the disk is full (%s)", job_id, e)
                frames_file(self.store, job_id).unlink(missing_ok=True)  # give the space back
                self._fail(job_id, DISK_FULL)
            else:
                log.exception("job %s: failed", job_id)
                self._fail(job_id, self._public(job_id, f"internal error: {type(e).__name__}: {e}"))

    def _fail(self, job_id: str, error: str) -> None:
        self._drop_input(job_id)
        self.store.update(job_id, status="failed", error=error)
        metrics.JOBS.labels("failed").inc()

    def _public(self, job_id: str, message: str) -> str:
        """An error as the client may read it: the server's paths of the upload say the uploaded file's name."""
        job = self.store.get(job_id)
        name = job.filename if job is not None else "the upload"
        message = re.sub(re.escape(str(self.store.dir(job_id))) + r"/input[^\s:]*", lambda _: name, message)
        return message.replace(str(self.store.root), "<data>")

    def _drop_input(self, job_id: str) -> None:
        """A finished job's upload (up to `max_upload_mb`) and its camera request (now in meta.json) are not
        needed again: only its results are kept."""
        path = input_path(self.store, job_id)
        if path is not None:
            path.unlink(missing_ok=True)
        (self.store.dir(job_id) / CAMERA_FILE).unlink(missing_ok=True)

    def _run(self, job_id: str) -> None:
        path = input_path(self.store, job_id)
        if path is None:
            raise VideoError("the upload is missing")
        info = probe(path)
        lim = self.limits
        if info.width * info.height > lim.max_pixels:
            raise ClipLimitError(f"frames of {info.width}x{info.height} exceed the limit of {lim.max_pixels} pixels")
        if info.frames > lim.max_frames:
            raise ClipLimitError(f"the clip has {info.frames} frames; the limit is {lim.max_frames}")
        if info.fps > 0 and info.frames / info.fps > lim.max_seconds:
            raise ClipLimitError(f"the clip lasts {info.frames / info.fps:.0f} s; the limit is {lim.max_seconds:.0f} s")
        d = self.store.dir(job_id)
        camera = read_camera_request(self.store, job_id)
        meta = result_meta(info.fps, info.width, info.height, camera.camera(info.width, info.height))
        (d / "meta.json").write_text(json.dumps(meta))  # the result's head (`hotpose_client.schema.ResultHead`)
        total = max(info.frames, 1)
        self.store.update(job_id, status="running", frames_total=info.frames, progress=0.0, frames_done=0, error=None)
        pipeline = self.make_pipeline(camera)
        decoded = 0

        def frames() -> Iterator[tuple[int, float, np.ndarray]]:
            nonlocal decoded
            for index, t, frame in iter_frames(path):
                if job_id in self._cancelled:
                    raise _CancelledError
                if self._stopping.is_set():
                    raise _StoppingError
                if index >= lim.max_frames:
                    raise ClipLimitError(f"the clip has more than {lim.max_frames} frames")
                if t > lim.max_seconds:
                    raise ClipLimitError(f"the clip lasts more than {lim.max_seconds:.0f} s")
                decoded += 1
                yield index, t, frame

        done = 0
        last_update = 0.0
        with FramesWriter(d) as out:
            for fp in iter_poses(frames(), pipeline):
                out.write(fp)
                done += 1
                metrics.FRAMES.labels("clip").inc()
                now = time.monotonic()
                if now - last_update > 0.5:
                    last_update = now
                    self.store.update(job_id, frames_done=done, progress=min(done / total, 0.99))
            out.commit()
        self.store.update(job_id, status="done", frames_done=done, frames_total=done, progress=1.0)
        log.info("job %s: done, %d frames", job_id, done)


class FramesWriter:
    """A job's frames as NDJSON, one line each as it is lifted (`GET /v1/jobs/{id}/stream` tails it):
    `frames.ndjson.part` until `commit` renames it `frames.ndjson`."""

    def __init__(self, job_dir: Path) -> None:
        self.part = job_dir / "frames.ndjson.part"
        self._out: IO[str] = open(self.part, "w")  # noqa: SIM115 - closed by __exit__

    def write(self, fp: FramePoses) -> None:
        self._out.write(fp.to_json() + "\n")  # one `hotpose_client.schema.Frame`
        self._out.flush()

    def commit(self) -> None:
        self._out.close()
        self.part.rename(self.part.with_suffix(""))

    def __enter__(self) -> FramesWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._out.close()


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


def write_camera_request(store: JobStore, job_id: str, request: CameraRequest) -> None:
    """What the upload said of its camera, kept with the job (a restarted job is placed the same way)."""
    (store.dir(job_id) / CAMERA_FILE).write_text(json.dumps(asdict(request)))


def read_camera_request(store: JobStore, job_id: str) -> CameraRequest:
    path = store.dir(job_id) / CAMERA_FILE
    return CameraRequest(**json.loads(path.read_text())) if path.exists() else CameraRequest()


def frames_file(store: JobStore, job_id: str) -> Path:
    """The NDJSON of a job: final once the job is done, growing (`.part`) while it runs."""
    d = store.dir(job_id)
    final = d / "frames.ndjson"
    return final if final.exists() else d / "frames.ndjson.part"
