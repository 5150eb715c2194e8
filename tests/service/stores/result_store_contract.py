"""What every `ResultStore` does, whatever holds the files: `check_result_store(store)` runs it on a
store that tests of one implementation (directory, S3) have opened. It uses fresh job ids, asserts
only about those (the store may hold others) and deletes them at the end.
"""

from __future__ import annotations

import tempfile
import threading
import uuid
from pathlib import Path

from hotpose.service.stores.base import ResultStore, iter_frame_lines


def _lines(tag: str, n: int) -> list[str]:
    """`n` NDJSON lines of varied lengths, each naming `tag` and its number."""
    return [f'{{"attempt": "{tag}", "frame": {i}, "pad": "{"x" * (i * 7 % 90)}"}}' for i in range(n)]


def _read_all(store: ResultStore, job_id: str) -> list[str]:
    return [b.decode().removesuffix("\n") for b in iter_frame_lines(store, job_id)]


def check_result_store(store: ResultStore) -> None:
    assert isinstance(store.url, str) and store.url
    job, other = uuid.uuid4().hex, uuid.uuid4().hex
    try:
        _check_absent(store, job)
        _check_input(store, job)
        _check_json(store, job)
        _check_frames(store, job)
        _check_tailing(store, other)
        _check_delete(store, job, other)
    finally:
        store.delete(job)
        store.delete(other)


def _check_absent(store: ResultStore, job: str) -> None:
    assert job not in store.ids()
    assert not store.has_input(job)
    try:
        with store.open_input(job):
            raise AssertionError("open_input of a job without an upload did not raise")
    except FileNotFoundError:
        pass
    assert store.get_json(job, "meta.json") is None
    assert store.read_frames(job)[0] == b""
    store.drop_input(job)  # nothing to drop: no error
    store.delete_json(job, "meta.json")
    store.drop_frames(job)


def _check_input(store: ResultStore, job: str) -> None:
    data = bytes(range(256)) * 1000 + b"end"
    with tempfile.TemporaryDirectory() as tmp:
        upload = Path(tmp) / "received.part"
        upload.write_bytes(data)
        store.put_input(job, upload, ".mp4")
    assert store.has_input(job)
    assert job in store.ids()
    for _ in range(2):  # may be opened again (a job retaken)
        with store.open_input(job) as path:
            assert path.suffix == ".mp4"  # video decoders look at it
            assert path.read_bytes() == data
    store.drop_input(job)
    assert not store.has_input(job)
    try:
        with store.open_input(job):
            raise AssertionError("open_input after drop_input did not raise")
    except FileNotFoundError:
        pass


def _check_json(store: ResultStore, job: str) -> None:
    camera = {"focal_px": 1234.5, "fov_deg": None, "person_height_m": 1.7}
    meta = {"fps": 29.97, "width": 1920, "height": 1080, "joints": ["pelvis", "r_hip", "été"]}
    store.put_json(job, "camera.json", camera)
    store.put_json(job, "meta.json", {"fps": 1})
    store.put_json(job, "meta.json", meta)  # replaced
    assert store.get_json(job, "camera.json") == camera
    assert store.get_json(job, "meta.json") == meta
    store.delete_json(job, "camera.json")
    assert store.get_json(job, "camera.json") is None
    assert store.get_json(job, "meta.json") == meta


def _check_frames(store: ResultStore, job: str) -> None:
    first = _lines("first", 300)
    out = store.frames_writer(job)
    for line in first:
        out.write(line)
    out.commit()
    out.close()
    out.close()  # twice: no error, nothing written again
    assert _read_all(store, job) == first

    # retaken: an earlier attempt's frames are gone as soon as the new writer exists
    out = store.frames_writer(job)
    assert store.read_frames(job)[0] == b""
    second = _lines("second", 20)
    for line in second:
        out.write(line)
    out.close()  # a failure: no commit, what was written stays readable
    out.close()
    assert _read_all(store, job) == second
    assert store.get_json(job, "meta.json") is not None  # the frames' own files only

    store.drop_frames(job)
    assert store.read_frames(job)[0] == b""
    assert _read_all(store, job) == []


def _check_tailing(store: ResultStore, job: str) -> None:
    """A reader polling while a writer thread writes sees every line once, in order, as whole lines."""
    lines = _lines("tail", 400)
    done = threading.Event()
    failed: list[BaseException] = []

    def write() -> None:
        try:
            out = store.frames_writer(job)
            try:
                for i, line in enumerate(lines):
                    out.write(line)
                    if i % 50 == 49:
                        done.wait(0.01)  # let the reader in
                out.commit()
            finally:
                out.close()
        except BaseException as e:  # noqa: BLE001 - reported by the reader's thread
            failed.append(e)
        finally:
            done.set()

    seen: list[bytes] = []
    cursor = 0
    writer = threading.Thread(target=write)
    writer.start()
    try:
        while True:
            finished = done.is_set()  # before the read: a read after the end sees everything
            chunk, cursor = store.read_frames(job, cursor)
            assert chunk == b"" or chunk.endswith(b"\n"), "read_frames returned a partial line"
            seen += chunk.splitlines(keepends=True)
            if finished and not chunk:
                break
            if not chunk:
                done.wait(0.005)
    finally:
        writer.join(timeout=60)
    assert not failed, failed
    assert [b.decode().removesuffix("\n") for b in seen] == lines
    assert store.read_frames(job, cursor)[0] == b""  # nothing new after the end


def _check_delete(store: ResultStore, job: str, other: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        upload = Path(tmp) / "received.part"
        upload.write_bytes(b"video")
        store.put_input(job, upload, ".webm")
    out = store.frames_writer(job)
    out.write('{"frame": 0}')
    out.commit()
    out.close()
    assert {job, other} <= store.ids()

    store.delete(job)
    assert job not in store.ids()
    assert other in store.ids()  # only that job's files
    assert not store.has_input(job)
    assert store.get_json(job, "meta.json") is None
    assert store.read_frames(job)[0] == b""
    store.delete(job)  # already gone: no error
    assert _read_all(store, other) == _lines("tail", 400)
