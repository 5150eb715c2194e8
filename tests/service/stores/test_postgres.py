"""`PostgresJobStore` against a real PostgreSQL server (conftest.py): the `JobStore` contract, the
lease queue, and claims racing from several threads and processes."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from collections import Counter
from typing import Any

import pytest

from hotpose.service.stores.base import UPDATABLE, Job
from tests.service.stores.conftest import free_port

psycopg = pytest.importorskip(
    "psycopg", reason="the PostgreSQL job store needs psycopg: pip install 'hotpose[postgres]'"
)

from hotpose.service.stores.postgres import JobStoreUnavailableError, PostgresJobStore, mask_password  # noqa: E402


def job(job_id: str, created: float, status: str = "queued", **fields: Any) -> Job:
    fields.setdefault("updated", created)
    return Job(job_id=job_id, status=status, filename=f"{job_id}.mp4", created=created, **fields)


def test_create_get(job_store: PostgresJobStore) -> None:
    full = job("a", 1.5, "failed", progress=0.25, frames_done=3, frames_total=12, error="boom", owner="k1", attempts=2)
    job_store.create(full)
    job_store.create(job("b", 2.0))
    assert job_store.get("a") == full
    assert job_store.get("b") == job("b", 2.0)
    assert job_store.get("nope") is None
    with pytest.raises(psycopg.errors.UniqueViolation):
        job_store.create(job("a", 3.0))


def test_update_sets_fields_and_updated(job_store: PostgresJobStore) -> None:
    job_store.create(job("a", 1.0))
    before = time.time()
    assert job_store.update("a", status="failed", error="no frames", progress=0.5, frames_done=4, frames_total=8)
    got = job_store.get("a")
    assert got is not None
    assert (got.status, got.error, got.progress, got.frames_done, got.frames_total) == (
        "failed",
        "no frames",
        0.5,
        4,
        8,
    )
    assert before <= got.updated <= time.time()
    assert not job_store.update("gone", status="done")


@pytest.mark.parametrize("field", ["created", "owner", "lease_until", "attempts", "nope"])
def test_update_refuses_fields_outside_updatable(job_store: PostgresJobStore, field: str) -> None:
    assert field not in UPDATABLE
    job_store.create(job("a", 1.0))
    with pytest.raises(ValueError, match=field):
        job_store.update("a", status="done", **{field: "x"})
    assert job_store.get("a") == job("a", 1.0)  # nothing written, not even the allowed field


def test_claim_takes_the_oldest_queued_job(job_store: PostgresJobStore) -> None:
    for job_id, created in (("c", 30.0), ("a", 10.0), ("b", 20.0)):
        job_store.create(job(job_id, created))
    job_store.create(job("done", 1.0, "done"))
    job_store.create(job("failed", 2.0, "failed"))
    claimed = [job_store.claim("w1", 60.0) for _ in range(3)]
    assert [j.job_id if j else None for j in claimed] == ["a", "b", "c"]
    assert job_store.claim("w1", 60.0) is None  # the running ones hold live leases; done and failed are not queued
    first = claimed[0]
    assert first is not None and first == job_store.get("a")
    assert (first.status, first.worker, first.attempts) == ("running", "w1", 1)
    assert first.lease_until is not None and abs(first.lease_until - (time.time() + 60.0)) < 5.0


def test_expired_lease_is_claimed_again_and_the_old_worker_loses_the_job(job_store: PostgresJobStore) -> None:
    job_store.create(job("a", 1.0))
    assert job_store.claim("old", 0.05) is not None
    assert job_store.update("a", worker="old", progress=0.3, frames_done=3)  # still within its lease: its own
    time.sleep(0.1)
    taken = job_store.claim("new", 60.0)
    assert taken is not None
    assert (taken.job_id, taken.worker, taken.status, taken.attempts) == ("a", "new", "running", 2)
    assert not job_store.update("a", worker="old", progress=0.9)
    assert not job_store.release("a", "old")
    got = job_store.get("a")
    assert got is not None and (got.worker, got.status, got.progress) == ("new", "running", 0.3)


def test_update_with_worker_renews_the_lease_while_the_job_is_its_own(job_store: PostgresJobStore) -> None:
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


def test_release_puts_the_job_back_in_the_queue(job_store: PostgresJobStore) -> None:
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


def test_requeue_all_running(job_store: PostgresJobStore) -> None:
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


def test_with_status_finished_before_ids_delete(job_store: PostgresJobStore) -> None:
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


def test_url_hides_the_password(postgres_url: str) -> None:
    with_password = postgres_url.replace("hotpose@", "hotpose:s3cret@")  # trust authentication ignores it
    store = PostgresJobStore(with_password)
    try:
        assert store.url == postgres_url.replace("hotpose@", "hotpose:***@")
        assert store.get("none such") is None
    finally:
        store.close()
    assert mask_password("postgresql://h:5432/db?user=u&password=s3cret&sslmode=require") == (
        "postgresql://h:5432/db?user=u&password=***&sslmode=require"
    )
    assert mask_password("postgres://u@h/db") == "postgres://u@h/db"


def test_unreachable_server_fails_fast_with_the_url_and_the_cause() -> None:
    port = free_port()  # nothing listens there
    start = time.monotonic()
    with pytest.raises(JobStoreUnavailableError) as caught:
        PostgresJobStore(f"postgresql://u:s3cret@127.0.0.1:{port}/db?password=s3cret")
    assert time.monotonic() - start < 5.0
    message = str(caught.value)
    assert f"postgresql://u:***@127.0.0.1:{port}/db?password=***" in message
    assert "refused" in message and "s3cret" not in message


def test_a_connection_the_server_dropped_is_replaced(job_store: PostgresJobStore, postgres_url: str) -> None:
    job_store.create(job("a", 1.0))
    with psycopg.connect(postgres_url, autocommit=True) as admin:  # a database restart, as the store sees it
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert killed is not None and killed[0] >= 1
    assert job_store.ids() == {"a"}


def test_a_table_of_another_shape_is_refused(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS jobs")
        conn.execute("CREATE TABLE jobs (job_id TEXT PRIMARY KEY, status TEXT NOT NULL)")
    with pytest.raises(RuntimeError, match="lacks the columns.*filename"):
        PostgresJobStore(postgres_url)


def test_servers_starting_at_once_create_the_table_once(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS jobs")
    barrier, errors, stores = threading.Barrier(8), [], []

    def start() -> None:
        barrier.wait()
        try:
            stores.append(PostgresJobStore(postgres_url))
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in stores:
        store.close()
    assert errors == []


def claim_all(store: PostgresJobStore, worker: str) -> list[str]:
    taken = []
    while (claimed := store.claim(worker, 60.0)) is not None:
        taken.append(claimed.job_id)
    return taken


def claim_in_process(url: str, worker: str, go: Any, out: Any) -> None:
    """A spawned process: connect, say so, wait for the start, claim until the queue is empty."""
    store = PostgresJobStore(url)
    out.put(("ready", worker, []))
    go.wait(30)
    out.put(("claimed", worker, claim_all(store, worker)))
    store.close()


def test_concurrent_claims_from_threads_and_processes_take_each_job_once(
    job_store: PostgresJobStore, postgres_url: str
) -> None:
    all_ids = {f"job{i:02d}" for i in range(50)}
    for i, job_id in enumerate(sorted(all_ids)):
        job_store.create(job(job_id, float(i)))
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    processes = [ctx.Process(target=claim_in_process, args=(postgres_url, f"p{i}", go, out)) for i in range(2)]
    for p in processes:
        p.start()
    try:
        assert sorted(out.get(timeout=30)[0] for _ in processes) == ["ready", "ready"]
        stores = [PostgresJobStore(postgres_url) for _ in range(4)]
        taken: dict[str, list[str]] = {}

        def run(store: PostgresJobStore, worker: str) -> None:
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
