"""The jobs table in SQLite: the single-server default (`<data_dir>/jobs.sqlite3`).

WAL mode; one connection guarded by a lock within a process, and `BEGIN IMMEDIATE` for `claim`, so
workers in several processes on one machine (Ray replicas) never take the same job either.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from hotpose.service.stores.base import COLUMNS, UPDATABLE, Job

SELECT = f"SELECT {', '.join(COLUMNS)} FROM jobs"  # noqa: S608 - column names, no values
INSERT = f"INSERT INTO jobs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"  # noqa: S608
NEW_COLUMNS = {"owner": "TEXT", "worker": "TEXT", "lease_until": "REAL", "attempts": "INTEGER NOT NULL DEFAULT 0"}


class SQLiteJobStore:
    def __init__(self, path: Path, shared: bool = False) -> None:
        # not shared: one server's own table, whose running jobs are its own when it starts (`requeue_all_running`)
        self.shared = shared
        path.parent.mkdir(parents=True, exist_ok=True)
        self.url = f"sqlite:///{path}"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, status TEXT NOT NULL, filename TEXT,"
            " created REAL, updated REAL, progress REAL, frames_done INTEGER, frames_total INTEGER, error TEXT)"
        )
        have = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for name, kind in NEW_COLUMNS.items():  # a data directory of an older version
            if name not in have:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
        self._db.execute("CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created)")

    def create(self, job: Job) -> None:
        values = tuple(getattr(job, c) for c in COLUMNS)
        with self._lock:
            self._db.execute(INSERT, values)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute(f"{SELECT} WHERE job_id = ?", (job_id,)).fetchone()
        return Job(*row) if row else None

    def update(self, job_id: str, *, worker: str | None = None, lease_s: float | None = None, **fields: Any) -> bool:
        bad = set(fields) - UPDATABLE
        if bad:
            raise ValueError(f"not updatable: {sorted(bad)}")
        now = time.time()
        sets, args = [f"{k} = ?" for k in fields] + ["updated = ?"], [*fields.values(), now]
        where, wargs = "job_id = ?", [job_id]
        if worker is not None:
            where, wargs = where + " AND worker = ? AND status = 'running'", [*wargs, worker]
            if lease_s is not None:
                sets, args = [*sets, "lease_until = ?"], [*args, now + lease_s]
        with self._lock:
            cur = self._db.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE {where}", (*args, *wargs))  # noqa: S608 - names checked
        return cur.rowcount > 0

    def claim(self, worker: str, lease_s: float) -> Job | None:
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # the write lock first: no other process claims in between
            try:
                row = self._db.execute(
                    "SELECT job_id FROM jobs WHERE status = 'queued' OR (status = 'running' AND lease_until < ?)"
                    " ORDER BY created LIMIT 1",
                    (now,),
                ).fetchone()
                if row is not None:
                    self._db.execute(
                        "UPDATE jobs SET status = 'running', worker = ?, lease_until = ?, updated = ?,"
                        " progress = 0, frames_done = 0, attempts = COALESCE(attempts, 0) + 1 WHERE job_id = ?",
                        (worker, now + lease_s, now, row[0]),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return self.get(row[0]) if row is not None else None

    def release(self, job_id: str, worker: str) -> bool:
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET status = 'queued', worker = NULL, lease_until = NULL, progress = 0, frames_done = 0,"
                " updated = ? WHERE job_id = ? AND worker = ? AND status = 'running'",
                (time.time(), job_id, worker),
            )
        return cur.rowcount > 0

    def requeue_all_running(self) -> list[str]:
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT job_id FROM jobs WHERE status = 'running' ORDER BY created")]
            self._db.execute(
                "UPDATE jobs SET status = 'queued', worker = NULL, lease_until = NULL, progress = 0, frames_done = 0"
                " WHERE status = 'running'"
            )
        return ids

    def delete(self, job_id: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
        return cur.rowcount > 0

    def with_status(self, *statuses: str, owner: str | None = None) -> list[str]:
        where, args = f"status IN ({','.join('?' * len(statuses))})", list(statuses)
        if owner is not None:
            where, args = where + " AND owner = ?", [*args, owner]
        with self._lock:
            rows = self._db.execute(f"SELECT job_id FROM jobs WHERE {where} ORDER BY created", args).fetchall()  # noqa: S608 - only "?"s
        return [r[0] for r in rows]

    def finished_before(self, cutoff: float) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id FROM jobs WHERE status IN ('done', 'failed') AND updated < ? ORDER BY created", (cutoff,)
            ).fetchall()
        return [r[0] for r in rows]

    def ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT job_id FROM jobs")}

    def close(self) -> None:
        with self._lock:
            self._db.close()
