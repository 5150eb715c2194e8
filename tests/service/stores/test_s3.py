"""The S3 result store against moto's server on loopback (`s3_endpoint` in conftest.py: real HTTP,
boto3 as in production)."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.service.stores.conftest import BUCKET
from tests.service.stores.result_store_contract import check_result_store

boto3 = pytest.importorskip("boto3", reason="the S3 result store needs boto3: pip install 'hotpose[s3]'")

from hotpose.service.stores import open_result_store  # noqa: E402 - after the skips
from hotpose.service.stores.base import iter_frame_lines  # noqa: E402
from hotpose.service.stores.s3 import ResultStoreUnavailableError, S3ResultStore  # noqa: E402


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=s3_endpoint)


def _store(s3_endpoint: str, **kw: Any) -> S3ResultStore:
    """A store under a fresh prefix: each test sees only its own jobs."""
    return S3ResultStore(f"s3://{BUCKET}/t-{uuid.uuid4().hex[:8]}", endpoint_url=s3_endpoint, **kw)


def _keys(s3: Any, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for p in pages for o in p.get("Contents", [])]


def _lines(n: int) -> list[str]:
    return [f'{{"frame": {i}, "people": [{"x" * (i % 40)!r}]}}' for i in range(n)]


def _read_all(store: S3ResultStore, job: str) -> list[str]:
    return [b.decode().removesuffix("\n") for b in iter_frame_lines(store, job)]


def test_contract(s3_endpoint: str) -> None:
    store = _store(s3_endpoint, chunk_bytes=1024)  # the frames span many chunks
    check_result_store(store)
    store.close()


def test_contract_at_the_bucket_root_with_the_endpoint_from_the_environment(
    s3_endpoint: str, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.create_bucket(Bucket="hotpose-root")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)  # boto3 reads it itself
    store = open_result_store("s3://hotpose-root", Path("/nonexistent"))
    assert isinstance(store, S3ResultStore)
    assert store.endpoint_url == s3_endpoint
    check_result_store(store)
    store.put_json("j1", "meta.json", {"fps": 30})
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="hotpose-root").get("Contents", [])] == ["jobs/j1/meta.json"]
    store.close()


def test_layout(s3_endpoint: str, s3: Any, tmp_path: Path) -> None:
    store = _store(s3_endpoint, chunk_bytes=64, flush_s=60)
    root = store.url.removeprefix(f"s3://{BUCKET}/") + "/jobs/j1/"
    upload = tmp_path / "u.part"
    upload.write_bytes(b"video")
    store.put_input("j1", upload, ".mov")
    assert not upload.exists()  # taken
    store.put_json("j1", "camera.json", {"focal_px": 1000.0})
    out = store.frames_writer("j1")
    lines = _lines(20)
    for line in lines:
        out.write(line)
    out.commit()
    out.close()

    keys = _keys(s3, root)
    chunks = [k for k in keys if k.startswith(root + "frames/")]
    assert sorted(set(keys) - set(chunks)) == [root + "camera.json", root + "frames.committed", root + "input.mov"]
    assert chunks == [f"{root}frames/{i:010d}.ndjson" for i in range(len(chunks))]
    assert len(chunks) > 3
    bodies = [s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in chunks]
    assert all(b.endswith(b"\n") for b in bodies)  # whole lines in each chunk
    assert b"".join(bodies).decode().splitlines() == lines
    store.close()


def test_a_chunk_is_put_once_flush_s_has_passed_at_a_write(s3_endpoint: str) -> None:
    store = _store(s3_endpoint, flush_s=0.2)
    out = store.frames_writer("j")
    out.write("1")
    assert store.read_frames("j") == (b"", 0)  # buffered
    time.sleep(0.25)
    out.write("2")
    assert store.read_frames("j") == (b"1\n2\n", 1)
    out.write("3")
    assert store.read_frames("j", 1) == (b"", 1)
    out.commit()
    assert store.read_frames("j", 1) == (b"3\n", 2)
    out.close()
    assert store.read_frames("j", 2) == (b"", 2)  # close after commit puts nothing
    with pytest.raises(ValueError, match="closed"):
        out.write("4")
    store.close()


def test_read_frames_returns_at_most_read_chunks_per_call(s3_endpoint: str) -> None:
    from hotpose.service.stores import s3 as s3_module

    store = _store(s3_endpoint, chunk_bytes=1)  # a chunk per line
    out = store.frames_writer("j")
    n = s3_module.READ_CHUNKS + 10
    for i in range(n):
        out.write(str(i))
    out.commit()
    out.close()
    chunk, cursor = store.read_frames("j")
    assert cursor == s3_module.READ_CHUNKS
    assert chunk.decode().splitlines() == [str(i) for i in range(s3_module.READ_CHUNKS)]
    chunk, cursor = store.read_frames("j", cursor)
    assert (chunk.decode().splitlines(), cursor) == ([str(i) for i in range(s3_module.READ_CHUNKS, n)], n)
    assert store.read_frames("j", cursor) == (b"", n)
    store.close()


def test_a_tailing_reader_sees_frames_while_they_are_written(s3_endpoint: str) -> None:
    store = _store(s3_endpoint, chunk_bytes=512, flush_s=0.05)
    lines = _lines(600)
    written = threading.Event()
    reads: list[tuple[bool, bytes]] = []  # (written done at the read, what it returned)

    def write() -> None:
        out = store.frames_writer("j")
        try:
            for i, line in enumerate(lines):
                out.write(line)
                if i % 100 == 99:
                    time.sleep(0.06)
            out.commit()
        finally:
            out.close()
            written.set()

    writer = threading.Thread(target=write)
    writer.start()
    cursor = 0
    while True:
        finished = written.is_set()
        chunk, cursor = store.read_frames("j", cursor)
        reads.append((finished, chunk))
        if finished and not chunk:
            break
        time.sleep(0.01)
    writer.join()
    assert b"".join(c for _, c in reads).decode().splitlines() == lines
    assert sum(1 for finished, c in reads if c and not finished) > 1  # seen while being written


def test_many_writers_share_one_store(s3_endpoint: str) -> None:
    store = _store(s3_endpoint, chunk_bytes=300)
    jobs = [f"j{i}" for i in range(6)]

    def write(job: str) -> None:
        out = store.frames_writer(job)
        for line in _lines(150):
            out.write(f"{job} {line}")
        out.commit()
        out.close()

    threads = [threading.Thread(target=write, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for job in jobs:
        assert _read_all(store, job) == [f"{job} {line}" for line in _lines(150)]
    assert store.ids() == set(jobs)
    store.close()


def test_a_retaken_job_starts_its_frames_afresh(s3_endpoint: str, s3: Any) -> None:
    store = _store(s3_endpoint, chunk_bytes=1)
    out = store.frames_writer("j")
    for i in range(10):
        out.write(f"old {i}")
    out.close()  # the worker died mid-job
    out = store.frames_writer("j")
    assert store.read_frames("j") == (b"", 0)
    out.write("new 0")
    out.write("new 1")
    out.commit()
    out.close()
    assert _read_all(store, "j") == ["new 0", "new 1"]
    root = store.url.removeprefix(f"s3://{BUCKET}/") + "/jobs/j/frames/"
    assert len(_keys(s3, root)) == 2  # no chunk of the old attempt is left after the new ones
    store.close()


def test_close_after_a_failure_keeps_what_was_written(s3_endpoint: str) -> None:
    store = _store(s3_endpoint, flush_s=60)
    out = store.frames_writer("j")
    with pytest.raises(RuntimeError, match="lifter crashed"):
        try:
            for i in range(5):
                out.write(str(i))
            raise RuntimeError("lifter crashed")
        finally:
            out.close()
    out.close()  # idempotent: nothing put twice
    assert _read_all(store, "j") == ["0", "1", "2", "3", "4"]
    assert store.read_frames("j") == (b"0\n1\n2\n3\n4\n", 1)
    store.close()


def test_input_roundtrip_keeps_suffix_and_bytes_and_removes_the_download(s3_endpoint: str, tmp_path: Path) -> None:
    store = _store(s3_endpoint)
    data = os.urandom(9 * 1024 * 1024)  # above boto3's 8 MiB multipart threshold
    upload = tmp_path / "abc.part"
    upload.write_bytes(data)
    store.put_input("j", upload, ".mkv")
    assert not upload.exists()
    with store.open_input("j") as path:
        assert path.suffix == ".mkv"
        assert path.read_bytes() == data
    assert not path.exists()
    with pytest.raises(KeyError), store.open_input("j") as path:
        raise KeyError("decoder failed")
    assert not path.exists()  # removed on an error too

    small = tmp_path / "b.part"
    small.write_bytes(b"second")
    store.put_input("j", small, ".mp4")  # another upload replaces the first, whatever its suffix
    with store.open_input("j") as path:
        assert (path.suffix, path.read_bytes()) == (".mp4", b"second")
    store.drop_input("j")
    assert not store.has_input("j")
    with pytest.raises(FileNotFoundError, match="j"):
        store.open_input("j").__enter__()
    store.close()


def test_delete_removes_every_object_in_batches(
    s3_endpoint: str, s3: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from hotpose.service.stores import s3 as s3_module

    monkeypatch.setattr(s3_module, "DELETE_BATCH", 7)
    store = _store(s3_endpoint, chunk_bytes=1)
    out = store.frames_writer("j")
    for i in range(30):
        out.write(str(i))
    out.commit()
    out.close()
    store.put_json("j", "meta.json", {"fps": 30})
    store.put_json("k", "meta.json", {"fps": 25})
    upload = tmp_path / "u.part"
    upload.write_bytes(b"v")
    store.put_input("j", upload, "")  # no suffix
    assert store.has_input("j")
    assert store.ids() == {"j", "k"}
    root = store.url.removeprefix(f"s3://{BUCKET}/") + "/jobs/"
    assert len(_keys(s3, root + "j/")) == 33  # 30 chunks, frames.committed, meta.json, the input

    store.delete("j")
    assert _keys(s3, root + "j/") == []
    assert store.ids() == {"k"}
    assert store.get_json("k", "meta.json") == {"fps": 25}
    store.close()


def test_a_missing_bucket_is_refused_at_once(s3_endpoint: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(ResultStoreUnavailableError, match="s3://no-such-bucket/x.*no such bucket"):
        S3ResultStore("s3://no-such-bucket/x", endpoint_url=s3_endpoint)
    assert time.monotonic() - t0 < 3


def test_an_endpoint_that_does_not_answer_is_refused_within_seconds(s3_endpoint: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free, and nothing listens once closed
    t0 = time.monotonic()
    with pytest.raises(ResultStoreUnavailableError, match=f"s3://{BUCKET} at http://127.0.0.1:{port}"):
        S3ResultStore(f"s3://{BUCKET}", endpoint_url=f"http://127.0.0.1:{port}")
    assert time.monotonic() - t0 < 8


def test_missing_credentials_are_named(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ResultStoreUnavailableError, match="no credentials"):
        S3ResultStore(f"s3://{BUCKET}", endpoint_url=s3_endpoint)


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "https://bucket/x", "s3://bucket/x?versionId=1"])
def test_a_malformed_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="expected s3://bucket"):
        S3ResultStore(url)


def test_a_reader_stops_at_a_missing_chunk(s3_endpoint: str, s3: Any) -> None:
    """Chunks seen out of order (a drop half done, a listing racing a put) are not read past a gap."""
    store = _store(s3_endpoint)
    root = store.url.removeprefix(f"s3://{BUCKET}/") + "/jobs/j/frames/"
    for i in (0, 1, 3):
        s3.put_object(Bucket=BUCKET, Key=f"{root}{i:010d}.ndjson", Body=f"{i}\n".encode())
    assert store.read_frames("j") == (b"0\n1\n", 2)
    assert store.read_frames("j", 2) == (b"", 2)
    s3.put_object(Bucket=BUCKET, Key=f"{root}{2:010d}.ndjson", Body=b"2\n")
    assert store.read_frames("j", 2) == (b"2\n3\n", 4)
    store.close()
