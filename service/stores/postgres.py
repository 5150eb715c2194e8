"""The jobs table in PostgreSQL: what several servers (machines, Ray replicas) share (`HOTPOSE_JOB_DB=postgresql://...`).

Connections: a few per store, each used by one thread at a time (taken from an idle list, given
back after the statement), autocommit; `claim` runs in an explicit transaction that locks the row
it takes (`FOR UPDATE SKIP LOCKED`), so workers in any number of threads, processes and machines
never take the same job and never wait on each other's row. An idle connection that the server
dropped (a restart, a failover) is replaced, silently.

Leases are reckoned by the database's clock (`lease_until` is unix time on the server), so that
machines whose clocks disagree still agree on whose lease has ended; `created` and `updated` are
the writing server's `time.time()`, as in the other stores.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import class_row

from hotpose.service.stores.base import COLUMNS, UPDATABLE, Job, StoreUnavailableError

T = TypeVar("T")
Statement = str | sql.SQL | sql.Composed  # what `Connection.execute` takes (psycopg 3.2 and 3.3 alike)

CONNECT_TIMEOUT_S = 10  # unless the URL sets connect_timeout
MAX_CONNECTIONS = 8  # per store: threads beyond this wait for a free connection
SCHEMA_LOCK = "hotpose.jobs schema"  # advisory lock key (hashed): servers starting at once create the table once

CREATE = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    filename TEXT,
    created DOUBLE PRECISION,
    updated DOUBLE PRECISION,
    progress DOUBLE PRECISION,
    frames_done INTEGER,
    frames_total INTEGER,
    error TEXT,
    owner TEXT,
    worker TEXT,
    lease_until DOUBLE PRECISION,
    attempts INTEGER NOT NULL DEFAULT 0
)
"""
NOW = sql.SQL("extract(epoch FROM clock_timestamp())::double precision")  # the database's unix time (for leases)
SELECT = sql.SQL("SELECT {} FROM jobs").format(sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
INSERT = sql.SQL("INSERT INTO jobs ({}) VALUES ({})").format(
    sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), sql.SQL(", ").join([sql.Placeholder()] * len(COLUMNS))
)
CLAIMABLE = sql.SQL(
    "SELECT job_id FROM jobs WHERE status = 'queued' OR (status = 'running' AND lease_until < {now})"
    " ORDER BY created, job_id LIMIT 1 FOR UPDATE SKIP LOCKED"  # a row another claim holds is passed over
).format(now=NOW)
CLAIM = sql.SQL(
    "UPDATE jobs SET status = 'running', worker = %s, lease_until = {now} + %s, updated = %s,"
    " progress = 0, frames_done = 0, attempts = attempts + 1 WHERE job_id = %s RETURNING {columns}"
).format(now=NOW, columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))


class JobStoreUnavailableError(StoreUnavailableError):
    """The PostgreSQL server cannot be reached (or dropped the connection): the message names the
    URL (without its password) and the cause."""


def mask_password(url: str) -> str:
    """`url` with its password (in the user part or a `password=` parameter) replaced by `***`."""
    parts = urlsplit(url)
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{hostport}"
    query = parts.query
    if query:
        pairs = [(k, "***" if k == "password" else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="*")
    masked = urlunsplit(parts._replace(netloc=netloc, query=query))
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:  # not a URL libpq reads: show none of it
        return "postgresql://***"
    password = info.get("password")
    if password and str(password) in masked:  # a URL urlsplit reads otherwise than libpq (a '#' in the password)
        port = f":{info['port']}" if info.get("port") else ""
        return f"postgresql://{info.get('user', '')}:***@{info.get('host', '')}{port}/{info.get('dbname', '')}"
    return masked


class PostgresJobStore:
    shared = True  # several servers use the table: no start-up recovery, leases only

    def __init__(self, url: str, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self.url = mask_password(url)
        self._conninfo = url
        self._connect_kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in conninfo_to_dict(url):
            self._connect_kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
        self._lock = threading.Lock()
        self._idle: list[psycopg.Connection[Any]] = []
        self._slots = threading.BoundedSemaphore(max_connections)
        self._closed = False
        try:
            self._run(self._create_schema)
        except BaseException:
            self.close()
            raise

    def _create_schema(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():  # CREATE ... IF NOT EXISTS alone races between servers starting at once
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (SCHEMA_LOCK,))
            conn.execute(CREATE)
            rows = conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = 'jobs'"
            ).fetchall()
            missing = [c for c in COLUMNS if c not in {r[0] for r in rows}]
            if missing:
                raise RuntimeError(
                    f"{self.url}: table jobs lacks the columns {missing}: it is not hotpose's jobs table, or of an"
                    " older version (drop it, or point HOTPOSE_JOB_DB at another database or schema)"
                )
            conn.execute("CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created)")

    # connections

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self._conninfo, **self._connect_kwargs)
        except psycopg.OperationalError as e:
            cause = " ".join(str(e).replace(self._conninfo, self.url).split())
            raise JobStoreUnavailableError(
                f"cannot connect to the job store {self.url}: {cause}"
                " (is the server running, and is HOTPOSE_JOB_DB right?)"
            ) from e

    @contextmanager
    def _connection(self) -> Iterator[tuple[psycopg.Connection[Any], bool]]:
        """A connection for this thread alone while the `with` lasts, and whether it was idle before
        (so possibly dropped by the server meanwhile)."""
        with self._slots:
            with self._lock:
                if self._closed:
                    raise RuntimeError(f"the job store {self.url} is closed")
                conn = self._idle.pop() if self._idle else None
            reused = conn is not None
            conn = conn or self._connect()
            try:
                yield conn, reused
            finally:
                healthy = not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                with self._lock:
                    if healthy and not self._closed:
                        self._idle.append(conn)
                        conn = None
                if conn is not None:
                    conn.close()

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`work` on a connection; again on another when an idle one turns out dropped by the server."""
        while True:
            with self._connection() as (conn, reused):
                try:
                    return work(conn)
                except psycopg.OperationalError as e:
                    if not conn.broken:
                        raise  # the server answered (a cancelled statement, a lock timeout): not a lost link
                    conn.close()
                    if reused:
                        continue  # dropped while idle: nothing was done, try a fresh connection
                    raise JobStoreUnavailableError(f"lost the connection to the job store {self.url}: {e}") from e

    def _rowcount(self, query: Statement, args: tuple[Any, ...]) -> int:
        return self._run(lambda conn: conn.execute(query, args).rowcount)

    def _ids(self, query: Statement, args: tuple[Any, ...] = ()) -> list[str]:
        return self._run(lambda conn: [r[0] for r in conn.execute(query, args).fetchall()])

    # the JobStore protocol

    def create(self, job: Job) -> None:
        self._rowcount(INSERT, tuple(getattr(job, c) for c in COLUMNS))

    def get(self, job_id: str) -> Job | None:
        def work(conn: psycopg.Connection[Any]) -> Job | None:
            with conn.cursor(row_factory=class_row(Job)) as cur:
                return cur.execute(SELECT + sql.SQL(" WHERE job_id = %s"), (job_id,)).fetchone()

        return self._run(work)

    def update(self, job_id: str, *, worker: str | None = None, lease_s: float | None = None, **fields: Any) -> bool:
        bad = set(fields) - UPDATABLE
        if bad:
            raise ValueError(f"not updatable: {sorted(bad)} (updatable: {sorted(UPDATABLE)})")
        sets: list[sql.Composable] = [sql.SQL("{} = %s").format(sql.Identifier(k)) for k in fields]
        sets.append(sql.SQL("updated = %s"))
        args: list[Any] = [*fields.values(), time.time()]
        where: sql.Composable = sql.SQL("job_id = %s")
        wargs = [job_id]
        if worker is not None:
            where += sql.SQL(" AND worker = %s AND status = 'running'")
            wargs.append(worker)
            if lease_s is not None:
                sets.append(sql.SQL("lease_until = {} + %s").format(NOW))
                args.append(lease_s)
        query = sql.SQL("UPDATE jobs SET {} WHERE {}").format(sql.SQL(", ").join(sets), where)
        return self._rowcount(query, (*args, *wargs)) > 0

    def claim(self, worker: str, lease_s: float) -> Job | None:
        def work(conn: psycopg.Connection[Any]) -> Job | None:
            with conn.transaction():
                row = conn.execute(CLAIMABLE).fetchone()
                if row is None:
                    return None
                with conn.cursor(row_factory=class_row(Job)) as cur:
                    return cur.execute(CLAIM, (worker, lease_s, time.time(), row[0])).fetchone()

        return self._run(work)

    def release(self, job_id: str, worker: str) -> bool:
        return (
            self._rowcount(
                "UPDATE jobs SET status = 'queued', worker = NULL, lease_until = NULL, progress = 0, frames_done = 0,"
                " updated = %s WHERE job_id = %s AND worker = %s AND status = 'running'",
                (time.time(), job_id, worker),
            )
            > 0
        )

    def requeue_all_running(self) -> list[str]:
        return self._ids(
            "UPDATE jobs SET status = 'queued', worker = NULL, lease_until = NULL, progress = 0, frames_done = 0"
            " WHERE status = 'running' RETURNING job_id"
        )

    def delete(self, job_id: str) -> bool:
        return self._rowcount("DELETE FROM jobs WHERE job_id = %s", (job_id,)) > 0

    def with_status(self, *statuses: str, owner: str | None = None) -> list[str]:
        if owner is None:
            return self._ids(
                "SELECT job_id FROM jobs WHERE status = ANY(%s) ORDER BY created, job_id", (list(statuses),)
            )
        return self._ids(
            "SELECT job_id FROM jobs WHERE status = ANY(%s) AND owner = %s ORDER BY created, job_id",
            (list(statuses), owner),
        )

    def finished_before(self, cutoff: float) -> list[str]:
        return self._ids(
            "SELECT job_id FROM jobs WHERE status IN ('done', 'failed') AND updated < %s ORDER BY created", (cutoff,)
        )

    def ids(self) -> set[str]:
        return set(self._ids("SELECT job_id FROM jobs"))

    def close(self) -> None:
        """Close the idle connections now and those in use as their statements end."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
