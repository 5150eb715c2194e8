"""Each job's files in S3-compatible object storage (`HOTPOSE_RESULTS=s3://bucket/prefix`), shared by
the servers of a deployment.

Layout under `<prefix>/jobs/<job_id>/`: the upload `input<suffix>` (until the job ends), the JSON
documents by name (`camera.json`, `meta.json`) and the frames as numbered NDJSON chunks
`frames-<attempt>/<10-digit index>.ndjson` (`frames/` for attempt 0), each holding whole lines, and
`frames.committed` naming the attempt whose frames are the result. Objects cannot be appended to, so a
writer buffers lines and puts a new chunk when `chunk_bytes` have gathered, or with the first line
written `flush_s` or more after its last put; `commit` and `close` put the rest. A reader's cursor
is the number of chunks it has read.

The endpoint is `endpoint_url` when given, else boto3's own configuration: the AWS_ENDPOINT_URL_S3
or AWS_ENDPOINT_URL environment variables (MinIO, Ceph, moto), else AWS. Credentials come from
boto3's default chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws, an instance role).
`open_input` downloads the upload to a temporary file under TMPDIR for the time of the `with`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError("HOTPOSE_RESULTS=s3://... needs boto3: pip install 'hotpose[s3]'") from e

from hotpose.service.stores.base import StoreUnavailableError

READ_CHUNKS = 64  # chunks per `read_frames` call (at most 64 * chunk_bytes)
DELETE_BATCH = 1000  # keys per DeleteObjects request (S3's limit)
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}

# Fail within seconds on an unreachable endpoint instead of boto3's default minutes of retries.
_CONFIG = Config(connect_timeout=3, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})


class ResultStoreUnavailableError(StoreUnavailableError):
    """The bucket cannot be used: it does not exist, the endpoint does not answer, or access is denied."""


class S3ResultStore:
    """Thread-safe (one boto3 client, shared); each `frames_writer` is used by one thread."""

    def __init__(
        self, url: str, *, endpoint_url: str | None = None, flush_s: float = 0.5, chunk_bytes: int = 256 * 1024
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"HOTPOSE_RESULTS={url}: expected s3://bucket or s3://bucket/prefix")
        self.url = url
        self.shared = True
        self.bucket = parts.netloc
        prefix = parts.path.strip("/")
        self._root = f"{prefix}/jobs/" if prefix else "jobs/"
        self.flush_s = flush_s
        self.chunk_bytes = chunk_bytes
        self._s3: Any = boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=_CONFIG)
        self.endpoint_url: str = self._s3.meta.endpoint_url
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as e:
            self._s3.close()
            raise ResultStoreUnavailableError(f"{url} at {self.endpoint_url}: {_reason(e)}") from e

    def _key(self, job_id: str, name: str = "") -> str:
        if not job_id or "/" in job_id:
            raise ValueError(f"job id {job_id!r}: expected a non-empty name without '/'")
        return f"{self._root}{job_id}/{name}"

    def _keys(self, prefix: str, start_after: str = "", limit: int | None = None) -> Iterator[str]:
        """Keys under `prefix` in order, after `start_after`; at most `limit`."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if start_after:
            args["StartAfter"] = start_after
        if limit is not None:
            args["PaginationConfig"] = {"MaxItems": limit, "PageSize": min(limit, 1000)}
        for page in self._s3.get_paginator("list_objects_v2").paginate(**args):
            for obj in page.get("Contents", []):
                key: str = obj["Key"]
                yield key

    def _delete_prefix(self, prefix: str) -> None:
        batch: list[str] = []
        for key in self._keys(prefix):
            batch.append(key)
            if len(batch) == DELETE_BATCH:
                self._delete_keys(batch)
                batch = []
        if batch:
            self._delete_keys(batch)

    def _delete_keys(self, keys: list[str]) -> None:
        out = self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
        errors = [e for e in out.get("Errors", []) if e.get("Code") not in _NOT_FOUND]
        if errors:
            e = errors[0]
            raise OSError(f"{self.url}: could not delete {e['Key']} ({e.get('Code')}: {e.get('Message')})")

    def _inputs(self, job_id: str) -> list[str]:
        """The keys of the job's upload (one, unless a put was interrupted)."""
        prefix = self._key(job_id, "input")
        return [k for k in self._keys(prefix) if k[len(prefix) :].startswith(".") or k == prefix]

    def put_input(self, job_id: str, upload: Path, suffix: str) -> None:
        if "/" in suffix:
            raise ValueError(f"upload suffix {suffix!r}: expected an extension such as '.mp4'")
        key = self._key(job_id, f"input{suffix}")
        self._s3.upload_file(str(upload), self.bucket, key)  # multipart above 8 MiB
        stale = [k for k in self._inputs(job_id) if k != key]
        if stale:
            self._delete_keys(stale)
        upload.unlink(missing_ok=True)

    def has_input(self, job_id: str) -> bool:
        return bool(self._inputs(job_id))

    @contextmanager
    def open_input(self, job_id: str) -> Iterator[Path]:
        keys = self._inputs(job_id)
        if not keys:
            raise FileNotFoundError(f"job {job_id} has no upload in {self.url}")
        key = keys[0]
        suffix = key.rsplit("/", 1)[1].removeprefix("input")  # decoders look at the extension
        fd, name = tempfile.mkstemp(prefix=f"hotpose-{job_id}-", suffix=suffix)
        os.close(fd)
        path = Path(name)
        try:
            try:
                self._s3.download_file(self.bucket, key, name)
            except ClientError as e:
                if _code(e) in _NOT_FOUND:  # deleted between the listing and the download
                    raise FileNotFoundError(f"job {job_id} has no upload in {self.url}") from e
                raise
            yield path
        finally:
            path.unlink(missing_ok=True)

    def drop_input(self, job_id: str) -> None:
        keys = self._inputs(job_id)
        if keys:
            self._delete_keys(keys)

    def put_json(self, job_id: str, name: str, value: dict[str, Any]) -> None:
        body = json.dumps(value).encode()
        self._s3.put_object(Bucket=self.bucket, Key=self._key(job_id, name), Body=body, ContentType="application/json")

    def get_json(self, job_id: str, name: str) -> dict[str, Any] | None:
        body = self._get(self._key(job_id, name))
        if body is None:
            return None
        value: dict[str, Any] = json.loads(body)
        return value

    def _get(self, key: str) -> bytes | None:
        try:
            body: bytes = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as e:
            if _code(e) in _NOT_FOUND:
                return None
            raise
        return body

    def delete_json(self, job_id: str, name: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=self._key(job_id, name))

    def frames_writer(self, job_id: str, attempt: int = 0) -> S3Frames:
        self.drop_frames(job_id)
        prefix = self._key(job_id, _frames_dir(attempt))
        mark = self._key(job_id, COMMITTED)
        return S3Frames(self._s3, self.bucket, prefix, self.flush_s, self.chunk_bytes, mark, attempt)

    def read_frames(self, job_id: str, cursor: int = 0, attempt: int = 0) -> tuple[bytes, int]:
        committed = self._get(self._key(job_id, COMMITTED))  # the attempt whose frames are the result
        if committed is not None:
            attempt = int(committed)
        prefix = self._key(job_id, _frames_dir(attempt))
        start_after = _chunk_key(prefix, cursor - 1) if cursor > 0 else ""
        out: list[bytes] = []
        for key in self._keys(prefix, start_after, limit=READ_CHUNKS):
            if key != _chunk_key(prefix, cursor):  # a gap (the frames being started afresh): read again later
                break
            body = self._get(key)
            if body is None:  # dropped meanwhile
                break
            out.append(body)
            cursor += 1
        return b"".join(out), cursor

    def drop_frames(self, job_id: str) -> None:
        self._delete_prefix(self._key(job_id, "frames"))  # every attempt's, and the commit mark

    def delete(self, job_id: str) -> None:
        self._delete_prefix(self._key(job_id))

    def ids(self) -> set[str]:
        found: set[str] = set()
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._root, Delimiter="/")
        for page in pages:
            for p in page.get("CommonPrefixes", []):
                found.add(p["Prefix"][len(self._root) :].rstrip("/"))
        return found

    def close(self) -> None:
        self._s3.close()


class S3Frames:
    """A job's frames being written as numbered chunk objects; one writer thread."""

    def __init__(
        self, s3: Any, bucket: str, prefix: str, flush_s: float, chunk_bytes: int, mark: str, attempt: int
    ) -> None:
        self._s3 = s3  # the store's client
        self._bucket = bucket
        self._prefix = prefix
        self._mark = mark  # the object naming the committed attempt
        self._attempt = attempt
        self._flush_s = flush_s
        self._chunk_bytes = chunk_bytes
        self._lines: list[bytes] = []
        self._size = 0  # bytes in `_lines`
        self._index = 0  # the next chunk's number
        self._last_put = time.monotonic()
        self._closed = False

    def write(self, line: str) -> None:
        if self._closed:
            raise ValueError(f"frames writer {self._prefix} is closed")
        data = (line + "\n").encode()
        self._lines.append(data)
        self._size += len(data)
        if self._size >= self._chunk_bytes or time.monotonic() - self._last_put >= self._flush_s:
            self._put()

    def commit(self) -> None:
        if self._closed:
            raise ValueError(f"frames writer {self._prefix} is closed")
        self._put()
        self._s3.put_object(Bucket=self._bucket, Key=self._mark, Body=str(self._attempt).encode())

    def close(self) -> None:
        if not self._closed:
            self._put()  # what was written before a failure stays readable
            self._closed = True

    def _put(self) -> None:
        self._last_put = time.monotonic()
        if not self._lines:
            return
        self._s3.put_object(
            Bucket=self._bucket,
            Key=_chunk_key(self._prefix, self._index),
            Body=b"".join(self._lines),
            ContentType="application/x-ndjson",
        )
        self._index += 1
        self._lines = []
        self._size = 0


COMMITTED = "frames.committed"  # holds the number of the attempt whose frames are the job's result


def _frames_dir(attempt: int) -> str:
    """Where an attempt's chunks go: `frames/` for attempt 0, `frames-<attempt>/` otherwise."""
    return "frames/" if attempt == 0 else f"frames-{attempt}/"


def _chunk_key(prefix: str, index: int) -> str:
    return f"{prefix}{index:010d}.ndjson"


def _code(e: Any) -> str:
    code: str = e.response.get("Error", {}).get("Code", "")
    return code


def _reason(e: Exception) -> str:
    if isinstance(e, ClientError):
        code = _code(e)
        if code in _NOT_FOUND:
            return "no such bucket (create it, or check the name and the endpoint)"
        if code in ("403", "AccessDenied", "Forbidden"):
            return "access denied (check the credentials and the bucket's policy)"
        return f"{code}: {e}"
    if isinstance(e, NoCredentialsError):
        return "no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
    return f"{type(e).__name__}: {e}"
