"""Where clip jobs live: a `JobStore` (SQLite by default, PostgreSQL) and a `ResultStore` (a directory
by default, S3-compatible object storage), chosen by `HOTPOSE_JOB_DB` and `HOTPOSE_RESULTS`."""

from __future__ import annotations

from pathlib import Path

from hotpose.service.stores.base import Job, JobStore, ResultStore


class StoreURLError(ValueError):
    """A `HOTPOSE_JOB_DB` / `HOTPOSE_RESULTS` value that names no store we have."""


def open_job_store(url: str | None, data_dir: Path, shared: bool = False) -> JobStore:
    """None or `sqlite:///path`: SQLite (default `<data_dir>/jobs.sqlite3`); `postgresql://...`: PostgreSQL.
    `shared`: processes other than this one run jobs from an SQLite table too (Ray replicas on one machine)."""
    if url is None or url.startswith("sqlite:"):
        from hotpose.service.stores.sqlite import SQLiteJobStore

        path = Path(url.removeprefix("sqlite://").removeprefix("/")) if url else data_dir / "jobs.sqlite3"
        if url and url.startswith("sqlite:////"):
            path = Path("/" + url.removeprefix("sqlite:////"))
        return SQLiteJobStore(path, shared=shared)
    if url.startswith(("postgresql://", "postgres://")):
        from hotpose.service.stores.postgres import PostgresJobStore

        return PostgresJobStore(url)
    raise StoreURLError(f"HOTPOSE_JOB_DB={url.split('://')[0]}://...: expected sqlite:///<path> or postgresql://...")


def open_result_store(url: str | None, data_dir: Path) -> ResultStore:
    """None, a path or `file://path`: a directory (default `<data_dir>/jobs`); `s3://bucket/prefix`: S3."""
    if url is None or "://" not in url or url.startswith("file://"):
        from hotpose.service.stores.directory import DirectoryResultStore

        return DirectoryResultStore(Path(url.removeprefix("file://")) if url else data_dir / "jobs")
    if url.startswith("s3://"):
        from hotpose.service.stores.s3 import S3ResultStore

        return S3ResultStore(url)
    raise StoreURLError(f"HOTPOSE_RESULTS={url.split('://')[0]}://...: expected a directory or s3://bucket/prefix")


__all__ = ["Job", "JobStore", "ResultStore", "StoreURLError", "open_job_store", "open_result_store"]
