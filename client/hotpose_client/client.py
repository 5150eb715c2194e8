"""`PoseClient` (blocking) and `AsyncPoseClient` (asyncio): the same calls, one shared base.

    with PoseClient(base_url="http://localhost:8000") as client:
        seq = client.process_clip("dance.mp4")        # upload, wait, typed result
        seq.to_bvh("dance.bvh")
        for frame in client.stream(webcam()):          # live: one Frame per processed frame
            print(frame.index, [p.track_id for p in frame.people])

Camera hints (`focal_px` or `fov_deg`, and `person_height_m`) tell the server how to place people in
the camera frame (`Person.root_3d`); `PoseClient.submit_clip` says what each one means.

Idempotent calls (GET, DELETE) are retried with exponential backoff on connection errors; an
upload is retried only when the connection could not be opened (nothing was sent).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx

from hotpose_client import schema
from hotpose_client._base import (
    CONNECT_ERRORS,
    TRANSIENT_ERRORS,
    UPLOAD_TIMEOUT,
    BaseClient,
    FrameEncoder,
    JobStatus,
    Progress,
    ProgressReporter,
    StreamState,
    check,
    close_error,
    in_flight_limit,
    job_failed,
    parse_json,
    refused,
    result_params,
    stream_config,
    stream_line,
    upload_form,
)
from hotpose_client.errors import HotposeError, ProtocolError
from hotpose_client.results import Frame, PoseSequence

__all__ = ["AsyncLiveStream", "AsyncPoseClient", "JobStatus", "LiveStream", "PoseClient"]

DEFAULT_URL = "http://127.0.0.1:8000"


def _camera_hints(focal_px: float | None, fov_deg: float | None, person_height_m: float | None) -> dict[str, float]:
    """The hints given, keyed as the server's form fields and stream config keys.

    Only what is cheap and certain is checked here (one lens hint at most); ranges are the server's
    to check, and its refusal (422 for a clip, close 1008 for a stream) names the value.
    """
    if focal_px is not None and fov_deg is not None:
        raise ValueError(
            "give focal_px (pixels) or fov_deg (horizontal field of view, degrees), not both: one lens, one hint"
        )
    given = (("focal_px", focal_px), ("fov_deg", fov_deg), ("person_height_m", person_height_m))
    return {key: float(value) for key, value in given if value is not None}


def _with_hints(config: str, hints: dict[str, float]) -> str:
    """A stream's config message with the camera hints added."""
    return json.dumps({**json.loads(config), **hints}) if hints else config


class PoseClient(BaseClient):
    """Blocking client. `transport` (an `httpx.BaseTransport`) runs it against an app in-process."""

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url=base_url, api_key=api_key, timeout=timeout, retries=retries, backoff=backoff)
        self._http = httpx.Client(base_url=self.base_url, headers=self.headers, timeout=timeout, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- plumbing ---------------------------------------------------------------------

    def _request(self, method: str, path: str, *, idempotent: bool = True, **kw: Any) -> httpx.Response:
        retry_on = TRANSIENT_ERRORS if idempotent else CONNECT_ERRORS
        for delay in [*self.retry_delays(), None]:
            try:
                return check(self._http.request(method, path, **kw))
            except retry_on as e:
                if delay is None:
                    raise self.connection_error(e) from e
                if "files" in kw:
                    kw["files"]["file"][1].seek(0)
                time.sleep(delay)
            except httpx.TransportError as e:
                raise self.connection_error(e) from e
        raise AssertionError("unreachable")

    # --- calls --------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The server's models, window, live defaults, joints, coordinate frame and limits."""
        return dict(parse_json(self._request("GET", "/v1/info")))

    def ready(self) -> bool:
        """True once the server's models are loaded and warm."""
        try:
            self._request("GET", "/healthz")
        except HotposeError as e:
            if e.status_code == 503:
                return False
            raise
        return True

    def submit_clip(
        self,
        source: str | Path | IO[bytes],
        *,
        progress: Progress = False,
        focal_px: float | None = None,
        fov_deg: float | None = None,
        person_height_m: float | None = None,
    ) -> str:
        """Upload a video (path or binary file); returns the job id at once.

        Camera hints, for placing people (`Person.root_3d`, `PoseSequence.camera`), each sent only when
        given: `focal_px` the video's focal length in pixels, or `fov_deg` its horizontal field of view
        in degrees (not both: ValueError before anything is sent). Without either the server assumes a
        70-degree horizontal field of view and says so (`camera.assumed`). `person_height_m`: the
        people's height in metres (0.3 to 2.5); the lifted skeleton has adult proportions, so without
        it a child is placed too far away. A value the server refuses is a `RequestError` (422) whose
        message carries its reason.
        """
        form = {k: str(v) for k, v in _camera_hints(focal_px, fov_deg, person_height_m).items()}
        with upload_form(source, progress) as files:
            timeout = max(self.timeout, UPLOAD_TIMEOUT)
            r = self._request("POST", "/v1/clips", idempotent=False, data=form, files=files, timeout=timeout)
        return str(parse_json(r)["job_id"])

    def job(self, job_id: str) -> JobStatus:
        return JobStatus.from_dict(parse_json(self._request("GET", f"/v1/jobs/{job_id}")))

    def wait(
        self, job_id: str, *, progress: Progress = False, poll: float = 0.5, timeout: float | None = None
    ) -> JobStatus:
        """Poll until the job finishes; raises `JobFailed` with the server's reason if it failed."""
        report = ProgressReporter(progress)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            st = self.job(job_id)
            report("process", st.progress if st.status != "done" else 1.0)
            if st.finished:
                st.raise_if_failed()
                return st
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {st.status} after {timeout} s ({st.progress:.0%})")
            time.sleep(poll)

    def result(self, job_id: str) -> PoseSequence:
        """The finished job's poses; `JobFailed` if it failed, `RequestError` (409) if it is not done yet."""
        with job_failed(job_id):
            return PoseSequence.from_dict(parse_json(self._request("GET", f"/v1/jobs/{job_id}/result")))

    def download(
        self, job_id: str, path: str | Path, *, format: str | None = None, track_id: int | None = None
    ) -> Path:
        """Save the result as the server writes it (json, npz, csv or bvh; default from the suffix).

        `track_id` picks the person of a BVH (needed when the clip has several)."""
        path = Path(path)
        with job_failed(job_id):
            r = self._request("GET", f"/v1/jobs/{job_id}/result", params=result_params(path, format, track_id))
        path.write_bytes(r.content)
        return path

    def iter_frames(self, job_id: str) -> Iterator[Frame]:
        """Frames of a job as the server produces them (follows its NDJSON stream).

        A dropped connection is re-opened and the frames already yielded are skipped.
        """
        last = -1
        for delay in [*self.retry_delays(), None]:
            try:
                with self._http.stream("GET", f"/v1/jobs/{job_id}/stream", timeout=None) as r:
                    if not r.is_success:
                        r.read()
                        check(r)
                    for line in r.iter_lines():
                        frame = stream_line(line, job_id)
                        if frame is not None and frame.index > last:
                            last = frame.index
                            yield frame
                return
            except TRANSIENT_ERRORS as e:
                if delay is None:
                    raise self.connection_error(e) from e
                time.sleep(delay)

    def delete_job(self, job_id: str) -> None:
        self._request("DELETE", f"/v1/jobs/{job_id}")

    def process_clip(
        self,
        source: str | Path | IO[bytes],
        *,
        progress: Progress = True,
        timeout: float | None = None,
        focal_px: float | None = None,
        fov_deg: float | None = None,
        person_height_m: float | None = None,
    ) -> PoseSequence:
        """Upload a clip, wait for it (progress on stderr by default) and return its poses.

        The camera hints are `submit_clip`'s."""
        job_id = self.submit_clip(
            source, progress=progress, focal_px=focal_px, fov_deg=fov_deg, person_height_m=person_height_m
        )
        self.wait(job_id, progress=progress, timeout=timeout)
        return self.result(job_id)

    def stream(
        self,
        frames: Iterable[Any],
        *,
        fps: float | None = None,
        emit: str = "causal",
        delay_frames: int | None = None,
        stride: int | None = None,
        smoothing: bool | None = None,
        channels: str = "rgb",
        jpeg_quality: int = 85,
        max_in_flight: int | None = None,
        focal_px: float | None = None,
        fov_deg: float | None = None,
        person_height_m: float | None = None,
    ) -> LiveStream:
        """Stream images over `WS /v1/stream`; iterate the result for one `Frame` per processed frame.

        `frames`: numpy images (H x W x 3 uint8, `channels` order) or encoded JPEG/PNG bytes, or
        `(t, image)` pairs with capture times in seconds. Without times, `fps` numbers the frames
        (index / fps); with neither, the client's clock at each item is sent. `emit`: "causal"
        answers each frame as soon as it is processed; "delayed" waits `delay_frames` for more
        temporal context. The server drops the oldest waiting frame when it falls behind; those
        land in `LiveStream.dropped`. `max_in_flight` makes the client wait instead (for files:
        nothing is dropped); it is capped at the server's queue (`queue` in its `ready` message),
        the most unanswered frames that can never be dropped.

        Each `Frame` carries the server's `camera` and each person a `root_3d` (where the pelvis is,
        metres, camera frame); both None from a server that does not send them. The camera hints
        (`focal_px` or `fov_deg`, `person_height_m`) are `submit_clip`'s, sent in the stream's config;
        a value the server refuses closes the stream at once: `stream` raises `RequestError` (1008)
        with the server's reason.
        """
        import websockets.sync.client as ws_client

        hints = _camera_hints(focal_px, fov_deg, person_height_m)
        config = _with_hints(stream_config(fps, emit, delay_frames, stride, smoothing, max_in_flight), hints)
        try:
            ws = ws_client.connect(
                self.ws_url(), additional_headers=self.headers, max_size=None, open_timeout=self.timeout
            )
        except OSError as e:
            raise self.connection_error(e) from e
        except Exception as e:  # websockets' handshake errors: InvalidStatus, InvalidURI, ...
            raise self.connection_error(e) from e
        ws.__enter__()  # the connection is ours to close (LiveStream.close); no legacy-use warning
        return LiveStream(ws, config, frames, FrameEncoder(fps, channels, jpeg_quality), max_in_flight)


class LiveStream:
    """An open live stream: iterate for `Frame`s; `state` counts what was sent, answered, dropped.

    Closing it early (leaving a `with` block or breaking out of the loop and calling `close`)
    stops sending and closes the socket.
    """

    def __init__(
        self, ws: Any, config: str, frames: Iterable[Any], encode: FrameEncoder, max_in_flight: int | None
    ) -> None:
        self._ws = ws
        self.state = StreamState()
        self._frames = frames
        self._encode = encode
        self._max_in_flight = max_in_flight
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        try:
            ws.send(config)
            self.state.on_message(ws.recv(timeout=60))
        except Exception as e:  # noqa: BLE001 - closed at once (key, limits, bad config) or no answer
            ws.close()
            raise refused(e) from None
        if not self.state.info:
            ws.close()
            raise ProtocolError("the server did not answer the stream's config with 'ready'")
        self._max_in_flight = in_flight_limit(max_in_flight, self.state.info)
        self._sender = threading.Thread(target=self._send_all, name="hotpose-stream-sender", daemon=True)
        self._sender.start()

    @property
    def dropped(self) -> list[int]:
        return self.state.dropped

    @property
    def errors(self) -> list[tuple[int | None, str]]:
        return self.state.errors

    def _send_all(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            for item in self._frames:
                if self._stop.is_set():
                    return
                t, data = self._encode(item)
                if self._max_in_flight is not None:
                    with self._cond:
                        while self.state.in_flight >= self._max_in_flight and not self._stop.is_set():
                            self._cond.wait(0.1)
                if t is not None:
                    self._ws.send(schema.FrameTimeMessage.model_construct(t=t).model_dump_json())
                self._ws.send(data)
                with self._cond:
                    self.state.sent += 1
            self._ws.send(schema.EndMessage().model_dump_json())
        except ConnectionClosed:
            return  # the server closed the stream: the reader reports its code and reason
        except Exception as e:  # noqa: BLE001 - surfaced to the reader
            if not self._stop.is_set():
                self._error = e
                self._ws.close()

    def __iter__(self) -> Iterator[Frame]:
        from websockets.exceptions import ConnectionClosed

        try:
            for raw in self._ws:
                with self._cond:
                    frame = self.state.on_message(raw)
                    self._cond.notify_all()
                if frame is not None:
                    yield frame
        except ConnectionClosed:
            pass
        finally:
            self.close()
        if self._error is not None:
            if isinstance(self._error, (TypeError, ValueError, HotposeError)):
                raise self._error
            raise HotposeError(f"sending frames failed: {self._error!r}") from self._error
        err = close_error(self._ws.close_code, self._ws.close_reason)
        if err is not None:
            raise err

    def close(self) -> None:
        self._stop.set()
        self._ws.close()
        if self._sender.is_alive() and threading.current_thread() is not self._sender:
            self._sender.join(timeout=5)
        self.state.closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class AsyncPoseClient(BaseClient):
    """The asyncio client: the same calls as `PoseClient`, awaited. `transport`: an `httpx.AsyncBaseTransport`."""

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url=base_url, api_key=api_key, timeout=timeout, retries=retries, backoff=backoff)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, *, idempotent: bool = True, **kw: Any) -> httpx.Response:
        retry_on = TRANSIENT_ERRORS if idempotent else CONNECT_ERRORS
        for delay in [*self.retry_delays(), None]:
            try:
                return check(await self._http.request(method, path, **kw))
            except retry_on as e:
                if delay is None:
                    raise self.connection_error(e) from e
                if "files" in kw:
                    kw["files"]["file"][1].seek(0)
                await asyncio.sleep(delay)
            except httpx.TransportError as e:
                raise self.connection_error(e) from e
        raise AssertionError("unreachable")

    async def info(self) -> dict[str, Any]:
        return dict(parse_json(await self._request("GET", "/v1/info")))

    async def ready(self) -> bool:
        try:
            await self._request("GET", "/healthz")
        except HotposeError as e:
            if e.status_code == 503:
                return False
            raise
        return True

    async def submit_clip(
        self,
        source: str | Path | IO[bytes],
        *,
        progress: Progress = False,
        focal_px: float | None = None,
        fov_deg: float | None = None,
        person_height_m: float | None = None,
    ) -> str:
        form = {k: str(v) for k, v in _camera_hints(focal_px, fov_deg, person_height_m).items()}
        with upload_form(source, progress) as files:
            timeout = max(self.timeout, UPLOAD_TIMEOUT)
            r = await self._request("POST", "/v1/clips", idempotent=False, data=form, files=files, timeout=timeout)
        return str(parse_json(r)["job_id"])

    async def job(self, job_id: str) -> JobStatus:
        return JobStatus.from_dict(parse_json(await self._request("GET", f"/v1/jobs/{job_id}")))

    async def wait(
        self, job_id: str, *, progress: Progress = False, poll: float = 0.5, timeout: float | None = None
    ) -> JobStatus:
        report = ProgressReporter(progress)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            st = await self.job(job_id)
            report("process", st.progress if st.status != "done" else 1.0)
            if st.finished:
                st.raise_if_failed()
                return st
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {st.status} after {timeout} s ({st.progress:.0%})")
            await asyncio.sleep(poll)

    async def result(self, job_id: str) -> PoseSequence:
        with job_failed(job_id):
            return PoseSequence.from_dict(parse_json(await self._request("GET", f"/v1/jobs/{job_id}/result")))

    async def download(
        self, job_id: str, path: str | Path, *, format: str | None = None, track_id: int | None = None
    ) -> Path:
        path = Path(path)
        with job_failed(job_id):
            r = await self._request("GET", f"/v1/jobs/{job_id}/result", params=result_params(path, format, track_id))
        path.write_bytes(r.content)
        return path

    async def iter_frames(self, job_id: str) -> AsyncIterator[Frame]:
        last = -1
        for delay in [*self.retry_delays(), None]:
            try:
                async with self._http.stream("GET", f"/v1/jobs/{job_id}/stream", timeout=None) as r:
                    if not r.is_success:
                        await r.aread()
                        check(r)
                    async for line in r.aiter_lines():
                        frame = stream_line(line, job_id)
                        if frame is not None and frame.index > last:
                            last = frame.index
                            yield frame
                return
            except TRANSIENT_ERRORS as e:
                if delay is None:
                    raise self.connection_error(e) from e
                await asyncio.sleep(delay)

    async def delete_job(self, job_id: str) -> None:
        await self._request("DELETE", f"/v1/jobs/{job_id}")

    async def process_clip(
        self,
        source: str | Path | IO[bytes],
        *,
        progress: Progress = True,
        timeout: float | None = None,
        focal_px: float | None = None,
        fov_deg: float | None = None,
        person_height_m: float | None = None,
    ) -> PoseSequence:
        job_id = await self.submit_clip(
            source, progress=progress, focal_px=focal_px, fov_deg=fov_deg, person_height_m=person_height_m
        )
        await self.wait(job_id, progress=progress, timeout=timeout)
        return await self.result(job_id)

    async def stream(
        self,
        frames: Iterable[Any] | AsyncIterable[Any],
        *,
        fps: float | None = None,
        emit: str = "causal",
        delay_frames: int | None = None,
        stride: int | None = None,
        smoothing: bool | None = None,
        channels: str = "rgb",
        jpeg_quality: int = 85,
        max_in_flight: int | None = None,
        focal_px: float | None = None,
        fov_deg: float | None = None,
        person_height_m: float | None = None,
    ) -> AsyncLiveStream:
        """As `PoseClient.stream`; `frames` may also be an async iterable. Iterate with `async for`."""
        import websockets.asyncio.client as ws_client

        hints = _camera_hints(focal_px, fov_deg, person_height_m)
        config = _with_hints(stream_config(fps, emit, delay_frames, stride, smoothing, max_in_flight), hints)
        try:
            ws = await ws_client.connect(
                self.ws_url(), additional_headers=self.headers, max_size=None, open_timeout=self.timeout
            )
        except Exception as e:  # OSError and websockets' handshake errors
            raise self.connection_error(e) from e
        live = AsyncLiveStream(ws, frames, FrameEncoder(fps, channels, jpeg_quality), max_in_flight)
        await live._start(config)
        return live


class AsyncLiveStream:
    """The asyncio twin of `LiveStream`: `async for frame in live`, `await live.aclose()`."""

    def __init__(
        self, ws: Any, frames: Iterable[Any] | AsyncIterable[Any], encode: FrameEncoder, max_in_flight: int | None
    ) -> None:
        self._ws = ws
        self.state = StreamState()
        self._frames = frames
        self._encode = encode
        self._max_in_flight = max_in_flight
        self._progressed = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    @property
    def dropped(self) -> list[int]:
        return self.state.dropped

    @property
    def errors(self) -> list[tuple[int | None, str]]:
        return self.state.errors

    async def _start(self, config: str) -> None:
        try:
            await self._ws.send(config)
            self.state.on_message(await asyncio.wait_for(self._ws.recv(), 60))
        except Exception as e:  # noqa: BLE001 - closed at once (key, limits, bad config) or no answer
            await self._ws.close()
            raise refused(e) from None
        if not self.state.info:
            await self._ws.close()
            raise ProtocolError("the server did not answer the stream's config with 'ready'")
        self._max_in_flight = in_flight_limit(self._max_in_flight, self.state.info)
        self._sender = asyncio.create_task(self._send_all())

    async def _items(self) -> AsyncIterator[Any]:
        if isinstance(self._frames, AsyncIterable):
            async for item in self._frames:
                yield item
            return
        it = iter(self._frames)
        done = object()
        while (item := await asyncio.to_thread(next, it, done)) is not done:  # cameras block: off the loop
            yield item

    async def _send_all(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for item in self._items():
                t, data = self._encode(item)
                while self._max_in_flight is not None and self.state.in_flight >= self._max_in_flight:
                    self._progressed.clear()
                    await self._progressed.wait()
                if t is not None:
                    await self._ws.send(schema.FrameTimeMessage.model_construct(t=t).model_dump_json())
                await self._ws.send(data)
                self.state.sent += 1
            await self._ws.send(schema.EndMessage().model_dump_json())
        except ConnectionClosed:
            return  # the server closed the stream: the reader reports its code and reason
        except Exception as e:  # noqa: BLE001 - a bad item or a failing source: surfaced to the reader
            self._error = e
            await self._ws.close()

    async def __aiter__(self) -> AsyncIterator[Frame]:
        from websockets.exceptions import ConnectionClosed

        assert self._sender is not None
        try:
            async for raw in self._ws:
                frame = self.state.on_message(raw)
                self._progressed.set()
                if frame is not None:
                    yield frame
        except ConnectionClosed:
            pass
        finally:
            await self.aclose()
        e = self._error
        if e is not None:
            if isinstance(e, (TypeError, ValueError, HotposeError)):
                raise e
            raise HotposeError(f"sending frames failed: {e!r}") from e
        err = close_error(self._ws.close_code, self._ws.close_reason)
        if err is not None:
            raise err

    async def aclose(self) -> None:
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
        await self._ws.close()
        self.state.closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
