"""What `PoseClient` and `AsyncPoseClient` share: URLs, headers, error mapping, retry delays,
upload progress, and the live-stream protocol (encoding frames, decoding messages). No I/O here."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import numpy as np
from pydantic import ValidationError

from hotpose_client import schema
from hotpose_client.errors import (
    AuthError,
    ConnectionError,
    HotposeError,
    JobFailed,
    ProtocolError,
    RequestError,
    ServerBusy,
    ServerError,
)
from hotpose_client.progress import StageBars
from hotpose_client.results import Frame
from hotpose_client.schema import CLOSE_NORMAL, CLOSE_OVERLOADED, CLOSE_POLICY

Progress = bool | Callable[[str, float], None]  # True: a bar on stderr; a callable gets (stage, 0..1)

# Failures after which nothing reached the server: safe to retry any call.
CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout)
# Failures that may have happened after the server acted: retried for idempotent calls only.
TRANSIENT_ERRORS = (*CONNECT_ERRORS, httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.WriteError)

UPLOAD_TIMEOUT = 600.0  # seconds for one upload request at least (large files)

SERVER_MESSAGE_TYPES = {str(m.model_fields["type"].default) for m in schema.SERVER_MESSAGES}


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    status: str  # queued | running | done | failed
    progress: float  # 0..1
    frames_done: int
    frames_total: int
    error: str | None
    filename: str

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobStatus:
        """From the server's `schema.JobResponse`."""
        try:
            j = schema.JobResponse.model_validate(d)
        except ValidationError as e:
            raise ProtocolError(f"not a job status: {d!r}: {e}") from e
        return cls(j.job_id, j.status, j.progress, j.frames_done, j.frames_total, j.error, j.filename)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    def raise_if_failed(self) -> None:
        if self.status == "failed":
            raise JobFailed(self.job_id, self.error or "no reason given")


class BaseClient:
    def __init__(self, *, base_url: str, api_key: str | None, timeout: float, retries: int, backoff: float) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.headers = {"user-agent": "hotpose-client"}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"

    def retry_delays(self) -> list[float]:
        return [self.backoff * 2**i for i in range(self.retries)]

    def ws_url(self) -> str:
        return "ws" + self.base_url[4:] + "/v1/stream"

    def connection_error(self, e: Exception) -> ConnectionError:
        return ConnectionError(f"cannot reach the hotpose server at {self.base_url}: {e}")


def check(response: httpx.Response) -> httpx.Response:
    """Raise the SDK's error for a failed response (after reading its body)."""
    if response.is_success:
        return response
    code = response.status_code
    try:
        detail = str(response.json().get("detail"))
    except (ValueError, AttributeError):
        detail = response.text[:500]
    message = f"{response.request.method} {response.request.url.path}: {code} {detail}"
    if code in (401, 403):
        raise AuthError(message, status_code=code, detail=detail)
    if code in (503, 429):  # models loading; too many clips waiting: both worth a later retry
        raise ServerBusy(message, status_code=code, detail=detail)
    if code >= 500:
        raise ServerError(message, status_code=code, detail=detail)
    raise RequestError(message, status_code=code, detail=detail)


def parse_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as e:
        raise ProtocolError(f"{response.request.url.path}: the answer is not JSON: {response.text[:200]!r}") from e


def stream_line(line: str, job_id: str) -> Frame | None:
    """One NDJSON line of `/v1/jobs/{id}/stream` -> a Frame; raises JobFailed on the error line."""
    if not line.strip():
        return None
    try:
        d = json.loads(line)
    except ValueError as e:
        raise ProtocolError(f"job {job_id}: bad stream line {line[:200]!r}") from e
    try:
        if isinstance(d, dict) and "error" in d:
            raise JobFailed(job_id, schema.JobStreamError.model_validate(d).error)
        return Frame.from_wire(schema.Frame.model_validate(d))
    except ValidationError as e:
        raise ProtocolError(f"job {job_id}: bad stream line {line[:200]!r}: {e}") from e


# --- uploads ---------------------------------------------------------------------------


class ProgressReporter:
    """Calls the user's callable, or draws a bar per stage on stderr (`hotpose_client.progress`; only on
    a terminal)."""

    def __init__(self, progress: Progress) -> None:
        self.fn: Callable[[str, float], None] | None = None
        if callable(progress):
            self.fn = progress
        elif progress:
            self.fn = StageBars()
        self._last: tuple[str, int] = ("", -1)

    def __call__(self, stage: str, fraction: float) -> None:
        if self.fn is None:
            return
        key = (stage, int(fraction * 1000))
        if key != self._last:  # at most one update per 0.1 %
            self._last = key
            self.fn(stage, min(max(fraction, 0.0), 1.0))


class UploadFile:
    """A binary file for httpx's multipart encoder that reports how much was read."""

    def __init__(self, f: IO[bytes], report: ProgressReporter, size: int | None) -> None:
        self.f = f
        self.report = report
        self.size = size
        self.done = 0
        self.name = Path(getattr(f, "name", "upload") or "upload").name

    def read(self, n: int = -1) -> bytes:
        chunk = self.f.read(n)
        self.done += len(chunk)
        if self.size:
            self.report("upload", self.done / self.size)
        return chunk

    def fileno(self) -> int:
        return self.f.fileno()

    def tell(self) -> int:
        return self.f.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0 and offset == 0:
            self.done = 0
        return self.f.seek(offset, whence)


@contextmanager
def upload_form(source: str | Path | IO[bytes], progress: Progress) -> Iterator[dict[str, Any]]:
    """The multipart `files` of `POST /v1/clips` for a path or binary file; closes what it opened."""
    f, owned = open_upload(source)
    try:
        up = UploadFile(f, ProgressReporter(progress), file_size(f))
        yield {"file": (up.name, up, "application/octet-stream")}
    finally:
        if owned:
            f.close()


def result_params(path: Path, format: str | None, track_id: int | None) -> dict[str, str | int]:
    """The query of a download: `format` given, else the file's suffix (json, npz, csv, bvh); `track_id` if given."""
    params: dict[str, str | int] = {"format": format or path.suffix.lstrip(".").lower() or "json"}
    if track_id is not None:
        params["track_id"] = track_id
    return params


@contextmanager
def job_failed(job_id: str) -> Iterator[None]:
    """Turn the server's answer for the result of a failed job (409 "job is failed: ..."; 422 from servers
    before 0.1.0's contract fix) into `JobFailed`."""
    try:
        yield
    except RequestError as e:
        prefix = "job is failed"
        if e.status_code not in (409, 422) or not (e.detail or "").startswith(prefix):
            raise
        raise JobFailed(job_id, (e.detail or "")[len(prefix) :].lstrip(": ") or "no reason given") from None


def in_flight_limit(asked: int | None, ready: dict[str, Any]) -> int | None:
    """`max_in_flight` as asked, at most the server's queue: more unanswered frames than that can be dropped."""
    if asked is None:
        return None
    queue = ready.get("queue")
    return min(asked, int(queue)) if isinstance(queue, int) and queue >= 1 else asked


def open_upload(source: str | Path | IO[bytes]) -> tuple[IO[bytes], bool]:
    """-> (binary file, whether we opened it and must close it)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no video file at {path}")
        return open(path, "rb"), True
    if not hasattr(source, "read"):
        raise TypeError(f"process a path or a binary file object, not {type(source).__name__}")
    return source, False


def file_size(f: IO[bytes]) -> int | None:
    try:
        here = f.tell()
        end = f.seek(0, 2)
        f.seek(here)
        return end - here
    except (OSError, AttributeError, ValueError):
        return None


# --- live streams ------------------------------------------------------------------------


@dataclass
class StreamState:
    """The client's view of one live stream, shared by the sync and async implementations.

    Every frame sent is accounted for by the end: `answered + len(dropped)` + the errors that carry
    a frame index equals `sent` once the server has closed the stream normally (an error with index
    None is about the stream: a bad message, a client clock that went back).
    """

    sent: int = 0
    answered: int = 0
    acked: int = 0  # frames the server has processed (only counted when acks were asked for)
    dropped: list[int] = field(default_factory=list)  # frames the server dropped (it was behind)
    errors: list[tuple[int | None, str]] = field(default_factory=list)  # (frame index, server's message)
    info: dict[str, Any] = field(default_factory=dict)  # the server's "ready" message
    closed: bool = False

    @property
    def in_flight(self) -> int:
        """Frames sent that the server has not processed, dropped or refused yet (needs acks)."""
        return self.sent - self.acked - len(self.dropped) - sum(1 for i, _ in self.errors if i is not None)

    def on_message(self, raw: str | bytes) -> Frame | None:
        """Account for one server message; returns the Frame of a pose message."""
        try:
            m = json.loads(raw)
            kind = m["type"]
        except (ValueError, KeyError, TypeError) as e:
            raise ProtocolError(f"unexpected stream message {str(raw)[:200]!r}") from e
        if kind not in SERVER_MESSAGE_TYPES:
            return None  # a newer server's message
        try:
            msg = schema.parse_server_message(m)
        except ValidationError as e:
            raise ProtocolError(f"bad {kind!r} message from the server: {e}") from e
        if isinstance(msg, schema.PoseMessage):
            self.answered += 1
            return Frame.from_wire(msg)
        if isinstance(msg, schema.DroppedMessage):
            self.dropped.extend(msg.indexes)
        elif isinstance(msg, schema.AckMessage):
            self.acked += 1
        elif isinstance(msg, schema.ErrorMessage):
            self.errors.append((msg.index, msg.message))
        elif isinstance(msg, schema.ReadyMessage):
            self.info = m
        return None


def stream_config(
    fps: float | None,
    emit: str,
    delay_frames: int | None,
    stride: int | None,
    smoothing: bool | None,
    max_in_flight: int | None,
) -> str:
    """The config message of a stream; acks are asked for when the client limits its frames in flight."""
    if emit not in ("causal", "delayed"):
        raise ValueError(f"emit must be 'causal' or 'delayed', got {emit!r}")
    if max_in_flight is not None and max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
    # not validated here: ranges are the server's to check (it closes with 1008 naming the field)
    cfg = schema.ConfigMessage.model_construct(
        emit=emit, ack=max_in_flight is not None, fps=fps, delay_frames=delay_frames, stride=stride, smoothing=smoothing
    )
    return cfg.model_dump_json(exclude_none=True)


def close_error(code: int | None, reason: str | None) -> HotposeError | None:
    """The error for how the server closed a stream (None for a normal close)."""
    if code in (None, CLOSE_NORMAL):
        return None
    reason = reason or ""
    message = f"the server closed the stream: {code} {reason}".strip()
    if code == CLOSE_OVERLOADED:
        return ServerBusy(message, status_code=code, detail=reason)
    if code == CLOSE_POLICY:
        if "key" in reason.lower():
            return AuthError(message, status_code=code, detail=reason)
        return RequestError(message, status_code=code, detail=reason)
    return ServerError(message, status_code=code, detail=reason)


def refused(e: Exception) -> HotposeError:
    """The error for a stream that closed or failed before it was ready."""
    from websockets.exceptions import ConnectionClosed

    if isinstance(e, HotposeError):
        return e
    if isinstance(e, ConnectionClosed) and e.rcvd is not None:
        err = close_error(e.rcvd.code, e.rcvd.reason)
        if err is not None:
            return err
    return ProtocolError(f"the stream was not opened: {e!r}")


class FrameEncoder:
    """Images to the bytes a stream sends: encoded bytes pass through, arrays become JPEG.

    Items are an image, or `(t, image)` with the capture time `t` in seconds. Arrays are
    H x W x 3 uint8 in `channels` order ("rgb" or "bgr", OpenCV's).
    """

    def __init__(self, fps: float | None, channels: str, quality: int) -> None:
        if channels not in ("rgb", "bgr"):
            raise ValueError(f"channels must be 'rgb' or 'bgr', got {channels!r}")
        self.fps = fps
        self.channels = channels
        self.quality = quality
        self.t0: float | None = None

    def __call__(self, item: Any) -> tuple[float | None, bytes]:
        t: float | None = None
        if isinstance(item, tuple) and len(item) == 2:
            t, item = float(item[0]), item[1]
        elif self.fps is None:  # the client's capture clock: no network jitter in the times
            now = time.monotonic()
            self.t0 = now if self.t0 is None else self.t0
            t = now - self.t0
        if isinstance(item, (bytes, bytearray, memoryview)):
            return t, bytes(item)
        if isinstance(item, np.ndarray):
            return t, encode_jpeg(item, self.channels, self.quality)
        raise TypeError(f"stream items are images (numpy arrays or encoded bytes), not {type(item).__name__}")


def encode_jpeg(image: np.ndarray, channels: str, quality: int) -> bytes:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 image, got {image.dtype} {list(image.shape)}")
    try:
        import cv2
    except ImportError:
        return _encode_with_pillow(image, channels, quality)
    bgr = image if channels == "bgr" else image[..., ::-1]
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("OpenCV could not encode the frame as JPEG")
    return bytes(buf.tobytes())


def _encode_with_pillow(image: np.ndarray, channels: str, quality: int) -> bytes:
    try:
        import io

        from PIL import Image
    except ImportError:
        raise HotposeError(
            "encoding numpy frames needs OpenCV or Pillow: pip install 'hotpose-client[webcam]', or pass JPEG/PNG bytes"
        ) from None
    rgb = image if channels == "rgb" else image[..., ::-1]
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(out, format="JPEG", quality=quality)
    return out.getvalue()
