"""`DirectoryResultStore`: the behaviour every `ResultStore` shares, and its own file layout: frames
written to `frames.ndjson.part`, renamed `frames.ndjson` by `commit`, with a reader's cursor (a byte
offset) carrying on across the rename."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotpose.service.stores import open_result_store
from hotpose.service.stores.base import iter_frame_lines
from hotpose.service.stores.directory import DirectoryResultStore
from tests.service.stores.result_store_contract import check_result_store


@pytest.fixture
def store(tmp_path: Path) -> DirectoryResultStore:
    return DirectoryResultStore(tmp_path / "jobs")


def test_contract(store: DirectoryResultStore) -> None:
    check_result_store(store)
    assert list(store.root.iterdir()) == []  # the contract's jobs deleted with their folders


@pytest.mark.parametrize("url", [None, "{root}", "file://{root}"])
def test_open_result_store_picks_a_directory(tmp_path: Path, url: str | None) -> None:
    root = tmp_path / "results"
    store = open_result_store(url.format(root=root) if url else None, tmp_path / "data")
    assert isinstance(store, DirectoryResultStore)
    assert store.root == (root if url else tmp_path / "data" / "jobs")
    assert store.root.is_dir()


def test_layout(store: DirectoryResultStore, tmp_path: Path) -> None:
    upload = tmp_path / "received.part"
    upload.write_bytes(b"video")
    store.put_input("j", upload, ".mov")
    assert not upload.exists()  # moved, not copied
    store.put_json("j", "camera.json", {"focal_px": 1000.0})
    out = store.frames_writer("j")
    out.write('{"frame": 0}')
    out.commit()
    out.close()
    folder = tmp_path / "jobs" / "j"
    assert sorted(p.name for p in folder.iterdir()) == ["camera.json", "frames.ndjson", "input.mov"]
    assert (folder / "frames.ndjson").read_bytes() == b'{"frame": 0}\n'
    store.drop_input("j")
    assert sorted(p.name for p in folder.iterdir()) == ["camera.json", "frames.ndjson"]


def test_commit_renames_the_frames_and_a_reader_carries_on_across_the_rename(store: DirectoryResultStore) -> None:
    folder = store.dir("j")
    out = store.frames_writer("j")
    for i in range(10):
        out.write(f'{{"frame": {i}}}')
    assert sorted(p.name for p in folder.iterdir()) == ["frames.ndjson.part"]
    chunk, cursor = store.read_frames("j")
    assert chunk.decode().splitlines() == [f'{{"frame": {i}}}' for i in range(10)]
    assert cursor == len(chunk)  # a byte offset

    for i in range(10, 15):
        out.write(f'{{"frame": {i}}}')
    out.commit()
    out.close()
    assert sorted(p.name for p in folder.iterdir()) == ["frames.ndjson"]
    chunk, cursor = store.read_frames("j", cursor)  # the same offset, in the renamed file
    assert chunk.decode().splitlines() == [f'{{"frame": {i}}}' for i in range(10, 15)]
    assert store.read_frames("j", cursor) == (b"", cursor)
    assert [line.decode() for line in iter_frame_lines(store, "j")] == [f'{{"frame": {i}}}\n' for i in range(15)]


def test_a_read_racing_the_rename_returns_nothing_and_the_next_read_goes_on(
    store: DirectoryResultStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = store.frames_writer("j")
    out.write("0")
    chunk, cursor = store.read_frames("j")
    out.write("1")
    part = store.dir("j") / "frames.ndjson.part"
    out.commit()  # renamed after the reader chose the path and before it opened it:
    with monkeypatch.context() as m:
        m.setattr(store, "_frames", lambda job_id, attempt: part)
        assert store.read_frames("j", cursor) == (b"", cursor)
    assert store.read_frames("j", cursor) == (b"1\n", 4)
    out.close()


def test_a_line_being_written_is_not_read_until_it_is_whole(store: DirectoryResultStore) -> None:
    out = store.frames_writer("j")
    out.write("0")
    part = store.dir("j") / "frames.ndjson.part"
    with part.open("ab") as f:  # half a line, as another process's reader may find the file mid-write
        f.write(b'{"fra')
    assert store.read_frames("j") == (b"0\n", 2)
    with part.open("ab") as f:
        f.write(b'me": 1}\n')
    assert store.read_frames("j", 2) == (b'{"frame": 1}\n', 15)
    out.close()


def test_ids_are_the_job_folders(store: DirectoryResultStore) -> None:
    store.put_json("a", "meta.json", {})
    store.frames_writer("b").close()
    (store.root / "stray.txt").write_text("not a job")
    assert store.ids() == {"a", "b"}
    store.delete("a")
    assert store.ids() == {"b"} and not store.dir("a").exists()
