"""What `PostgresJobStore` alone does, against a real PostgreSQL server (conftest.py): the password
kept out of its URL and errors, an unreachable server refused at once, a connection the server
dropped replaced, and the table created once by servers starting together. The `JobStore` contract
and racing claims, which it shares with SQLite, are in test_job_stores.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.service.stores.conftest import NO_PSYCOPG, drop_jobs_table, free_port

psycopg = pytest.importorskip("psycopg", reason=NO_PSYCOPG)

from hotpose.service.stores.base import Job  # noqa: E402
from hotpose.service.stores.postgres import JobStoreUnavailableError, PostgresJobStore, mask_password  # noqa: E402


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[PostgresJobStore]:
    """A store on the session's database, its table made afresh."""
    drop_jobs_table(postgres_url)
    store = PostgresJobStore(postgres_url)
    yield store
    store.close()


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
    assert "pa#ss" not in mask_password("postgresql://u:pa#ss@db/x")  # libpq reads the '#' as the password's


def test_unreachable_server_fails_fast_with_the_url_and_the_cause() -> None:
    port = free_port()  # nothing listens there
    start = time.monotonic()
    with pytest.raises(JobStoreUnavailableError) as caught:
        PostgresJobStore(f"postgresql://u:s3cret@127.0.0.1:{port}/db?password=s3cret")
    assert time.monotonic() - start < 5.0
    message = str(caught.value)
    assert f"postgresql://u:***@127.0.0.1:{port}/db?password=***" in message
    assert "refused" in message and "s3cret" not in message


def test_a_connection_the_server_dropped_is_replaced(pg_store: PostgresJobStore, postgres_url: str) -> None:
    pg_store.create(Job("a", "queued", "a.mp4", created=1.0, updated=1.0))
    with psycopg.connect(postgres_url, autocommit=True) as admin:  # a database restart, as the store sees it
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert killed is not None and killed[0] >= 1
    assert pg_store.ids() == {"a"}


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
