"""The stores' backing services for their tests: a real, throw-away PostgreSQL server (Debian's
`postgresql` package: `make test` installs it where it can) and moto's S3 server; the tests that need
one skip with the reason where it cannot start.

initdb and postgres refuse to run as root, so as root the server runs as the `postgres` user (or
`nobody`) through `runuser`, in a temporary directory that user owns; it listens on 127.0.0.1 only,
on a free port, with trust authentication, and is stopped and deleted after the session.

`job_store` is an empty jobs table of each kind in turn (SQLite, PostgreSQL): the tests that take it
are the behaviour every `JobStore` shares (test_job_stores.py).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hotpose.service.stores import open_job_store

if TYPE_CHECKING:
    from hotpose.service.stores.base import JobStore

DATABASE = "hotpose_test"
SUPERUSER = "hotpose"
BUCKET = "hotpose-results"  # made in moto's server by `s3_endpoint`
NO_PSYCOPG = "the PostgreSQL job store needs psycopg: pip install 'hotpose[postgres]'"


def _pg_bin() -> Path | None:
    """The folder of initdb / pg_ctl: on PATH, else the newest Debian install."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _run_as() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that drops root (and the user it drops to), or nothing when not root."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        if shutil.which("runuser"):
            return ["runuser", "-u", name, "--"], user
        if shutil.which("setpriv"):
            return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--"], user
    pytest.skip("running as root, and neither runuser nor setpriv with a postgres or nobody user to run PostgreSQL as")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """`postgresql://hotpose@127.0.0.1:<port>/hotpose_test` on a server of this session's own."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed: no initdb on PATH or under /usr/lib/postgresql/*/bin (make test)")
    prefix, user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="hotpose-pg-"))
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    data, port = root / "data", free_port()
    started = False

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=60, cwd=root)
        if done.returncode != 0:
            log = (root / "log").read_text(errors="replace") if (root / "log").exists() else ""
            pytest.skip(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()} {log.strip()}")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync")
        with (data / "postgresql.conf").open("a") as conf:  # appended as root: the file keeps its owner
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n"
            )
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "30", "start")
        started = True
        psycopg = pytest.importorskip("psycopg", reason=NO_PSYCOPG)

        with psycopg.connect(f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        yield f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"
    finally:
        if started:
            stop = [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            subprocess.run([*prefix, *stop], capture_output=True, timeout=60, cwd=root)
        shutil.rmtree(root, ignore_errors=True)


def drop_jobs_table(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS jobs")


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """The URL of a database of this test's own on the session's server (dropped afterwards)."""
    import psycopg

    name = f"hotpose_{uuid.uuid4().hex[:12]}"
    admin = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")  # connections a failed test left open too


@pytest.fixture(params=["sqlite", "postgresql"])
def job_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """`HOTPOSE_JOB_DB` of an empty jobs table: a new SQLite file, or the session's PostgreSQL database
    with the table dropped (made afresh by the first store opened: no rows of another test)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.sqlite3'}"  # an absolute path: sqlite:////tmp/...
    pytest.importorskip("psycopg", reason=NO_PSYCOPG)
    url: str = request.getfixturevalue("postgres_url")
    drop_jobs_table(url)
    return url


@pytest.fixture
def job_store(job_db: str, tmp_path: Path) -> Iterator[JobStore]:
    """A store on `job_db`, opened as a server opens it (`shared`: as Ray replicas open SQLite)."""
    store = open_job_store(job_db, tmp_path, shared=True)
    yield store
    store.close()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 on a free loopback port, the bucket `BUCKET` in it and dummy credentials in the
    environment (no real AWS, no ~/.aws) while the module's tests run."""
    boto3 = pytest.importorskip("boto3", reason="the S3 result store needs boto3: pip install 'hotpose[s3]'")
    moto_server = pytest.importorskip("moto.server", reason="the S3 tests need moto: pip install 'moto[server]'")
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                mp.delenv(name)
        mp.setenv("AWS_ACCESS_KEY_ID", "test")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "test")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        try:
            server.start()
        except OSError as e:
            pytest.skip(f"moto's S3 server did not start on 127.0.0.1: {e}")
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        try:
            boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
            yield url
        finally:
            server.stop()
