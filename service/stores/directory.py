"""Each job's files in a local directory: the single-server default (`<data_dir>/jobs/<id>/`).

A job's folder holds its upload (`input<suffix>`, until the job ends), `camera.json`, `meta.json`
and its frames as NDJSON: `frames.<attempt>.ndjson.part` while a worker writes them
(`frames.ndjson.part` for attempt 0), renamed `frames.ndjson` by `commit`. Readers follow the
growing file by byte offset (the cursor), across the rename.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

READ_LIMIT = 1 << 20  # bytes per `read_frames` call


class DirectoryResultStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = str(root)
        self.shared = False

    def dir(self, job_id: str) -> Path:
        return self.root / job_id

    def put_input(self, job_id: str, upload: Path, suffix: str) -> None:
        d = self.dir(job_id)
        d.mkdir(parents=True, exist_ok=True)
        shutil.move(upload, d / f"input{suffix}")

    def _input(self, job_id: str) -> Path | None:
        found = sorted(self.dir(job_id).glob("input*"))
        return found[0] if found else None

    def has_input(self, job_id: str) -> bool:
        return self._input(job_id) is not None

    @contextmanager
    def open_input(self, job_id: str) -> Iterator[Path]:
        path = self._input(job_id)
        if path is None:
            raise FileNotFoundError(f"job {job_id} has no upload")
        yield path

    def drop_input(self, job_id: str) -> None:
        path = self._input(job_id)
        if path is not None:
            path.unlink(missing_ok=True)

    def put_json(self, job_id: str, name: str, value: dict[str, Any]) -> None:
        d = self.dir(job_id)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{name}.tmp"
        tmp.write_text(json.dumps(value))
        tmp.replace(d / name)  # readers never see half a document

    def get_json(self, job_id: str, name: str) -> dict[str, Any] | None:
        path = self.dir(job_id) / name
        try:
            value: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        return value

    def delete_json(self, job_id: str, name: str) -> None:
        (self.dir(job_id) / name).unlink(missing_ok=True)

    def frames_writer(self, job_id: str, attempt: int = 0) -> _FileFrames:
        self.drop_frames(job_id)
        d = self.dir(job_id)
        d.mkdir(parents=True, exist_ok=True)
        return _FileFrames(_part(d, attempt), d / "frames.ndjson")

    def _frames(self, job_id: str, attempt: int) -> Path:
        d = self.dir(job_id)
        final = d / "frames.ndjson"
        return final if final.exists() else _part(d, attempt)

    def read_frames(self, job_id: str, cursor: int = 0, attempt: int = 0) -> tuple[bytes, int]:
        try:
            with open(self._frames(job_id, attempt), "rb") as f:
                f.seek(cursor)
                chunk = f.read(READ_LIMIT)
        except FileNotFoundError:  # not started, or renamed between the check and the open: read again later
            return b"", cursor
        cut = chunk.rfind(b"\n") + 1  # whole lines only
        if cut == 0 and len(chunk) == READ_LIMIT:
            raise ValueError(f"job {job_id}: a frame line longer than {READ_LIMIT} bytes")
        return chunk[:cut], cursor + cut

    def drop_frames(self, job_id: str) -> None:
        d = self.dir(job_id)
        for path in [d / "frames.ndjson", *d.glob("frames*.ndjson.part")]:
            path.unlink(missing_ok=True)

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self.dir(job_id), ignore_errors=True)

    def ids(self) -> set[str]:
        return {d.name for d in self.root.iterdir() if d.is_dir()}

    def close(self) -> None:
        pass


def _part(job_dir: Path, attempt: int) -> Path:
    return job_dir / ("frames.ndjson.part" if attempt == 0 else f"frames.{attempt}.ndjson.part")


class _FileFrames:
    def __init__(self, part: Path, final: Path) -> None:
        self.part = part
        self.final = final
        self._out: IO[str] = open(part, "w")  # noqa: SIM115 - closed by close()

    def write(self, line: str) -> None:
        self._out.write(line + "\n")
        self._out.flush()

    def commit(self) -> None:
        self._out.close()
        self.part.rename(self.final)

    def close(self) -> None:
        self._out.close()
