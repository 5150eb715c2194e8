"""A real, throw-away PostgreSQL server for the store tests (Debian's `postgresql` package: `make test`
installs it where it can; the tests skip with the reason where there is none).

initdb and postgres refuse to run as root, so as root the server runs as the `postgres` user (or
`nobody`) through `runuser`, in a temporary directory that user owns; it listens on 127.0.0.1 only,
on a free port, with trust authentication, and is stopped and deleted after the session.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # psycopg is imported where a PostgreSQL test needs it: the S3 tests here run without it
    from hotpose.service.stores.postgres import PostgresJobStore

DATABASE = "hotpose_test"
SUPERUSER = "hotpose"


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
        import psycopg

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
def job_store(postgres_url: str) -> Iterator[PostgresJobStore]:
    """A store on an empty database (the table made afresh: no rows of another test)."""
    from hotpose.service.stores.postgres import PostgresJobStore

    drop_jobs_table(postgres_url)
    store = PostgresJobStore(postgres_url)
    yield store
    store.close()
