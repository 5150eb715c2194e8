"""What every `JobStore` does, run on each (`job_store` / `job_db` in conftest.py: SQLite, and
PostgreSQL where a server can start): the table, the lease queue, and claims racing from several
threads and processes, each with its own store on the same table, taking every job exactly once.
PostgreSQL's own behaviour (connections, schema, passwords) is in test_postgres.py."""

from __future__ import annotations

import multiprocessing
import queue
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hotpose.service.stores import open_job_store
from hotpose.service.stores.base import UPDATABLE, Job, JobStore
from hotpose.service.stores.sqlite import SQLiteJobStore


def job(job_id: str, created: float, status: str = "queued", **fields: Any) -> Job:
    fields.setdefault("updated", created)
    return Job(job_id=job_id, status=status, filename=f"{job_id}.mp4", created=created, **fields)


def duplicate_key_error(store: JobStore) -> type[Exception]:
    """What `create` raises for a job id the table has."""
    if isinstance(store, SQLiteJobStore):
        return sqlite3.IntegrityError
    import psycopg

    return psycopg.errors.UniqueViolation


def test_the_store_is_the_kind_its_url_names(job_store: JobStore, job_db: str) -> None:
    kind = type(job_store).__name__
    assert kind == ("SQLiteJobStore" if job_db.startswith("sqlite:") else "PostgresJobStore")
    assert job_store.url == job_db  # no password in either URL here
    assert job_store.shared


def test_create_get(job_store: JobStore) -> None:
    full = job("a", 1.5, "failed", progress=0.25, frames_done=3, frames_total=12, error="boom", owner="k1", attempts=2)
    job_store.create(full)
    job_store.create(job("b", 2.0))
    assert job_store.get("a") == full
    assert job_store.get("b") == job("b", 2.0)
    assert job_store.get("nope") is None
    with pytest.raises(duplicate_key_error(job_store)):
        job_store.create(job("a", 3.0))
    assert job_store.get("a") == full


def test_update_sets_fields_and_updated(job_store: JobStore) -> None:
    job_store.create(job("a", 1.0))
    before = time.time()
    assert job_store.update("a", status="failed", error="no frames", progress=0.5, frames_done=4, frames_total=8)
    got = job_store.get("a")
    assert got is not None
    assert (got.status, got.error, got.progress) == ("failed", "no frames", 0.5)
    assert (got.frames_done, got.frames_total) == (4, 8)
    assert before <= got.updated <= time.time()
    assert not job_store.update("gone", status="done")


@pytest.mark.parametrize("field", ["created", "owner", "lease_until", "attempts", "nope"])
def test_update_refuses_fields_outside_updatable(job_store: JobStore, field: str) -> None:
    assert field not in UPDATABLE
    job_store.create(job("a", 1.0))
    with pytest.raises(ValueError, match=field):
        job_store.update("a", status="done", **{field: "x"})
    assert job_store.get("a") == job("a", 1.0)  # nothing written, not even the allowed field


def test_claim_takes_the_oldest_queued_job_and_starts_its_progress_afresh(job_store: JobStore) -> None:
    for job_id, created in (("c", 30.0), ("a", 10.0), ("b", 20.0)):
        job_store.create(job(job_id, created))
    job_store.update("a", progress=0.4, frames_done=4, frames_total=10)  # what an earlier attempt reached
    job_store.create(job("done", 1.0, "done"))
    job_store.create(job("failed", 2.0, "failed"))
    claimed = [job_store.claim("w1", 60.0) for _ in range(3)]
    assert [j.job_id if j else None for j in claimed] == ["a", "b", "c"]
    assert job_store.claim("w1", 60.0) is None  # the running ones hold live leases; done and failed are not queued
    first = claimed[0]
    assert first is not None and first == job_store.get("a")
    assert (first.status, first.worker, first.attempts) == ("running", "w1", 1)
    assert (first.progress, first.frames_done, first.frames_total) == (0, 0, 10)
    assert first.lease_until is not None and abs(first.lease_until - (time.time() + 60.0)) < 5.0


def test_expired_lease_is_claimed_again_and_the_old_worker_loses_the_job(job_store: JobStore) -> None:
    job_store.create(job("a", 1.0))
    assert job_store.claim("old", 0.05) is not None
    assert job_store.update("a", worker="old", progress=0.3, frames_done=3)  # still within its lease: its own
    time.sleep(0.1)
    taken = job_store.claim("new", 60.0)
    assert taken is not None
    assert (taken.job_id, taken.worker, taken.status, taken.attempts) == ("a", "new", "running", 2)
    assert (taken.progress, taken.frames_done) == (0, 0)  # the new attempt starts from the first frame
    assert not job_store.update("a", worker="old", progress=0.9, frames_done=9)
    assert not job_store.release("a", "old")
    got = job_store.get("a")
    assert got is not None and (got.worker, got.status, got.progress, got.frames_done) == ("new", "running", 0, 0)
    assert job_store.update("a", worker="new", progress=0.1, frames_done=1)
    got = job_store.get("a")
    assert got is not None and (got.progress, got.frames_done) == (0.1, 1)


def test_update_with_worker_renews_the_lease_while_the_job_is_its_own(job_store: JobStore) -> None:
    job_store.create(job("a", 1.0))
    claimed = job_store.claim("w", 1.0)
    assert claimed is not None and claimed.lease_until is not None
    assert job_store.update("a", worker="w", lease_s=600.0, progress=0.5)
    renewed = job_store.get("a")
    assert renewed is not None and renewed.lease_until is not None
    assert renewed.lease_until > claimed.lease_until + 500
    assert not job_store.update("a", worker="someone else", lease_s=600.0, progress=0.6)
    assert job_store.update("a", worker="w", status="done", progress=1.0)
    assert not job_store.update("a", worker="w", progress=1.0)  # done: no longer running, so no longer its own
    assert job_store.update("a", error=None)  # without a worker: any job


def test_release_puts_the_job_back_in_the_queue(job_store: JobStore) -> None:
    job_store.create(job("a", 1.0))
    job_store.claim("w", 60.0)
    job_store.update("a", worker="w", progress=0.5, frames_done=5, frames_total=10)
    assert not job_store.release("a", "other")
    assert job_store.release("a", "w")
    got = job_store.get("a")
    assert got is not None
    assert (got.status, got.worker, got.lease_until, got.progress, got.frames_done) == ("queued", None, None, 0, 0)
    assert got.frames_total == 10 and got.attempts == 1
    assert not job_store.release("a", "w")  # queued now: not running
    again = job_store.claim("w2", 60.0)
    assert again is not None and again.attempts == 2


def test_requeue_all_running(job_store: JobStore) -> None:
    for job_id, created in (("r1", 1.0), ("r2", 2.0), ("q", 3.0)):
        job_store.create(job(job_id, created))
    job_store.create(job("d", 0.5, "done", progress=1.0, frames_done=9))
    job_store.claim("w", 60.0)
    job_store.claim("w", 60.0)
    job_store.update("r1", worker="w", progress=0.5, frames_done=5)
    assert sorted(job_store.requeue_all_running()) == ["r1", "r2"]
    for job_id in ("r1", "r2"):
        got = job_store.get(job_id)
        assert got is not None
        assert (got.status, got.worker, got.lease_until, got.progress, got.frames_done) == ("queued", None, None, 0, 0)
    assert job_store.with_status("done") == ["d"]
    assert job_store.requeue_all_running() == []


def test_with_status_finished_before_ids_delete(job_store: JobStore) -> None:
    job_store.create(job("q2", 20.0, owner="k1"))
    job_store.create(job("q1", 10.0, owner="k2"))
    job_store.create(job("r", 15.0, "running", owner="k1"))
    job_store.create(job("old-done", 1.0, "done"))
    job_store.create(job("old-failed", 2.0, "failed"))
    job_store.create(job("new-done", 3.0, "done", updated=5000.0))
    assert job_store.with_status("queued") == ["q1", "q2"]
    assert job_store.with_status("queued", "running") == ["q1", "r", "q2"]
    assert job_store.with_status("queued", "running", owner="k1") == ["r", "q2"]
    assert job_store.with_status("queued", owner="nobody") == []
    assert job_store.with_status() == []
    assert job_store.finished_before(1000.0) == ["old-done", "old-failed"]
    assert job_store.ids() == {"q1", "q2", "r", "old-done", "old-failed", "new-done"}
    assert job_store.delete("q1")
    assert not job_store.delete("q1")
    assert job_store.get("q1") is None and "q1" not in job_store.ids()


# claims racing: 2 processes and 4 threads, each with a store of its own on the same table


def claim_all(store: JobStore, worker: str) -> list[str]:
    taken = []
    while (claimed := store.claim(worker, 60.0)) is not None:
        taken.append(claimed.job_id)
    return taken


def claim_in_process(url: str, data_dir: Path, worker: str, go: Any, out: Any) -> None:
    """A spawned process: open the store, say so, wait for the start, claim until the queue is empty."""
    store = open_job_store(url, data_dir, shared=True)
    out.put(("ready", worker, []))
    go.wait(30)
    out.put(("claimed", worker, claim_all(store, worker)))
    store.close()


def test_concurrent_claims_from_threads_and_processes_take_each_job_once(
    job_store: JobStore, job_db: str, tmp_path: Path
) -> None:
    """PostgreSQL: `FOR UPDATE SKIP LOCKED` in one transaction; SQLite: `BEGIN IMMEDIATE` (the file's
    write lock) before the claim's read, across connections and processes alike."""
    all_ids = {f"job{i:02d}" for i in range(50)}
    for i, job_id in enumerate(sorted(all_ids)):
        job_store.create(job(job_id, float(i)))
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    processes = [ctx.Process(target=claim_in_process, args=(job_db, tmp_path, f"p{i}", go, out)) for i in range(2)]
    for p in processes:
        p.start()
    try:
        assert sorted(out.get(timeout=30)[0] for _ in processes) == ["ready", "ready"]
        stores = [open_job_store(job_db, tmp_path, shared=True) for _ in range(4)]
        assert all(type(s) is type(job_store) for s in stores)
        taken: dict[str, list[str]] = {}

        def run(store: JobStore, worker: str) -> None:
            go.wait(30)
            taken[worker] = claim_all(store, worker)

        threads = [threading.Thread(target=run, args=(s, f"t{i}")) for i, s in enumerate(stores)]
        for t in threads:
            t.start()
        go.set()  # all six start claiming at once
        for t in threads:
            t.join(30)
        for _ in processes:
            _, worker, ids = out.get(timeout=30)
            taken[worker] = ids
        for p in processes:
            p.join(30)
            assert p.exitcode == 0
        for store in stores:
            store.close()
    except queue.Empty:
        pytest.fail("a claiming process did not report within 30 s")
    finally:
        for p in processes:
            if p.is_alive():
                p.kill()

    assert sorted(taken) == ["p0", "p1", "t0", "t1", "t2", "t3"]
    counts = Counter(job_id for ids in taken.values() for job_id in ids)
    assert [job_id for job_id, n in counts.items() if n > 1] == []
    assert set(counts) == all_ids
    for worker, ids in taken.items():
        rows = [job_store.get(job_id) for job_id in ids]
        assert all(r is not None and (r.worker, r.status, r.attempts) == (worker, "running", 1) for r in rows)
