"""Faults a real deployment meets: one client taking every slot, a killed server, a client that goes
away or trickles its upload, a full disk. Each leaves the service consistent: no half-stored job or
file, no lost job, a reason that says what happened."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.websockets import WebSocketDisconnect

from hotpose.service.app import create_app
from hotpose.service.bench import free_port
from hotpose.service.deps import AppState, client_id
from hotpose.service.jobs import STATUSES, JobRunner, Jobs
from hotpose.service.settings import Settings
from hotpose.service.stores.directory import _FileFrames
from tests.conftest import astronaut_frames, serve
from tests.service.test_app import submit, wait_job
from tests.service.test_jobs import LIMITS, ONE, SlowPipeline, queue_clip, wait_status


def _state(app: object) -> AppState:
    state: AppState = app.state.hotpose  # type: ignore[attr-defined]
    return state


def _nothing_kept(settings: Settings, state: AppState) -> None:
    """No job, no job folder, no upload being received, no upload counted."""
    assert state.jobs is not None
    assert state.jobs.with_status(*STATUSES) == []
    assert list((settings.data_dir / "jobs").iterdir()) == []
    assert list((settings.data_dir / "uploads").iterdir()) == []
    assert not state.uploads


# --- per-key limits -------------------------------------------------------------------------


def test_who_a_client_is_for_the_limits(make_settings: Callable[..., Settings]) -> None:
    def request(host: str, headers: dict[str, str] | None = None, query: bytes = b"") -> Request:
        raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        return Request({"type": "http", "client": (host, 5000), "headers": raw, "query_string": query})

    keyed = make_settings(api_keys="secret-a,secret-b")
    a = client_id(keyed, request("10.0.0.7", {"Authorization": "Bearer secret-a"}))
    assert a == "key:" + hashlib.sha256(b"secret-a").hexdigest()[:16]  # a hash of the key, never the key
    assert client_id(keyed, request("10.0.0.8", query=b"api_key=secret-a")) == a  # the key, wherever from
    assert client_id(keyed, request("127.0.0.1", {"Authorization": "Bearer secret-b"})) not in (a, None)
    open_server = make_settings()
    far, near = client_id(open_server, request("10.0.0.7")), client_id(open_server, request("10.0.0.8"))
    assert far is not None and far.startswith("addr:") and "10.0.0.7" not in far and far != near
    assert client_id(open_server, request("127.0.0.1")) is None  # the server's own machine: no per-client limit
    assert client_id(open_server, request("::1")) is None


def test_one_key_cannot_take_every_pending_job_slot(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(JobRunner, "submit", lambda self, job_id: None)  # jobs stay queued
    settings = make_settings(api_keys="secret-a,secret-b", max_pending_jobs=3, max_pending_jobs_per_key=2)
    a, b = {"Authorization": "Bearer secret-a"}, {"Authorization": "Bearer secret-b"}
    clip = {"file": ("clip.mp4", b"x" * 1000, "video/mp4")}
    app = create_app(settings)
    with TestClient(app) as client:
        first = client.post("/v1/clips", files=clip, headers=a)
        assert client.post("/v1/clips", files=clip, headers=a).status_code == 202
        over = client.post("/v1/clips", files=clip, headers=a)
        assert over.status_code == 429 and over.headers["retry-after"] == "30"
        assert over.json() == {
            "detail": "too many clips waiting for this API key (HOTPOSE_MAX_PENDING_JOBS_PER_KEY=2); "
            "try again when one of them has finished"
        }
        assert client.post("/v1/clips", files=clip, headers=b).status_code == 202  # another key still gets in
        everyone = client.post("/v1/clips", files=clip, headers=b)
        assert everyone.status_code == 429 and "(limit 3)" in everyone.json()["detail"]
        job = _state(app).jobs.get(first.json()["job_id"])  # type: ignore[union-attr]
        assert job is not None and job.owner == "key:" + hashlib.sha256(b"secret-a").hexdigest()[:16]
        assert client.delete(f"/v1/jobs/{job.job_id}", headers=a).status_code == 200  # a slot comes back
        assert client.post("/v1/clips", files=clip, headers=a).status_code == 202

    # without keys, the limit holds per client address (the test client's is not loopback)
    with TestClient(create_app(make_settings(data_dir=settings.data_dir / "open", max_pending_jobs_per_key=1))) as c:
        assert c.post("/v1/clips", files=clip).status_code == 202
        over = c.post("/v1/clips", files=clip)
        assert over.status_code == 429 and "for this client address" in over.json()["detail"]


def test_one_key_cannot_take_every_stream(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(api_keys="secret-a,secret-b", max_streams=3, max_streams_per_key=1)
    app = create_app(settings)
    with TestClient(app) as client:
        with client.websocket_connect("/v1/stream?api_key=secret-a") as first:
            first.send_text(json.dumps({"type": "config"}))
            assert first.receive_json()["type"] == "ready"
            with client.websocket_connect("/v1/stream?api_key=secret-a") as second:
                with pytest.raises(WebSocketDisconnect) as e:
                    second.receive_json()
                assert e.value.code == 1013
                assert e.value.reason == "too many streams for this API key (HOTPOSE_MAX_STREAMS_PER_KEY=1)"
            with client.websocket_connect("/v1/stream", headers={"Authorization": "Bearer secret-b"}) as other:
                other.send_text(json.dumps({"type": "config"}))
                assert other.receive_json()["type"] == "ready"
        # the first one closed: its key gets a stream again, and nothing is left counted once all are closed
        with client.websocket_connect("/v1/stream?api_key=secret-a") as again:
            again.send_text(json.dumps({"type": "config"}))
            assert again.receive_json()["type"] == "ready"
    state = _state(app)
    assert state.streams == set() and not state.client_streams


# --- uploads over a real socket: trickling, parallel, abandoned ------------------------------

BOUNDARY = "b0undary"


def _upload_head(length: int, key: str | None = None) -> bytes:
    """A request line, headers and the start of a multipart body whose file part is `length` bytes long."""
    preamble = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="clip.mp4"\r\n\r\n'.encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    headers = [
        "POST /v1/clips HTTP/1.1", "Host: 127.0.0.1",
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
        f"Content-Length: {len(preamble) + length + len(tail)}",
        *([f"Authorization: Bearer {key}"] if key else []),
    ]  # fmt: skip
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + preamble


@contextmanager
def _raw(url: str) -> Iterator[socket.socket]:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    try:
        yield sock
    finally:
        sock.close()


def _wait(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _trickle_until_answered(sock: socket.socket, every_s: float, timeout: float = 60) -> bytes:
    """Send one byte every `every_s` until the server answers; returns the answer."""
    end = time.monotonic() + timeout
    answer = b""
    sock.settimeout(every_s)
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            try:
                sock.sendall(b"\0")
            except OSError:  # the server closed its side: read what it said
                sock.settimeout(5)
                continue
            continue
        if not chunk:
            return answer
        answer += chunk
    raise AssertionError(f"no answer to a trickling upload within {timeout} s: {answer!r}")


def test_a_trickling_upload_is_cut_off_and_nothing_is_kept(make_settings: Callable[..., Settings]) -> None:
    # 8 kbit/s = 1000 bytes/s after a 1 s grace; the client sends 10 bytes/s
    settings = make_settings(min_upload_kbps=8.0, upload_grace_s=1.0)
    app = create_app(settings)
    with serve(app) as url, _raw(url) as sock:
        sock.sendall(_upload_head(100_000))
        answer = _trickle_until_answered(sock, every_s=0.1)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), answer[:300]
        assert b"connection: close" in head.lower()
        assert json.loads(body) == {
            "detail": "upload slower than 8 kbit/s (HOTPOSE_MIN_UPLOAD_KBPS) after its first 1 s; nothing was kept: "
            "send it again over a faster connection"
        }
        _nothing_kept(settings, _state(app))
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_uploads_being_received_count_against_the_limit(make_settings: Callable[..., Settings]) -> None:
    """Parallel uploads cannot pass the per-key limit together: one still being received holds its slot."""
    settings = make_settings(api_keys="secret-a", max_pending_jobs_per_key=1, min_upload_kbps=0.0)
    app = create_app(settings)
    state = _state(app)
    with serve(app) as url, _raw(url) as sock:
        sock.sendall(_upload_head(100_000, key="secret-a") + b"\0" * 1000)
        _wait(lambda: bool(state.uploads), "the upload to be received")
        r = httpx.post(
            f"{url}/v1/clips", files={"file": ("b.mp4", b"x" * 100)}, headers={"Authorization": "Bearer secret-a"}
        )
        assert r.status_code == 429 and "HOTPOSE_MAX_PENDING_JOBS_PER_KEY=1" in r.json()["detail"]


def test_a_client_that_goes_away_mid_upload_leaves_nothing(
    make_settings: Callable[..., Settings], astronaut_clip: Path
) -> None:
    settings = make_settings()
    app = create_app(settings)
    state = _state(app)
    with serve(app) as url:
        for sent in (1000, 3 << 20):  # held in memory; spooled to a file (the form parser's limit is 1 MB)
            with _raw(url) as sock:
                sock.sendall(_upload_head(8 << 20))
                sock.sendall(b"\0" * sent)
                _wait(lambda: bool(state.uploads), "the upload to be received")
            _wait(lambda: not state.uploads, "the server to notice the client went away")
            _nothing_kept(settings, state)
        with httpx.Client(base_url=url, timeout=60) as client:  # and the server goes on serving
            r = client.post("/v1/clips", files={"file": ("clip.mp4", astronaut_clip.read_bytes(), "video/mp4")})
            assert r.status_code == 202


def test_an_upload_to_a_full_disk_gets_507_and_nothing_is_kept(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("hotpose.service.routes.clips._copy_upload", full)
    settings = make_settings()
    app = create_app(settings)
    with TestClient(app) as client:
        r = client.post("/v1/clips", files={"file": ("clip.mp4", b"x" * 1000, "video/mp4")})
        assert r.status_code == 507
        assert r.json() == {"detail": "the server's disk is full: the upload was not kept; try again later"}
        _nothing_kept(settings, _state(app))


def test_what_a_killed_server_left_half_written_is_deleted_at_start(
    make_settings: Callable[..., Settings], astronaut_clip: Path
) -> None:
    settings = make_settings()
    store = Jobs.open(settings.data_dir)
    (store.staging / "0123.part").write_bytes(b"half an upload")  # killed while receiving it
    (settings.data_dir / "jobs" / "4567").mkdir()  # killed while making it a job, before its row
    (settings.data_dir / "jobs" / "4567" / "input.mp4").write_bytes(b"a whole upload")
    kept = queue_clip(store, astronaut_clip)  # a job it had accepted
    store.close()
    with TestClient(create_app(settings)) as client:
        assert wait_job(client, kept)["status"] == "done"
        assert list((settings.data_dir / "uploads").iterdir()) == []
        assert [d.name for d in (settings.data_dir / "jobs").iterdir()] == [kept]


# --- a full disk ----------------------------------------------------------------------------


def _fail_writes_of_job(monkeypatch: pytest.MonkeyPatch, nth: int, after_frames: int) -> None:
    """The `nth` job (0-based, in the order they start) hits a full disk after writing `after_frames` frames."""
    write = _FileFrames.write
    started: list[Path] = []

    def failing(self: _FileFrames, line: str) -> None:
        if self.part not in started:
            started.append(self.part)
        if started.index(self.part) == nth and json.loads(line)["index"] >= after_frames:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.part))
        write(self, line)

    monkeypatch.setattr(_FileFrames, "write", failing)


def test_a_full_disk_fails_that_job_and_loses_no_other(
    make_settings: Callable[..., Settings], astronaut_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fail_writes_of_job(monkeypatch, nth=1, after_frames=3)
    settings = make_settings(job_workers=1)
    with TestClient(create_app(settings)) as client:
        before, full, after = (submit(client, astronaut_clip.read_bytes(), f"{n}.mp4") for n in ("a", "b", "c"))
        failed = wait_job(client, full)
        assert failed["status"] == "failed"
        assert failed["error"] == "the server's disk is full: the results could not be written; try again later"
        assert str(settings.data_dir) not in json.dumps(client.get(f"/v1/jobs/{full}").json())
        assert list((settings.data_dir / "jobs" / full).iterdir()) == [settings.data_dir / "jobs" / full / "meta.json"]
        result = client.get(f"/v1/jobs/{full}/result")
        assert result.status_code == 409 and "disk is full" in result.json()["detail"]
        for job_id in (before, after):
            job = wait_job(client, job_id)
            assert job["status"] == "done" and job["frames_done"] == 30, job


def test_a_worker_whose_bookkeeping_fails_goes_on_with_the_next_job(
    tmp_path: Path, astronaut_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk so full that even SQLite cannot record the failure: the worker thread survives it."""
    _fail_writes_of_job(monkeypatch, nth=0, after_frames=0)
    store = Jobs.open(tmp_path)
    update = store.table.update

    def full_db(job_id: str, **fields: object) -> bool:
        if fields.get("status") == "failed":
            raise sqlite3.OperationalError("database or disk is full")
        return update(job_id, **fields)  # type: ignore[arg-type]

    monkeypatch.setattr(store.table, "update", full_db)
    runner = JobRunner(store, lambda camera: SlowPipeline(threading.Event(), 0.0), LIMITS, ONE)  # type: ignore[arg-type, return-value]
    stuck, next_one = queue_clip(store, astronaut_clip), queue_clip(store, astronaut_clip)
    runner.start()
    assert wait_status(store, next_one, ("done", "failed")) == "done"
    job = store.get(stuck)
    assert job is not None and job.status == "running"  # unrecorded: queued again at the next start
    runner.close()
    store.close()


# --- a killed server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 frames (the astronaut panning there and back): long enough to be killed mid-job."""
    path = tmp_path_factory.mktemp("clips") / "long.mp4"
    frames = astronaut_frames()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (512, 512))  # type: ignore[attr-defined]
    for f in [*frames, *frames[::-1]]:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@contextmanager
def _server_process(data_dir: Path, weights: Path, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`hotpose serve` in its own process on a free loopback port; yields it and its URL once ready."""
    exe = shutil.which("hotpose", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "hotpose.service.cli"]
    port = free_port()
    env = {
        **os.environ, "HOTPOSE_DATA_DIR": str(data_dir), "HOTPOSE_DEVICE": "cpu", "HOTPOSE_LIFTER": "hot_mixste",
        "HOTPOSE_LIFTER_WEIGHTS": str(weights), "HOTPOSE_HOST": "127.0.0.1", "HOTPOSE_PORT": str(port),
        "HOTPOSE_API_KEYS": "",
    }  # fmt: skip
    with open(log, "ab") as out:
        proc = subprocess.Popen([*cmd, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 180
        while True:
            assert proc.poll() is None, f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < end, f"the server did not get ready:\n{log.read_text()[-3000:]}"
            time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def _job_when(url: str, job_id: str, done: Callable[[dict], bool], timeout: float = 300) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job: dict = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
        if done(job):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id}: timed out, last seen {job}")


@pytest.mark.slow
def test_a_job_killed_mid_run_is_rerun_after_a_restart_to_the_same_result(
    tmp_path: Path, tiny_weights: Path, long_clip: Path
) -> None:
    data, log = tmp_path / "data", tmp_path / "server.log"
    with _server_process(data, tiny_weights, log) as (proc, url):
        r = httpx.post(f"{url}/v1/clips", files={"file": ("long.mp4", long_clip.read_bytes(), "video/mp4")}, timeout=60)
        job_id = r.json()["job_id"]
        _job_when(url, job_id, lambda j: j["status"] != "queued" and j["frames_done"] > 0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    store = Jobs.open(data)  # what the killed server left
    killed = store.get(job_id)
    store.close()
    assert killed is not None and killed.status == "running", f"the job was not killed mid-run: {killed}"
    assert (data / "jobs" / job_id / f"frames.{killed.attempts}.ndjson.part").exists()  # its attempt's frames

    with _server_process(data, tiny_weights, log) as (_, url):
        rerun = _job_when(url, job_id, lambda j: j["status"] in ("done", "failed"))
        assert rerun["status"] == "done" and rerun["frames_done"] == 60, rerun
        r = httpx.post(f"{url}/v1/clips", files={"file": ("long.mp4", long_clip.read_bytes(), "video/mp4")}, timeout=60)
        clean_id = r.json()["job_id"]
        assert _job_when(url, clean_id, lambda j: j["status"] in ("done", "failed"))["status"] == "done"
        rerun_result = httpx.get(f"{url}/v1/jobs/{job_id}/result", timeout=60).json()
        clean_result = httpx.get(f"{url}/v1/jobs/{clean_id}/result", timeout=60).json()
    assert [f["index"] for f in rerun_result["frames"]] == list(range(60))
    assert rerun_result == clean_result  # the same frames, people and values: the pipeline is deterministic
