"""What a clip job is and the two stores that hold jobs: `JobStore` (the table and its queue) and
`ResultStore` (each job's files: upload, camera request, result head, frames).

The single-process server uses SQLite and a directory under the data directory (`sqlite.py`,
`directory.py`); servers on several machines share PostgreSQL and S3-compatible object storage
(`postgres.py`, `s3.py`). `open_job_store` / `open_result_store` (`hotpose.service.stores`) pick one
from `HOTPOSE_JOB_DB` / `HOTPOSE_RESULTS`.

The queue is the table: a worker `claim`s the oldest queued job (or a running one whose worker
stopped renewing its lease) in one transaction, so two workers never take the same job; while it
runs the job it renews the lease with every `update(..., worker=...)`, which fails (returns False)
once the job is no longer its own (deleted, or taken by another worker after the lease ran out).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

STATUSES = ("queued", "running", "done", "failed")


class StoreUnavailableError(RuntimeError):
    """A job or result store cannot be reached (a database or object storage down): the server answers 503."""


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
    worker: str | None = None  # the worker running it (while running)
    lease_until: float | None = None  # unix time its worker's lease ends (while running)
    attempts: int = 0  # how many times a worker has taken it

    def public(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id, "status": self.status, "progress": round(self.progress, 4),
            "frames_done": self.frames_done, "frames_total": self.frames_total, "error": self.error,
            "filename": self.filename, "created": self.created,
        }  # fmt: skip


# column order of the `jobs` table, as `Job`'s fields
COLUMNS = (
    "job_id", "status", "filename", "created", "updated", "progress", "frames_done", "frames_total", "error",
    "owner", "worker", "lease_until", "attempts",
)  # fmt: skip
UPDATABLE = frozenset(COLUMNS) - {"job_id", "created", "owner", "worker", "lease_until", "attempts"}


class JobStore(Protocol):
    """The jobs table. Implementations are thread-safe."""

    url: str  # where it is, without a password (logs, `hotpose doctor`)
    shared: bool  # several servers may use it at once: no start-up recovery, leases only

    def create(self, job: Job) -> None:
        """Insert a new job (its files are already in the result store)."""
        ...

    def get(self, job_id: str) -> Job | None: ...

    def update(self, job_id: str, *, worker: str | None = None, lease_s: float | None = None, **fields: Any) -> bool:
        """Set `fields` (names in UPDATABLE) and `updated`; with `worker`, only while that worker holds
        the job, renewing its lease by `lease_s`. False when no row changed (gone, or not that worker's)."""
        ...

    def claim(self, worker: str, lease_s: float) -> Job | None:
        """Take the oldest queued job, or a running one whose lease has ended, for `worker`: status
        running, lease until now + lease_s, attempts + 1; None when there is none. Atomic: two
        workers never take the same job."""
        ...

    def release(self, job_id: str, worker: str) -> bool:
        """Put a job `worker` holds back in the queue (a worker stopping); False if it was not its own."""
        ...

    def requeue_all_running(self) -> list[str]:
        """Queue again every running job (a single server starting: they were its own); returns their ids."""
        ...

    def delete(self, job_id: str) -> bool: ...

    def with_status(self, *statuses: str, owner: str | None = None) -> list[str]:
        """Ids of the jobs in these statuses, oldest first; only `owner`'s when given."""
        ...

    def finished_before(self, cutoff: float) -> list[str]:
        """Ids of done or failed jobs last updated before `cutoff` (unix time)."""
        ...

    def ids(self) -> set[str]: ...

    def close(self) -> None: ...


class FramesSink(Protocol):
    """A job's frames being written, one NDJSON line each (`hotpose_client.schema.Frame`)."""

    def write(self, line: str) -> None:
        """One line, without its newline; readers see it within about `flush_s` of the store."""
        ...

    def commit(self) -> None:
        """All frames written: the result is whole."""
        ...

    def close(self) -> None:
        """Stop writing (after commit, or on failure: what was written stays readable)."""
        ...


class ResultStore(Protocol):
    """Each job's files. Implementations are thread-safe."""

    url: str
    shared: bool  # other servers may use it (object storage): never swept for files without a row here

    def put_input(self, job_id: str, upload: Path, suffix: str) -> None:
        """Take a whole received upload (moved or copied; `upload` may be gone afterwards)."""
        ...

    def has_input(self, job_id: str) -> bool: ...

    def open_input(self, job_id: str) -> AbstractContextManager[Path]:
        """The upload as a local file for the time of the `with` (raises FileNotFoundError if absent)."""
        ...

    def drop_input(self, job_id: str) -> None: ...

    def put_json(self, job_id: str, name: str, value: dict[str, Any]) -> None:
        """A small JSON document of the job (`camera.json`, `meta.json`)."""
        ...

    def get_json(self, job_id: str, name: str) -> dict[str, Any] | None: ...

    def delete_json(self, job_id: str, name: str) -> None: ...

    def frames_writer(self, job_id: str, attempt: int = 0) -> FramesSink:
        """Start attempt `attempt`'s frames (`Job.attempts` of the worker that claimed the job), apart from
        every other attempt's: a worker that lost its job and has not noticed yet writes only to its
        own attempt, which nobody reads. Earlier attempts' frames are dropped."""
        ...

    def read_frames(self, job_id: str, cursor: int = 0, attempt: int = 0) -> tuple[bytes, int]:
        """Whole NDJSON lines of attempt `attempt` written since `cursor` (0: from the start) and the cursor
        after them; b"" when nothing new. A committed result is read whatever `attempt` (it is the job's
        last). The cursor is opaque (a byte offset, a chunk count) and belongs to its attempt."""
        ...

    def drop_frames(self, job_id: str) -> None: ...

    def delete(self, job_id: str) -> None:
        """Everything of the job."""
        ...

    def ids(self) -> set[str]:
        """Jobs that have files here (for the sweep of what a killed server left)."""
        ...

    def close(self) -> None: ...


def iter_frame_lines(results: ResultStore, job_id: str, attempt: int = 0) -> Iterator[bytes]:
    """Every NDJSON line (with its newline) of a job's frames (of `attempt`, while not committed), in order."""
    cursor = 0
    while True:
        chunk, cursor = results.read_frames(job_id, cursor, attempt)
        if not chunk:
            return
        yield from chunk.splitlines(keepends=True)
