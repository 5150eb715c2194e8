"""The FastAPI application: clip jobs over HTTP, live streams over WebSocket, metrics.

Models load in the lifespan (never at import) and a warm-up inference runs through both
batching schedulers before `/healthz` reports ready. Every route but `/livez`, `/healthz` and
`/metrics` needs an API key when `HOTPOSE_API_KEYS` is set.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.types import Message, Receive

from hotpose_client import PoseSequence, formats
from hotpose.models.keypoints import H36M_EDGES, H36M_JOINTS
from hotpose.service import __version__, metrics
from hotpose.service.engine import Engine, EngineConfig
from hotpose.service.jobs import ClipLimits, JobRunner, JobStore, frames_file
from hotpose.service.pipeline import COORDINATES
from hotpose.service.settings import Settings

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"  # the web page, served as is (no build step)

UPLOAD_CHUNK = 1 << 20


@dataclass
class AppState:
    settings: Settings
    engine: Engine | None = None
    store: JobStore | None = None
    runner: JobRunner | None = None
    executor: ThreadPoolExecutor | None = None  # live sessions' blocking steps
    ready: bool = False
    streams: set[str] = field(default_factory=set)


class JobResponse(BaseModel):
    job_id: str
    status: Literal["queued", "running", "done", "failed"]
    progress: float
    frames_done: int
    frames_total: int
    error: str | None
    filename: str
    created: float


class InfoResponse(BaseModel):
    version: str
    device: str
    detector: dict[str, Any]
    lifter: dict[str, Any]
    window: int
    live: dict[str, Any]
    joint_names: list[str]
    skeleton_edges: list[tuple[int, int]]
    coordinates: dict[str, str]
    limits: dict[str, Any]


def _start(state: AppState) -> None:
    s = state.settings
    s.data_dir.mkdir(parents=True, exist_ok=True)
    engine = Engine(EngineConfig.from_settings(s))
    if engine.window and s.live_stride > engine.window:
        raise ValueError(f"HOTPOSE_LIVE_STRIDE={s.live_stride} exceeds the lifter's window of {engine.window} frames")
    engine.warm_up()
    state.engine = engine
    state.store = JobStore(s.data_dir)
    expired = state.store.expire(s.retention_hours * 3600)
    if expired:
        log.info("deleted %d jobs older than the retention", expired)
    limits = ClipLimits(s.max_clip_frames, s.max_clip_seconds, s.max_frame_pixels)
    state.runner = JobRunner(state.store, engine.pipeline, limits, workers=s.job_workers)
    resumed = state.runner.recover()
    if resumed:
        log.info("queued again after a restart: %s", resumed)
    state.executor = ThreadPoolExecutor(max_workers=s.max_streams, thread_name_prefix="stream")
    state.ready = True
    log.info("ready: lifter %s (%s) on %s", s.lifter, engine.weights, engine.device)


def _stop(state: AppState) -> None:
    state.ready = False
    if state.executor is not None:
        state.executor.shutdown(wait=False, cancel_futures=True)
    if state.runner is not None:
        state.runner.close()
    if state.engine is not None:
        state.engine.close()
    if state.store is not None:
        state.store.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    state = AppState(settings=settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(_start, state)
        cleaner = asyncio.create_task(_expire_periodically(state))
        try:
            yield
        finally:
            cleaner.cancel()
            await asyncio.to_thread(_stop, state)

    app = FastAPI(title="hotpose", version=__version__, lifespan=lifespan)
    app.state.hotpose = state

    @app.middleware("http")
    async def count_requests(request: Request, call_next):  # type: ignore[no-untyped-def]
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex[:12]
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        response.headers["x-request-id"] = rid
        log.info(
            "request %s %s %s -> %d (%.1f ms)",
            rid,
            request.method,
            request.url.path,
            response.status_code,
            1000 * (time.perf_counter() - t0),
        )
        return response

    _add_routes(app)
    from hotpose.service.streams import add_stream_route

    add_stream_route(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


async def _expire_periodically(state: AppState) -> None:
    while True:
        await asyncio.sleep(3600)
        if state.store is not None:
            n = await asyncio.to_thread(state.store.expire, state.settings.retention_hours * 3600)
            if n:
                log.info("deleted %d expired jobs", n)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.hotpose
    return state


def check_key(settings: Settings, authorization: str | None, api_key: str | None) -> bool:
    keys = settings.keys
    if not keys:
        return True
    token = api_key
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    return token in keys


def require_key(request: Request, api_key: Annotated[str | None, Query()] = None) -> None:
    state = get_state(request)
    if not check_key(state.settings, request.headers.get("authorization"), api_key):
        raise HTTPException(status_code=401, detail="missing or wrong API key", headers={"WWW-Authenticate": "Bearer"})


def ready_state(request: Request) -> AppState:
    state = get_state(request)
    if not state.ready or state.engine is None or state.store is None or state.runner is None:
        raise HTTPException(status_code=503, detail="models are loading")
    return state


State = Annotated[AppState, Depends(ready_state)]
Auth = Depends(require_key)


def _job_or_404(state: AppState, job_id: str) -> Any:
    assert state.store is not None
    job = state.store.get(job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"no job {job_id}")
    return job


def _add_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        """The web page: camera or clip in, 2D and 3D skeletons out (service/static)."""
        return FileResponse(STATIC / "index.html")

    @app.get("/livez")
    async def livez() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, str]:
        if not get_state(request).ready:
            raise HTTPException(status_code=503, detail="models are loading")
        return {"status": "ready"}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/info", response_model=InfoResponse, dependencies=[Auth])
    async def info(state: State) -> InfoResponse:
        engine = state.engine
        assert engine is not None
        s = state.settings
        lifter: dict[str, Any] = {
            "name": s.lifter,
            "weights": str(engine.weights) if engine.weights else None,
            "trained": engine.lifter is not None,
            "flip": s.flip,
        }
        if engine.lifter is not None:
            lifter.update(engine.lifter.config.to_dict())
        return InfoResponse(
            version=__version__, device=engine.device,
            detector=engine.describe_2d(),
            lifter=lifter, window=engine.window,
            live={"stride": s.live_stride, "flip": s.live_flip, "delay_frames": s.live_delay_frames,
                  "queue": s.live_queue, "smoothing": s.live_smoothing, "emit": ["causal", "delayed"]},
            joint_names=list(H36M_JOINTS), skeleton_edges=list(H36M_EDGES), coordinates=COORDINATES,
            limits={"max_upload_mb": s.max_upload_mb, "max_clip_frames": s.max_clip_frames,
                    "max_clip_seconds": s.max_clip_seconds, "max_frame_pixels": s.max_frame_pixels,
                    "max_streams": s.max_streams, "max_message_mb": s.max_message_mb,
                    "max_pending_jobs": s.max_pending_jobs},
        )  # fmt: skip

    @app.post("/v1/clips", status_code=202, dependencies=[Auth])
    async def create_clip(request: Request, state: State) -> JSONResponse:
        s = state.settings
        assert state.store is not None and state.runner is not None
        if len(state.store.with_status("queued", "running")) >= s.max_pending_jobs:  # before reading the upload
            raise HTTPException(
                status_code=429,
                detail=f"too many clips waiting (limit {s.max_pending_jobs}); try again when one has finished",
                headers={"Retry-After": "30"},
            )
        limit = int(s.max_upload_mb * (1 << 20))
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit + (1 << 16):
            raise HTTPException(status_code=413, detail=f"upload larger than {s.max_upload_mb:g} MB")
        try:
            form = await Request(request.scope, _limited(request.receive, limit + (1 << 16))).form(
                max_files=1, max_fields=4
            )
        except _UploadTooLargeError:  # no Content-Length (chunked), or one that understated the body
            raise HTTPException(status_code=413, detail=f"upload larger than {s.max_upload_mb:g} MB") from None
        except Exception as e:  # noqa: BLE001 - malformed multipart
            raise HTTPException(status_code=400, detail=f"not a multipart form: {e}") from e
        upload = form.get("file")
        if not isinstance(upload, UploadFile) and not hasattr(upload, "read"):
            await form.close()
            raise HTTPException(status_code=422, detail="send the video as the multipart field 'file'")
        name = Path(getattr(upload, "filename", None) or "upload").name
        job = state.store.create(name)
        suffix = Path(name).suffix.lower()
        dest = state.store.dir(job.job_id) / f"input{suffix if len(suffix) <= 6 else ''}"
        try:
            size = await asyncio.to_thread(_copy_upload, upload, dest, limit)  # type: ignore[arg-type]
        except _UploadTooLargeError:
            state.store.delete(job.job_id)
            raise HTTPException(status_code=413, detail=f"upload larger than {s.max_upload_mb:g} MB") from None
        except BaseException:  # a full disk, a cancelled request: no job is left behind half-written
            state.store.delete(job.job_id)
            raise
        finally:
            await form.close()
        if size == 0:
            state.store.delete(job.job_id)
            raise HTTPException(status_code=422, detail="the uploaded file is empty")
        state.runner.submit(job.job_id)
        log.info("job %s: %s (%d bytes) queued", job.job_id, name, size)
        return JSONResponse({"job_id": job.job_id, "status": "queued"}, status_code=202)

    @app.get("/v1/jobs/{job_id}", response_model=JobResponse, dependencies=[Auth])
    async def get_job(job_id: str, state: State) -> JobResponse:
        return JobResponse(**_job_or_404(state, job_id).public())

    @app.delete("/v1/jobs/{job_id}", dependencies=[Auth])
    async def delete_job(job_id: str, state: State) -> dict[str, str]:
        job = _job_or_404(state, job_id)
        assert state.store is not None and state.runner is not None
        if job.status in ("queued", "running"):
            state.runner.cancel(job_id)
        await asyncio.to_thread(state.store.delete, job_id)
        return {"job_id": job_id, "status": "deleted"}

    @app.get("/v1/jobs/{job_id}/result", dependencies=[Auth])
    async def job_result(
        job_id: str, state: State, format: Literal["json", "npz", "csv", "bvh"] = "json", track_id: int | None = None
    ) -> Response:
        job = _job_or_404(state, job_id)
        if job.status != "done":
            detail = f"job is {job.status}" + (f": {job.error}" if job.error else "")
            raise HTTPException(status_code=409 if job.status != "failed" else 422, detail=detail)
        assert state.store is not None
        d = state.store.dir(job_id)
        meta = json.loads((d / "meta.json").read_text())
        lines = d / "frames.ndjson"
        if format == "json":
            return StreamingResponse(_json_result(meta, lines), media_type="application/json")
        if format == "csv":
            return StreamingResponse(
                _csv_result(lines),
                media_type="text/csv",
                headers={"content-disposition": f'attachment; filename="{job_id}.csv"'},
            )
        if format == "bvh":
            try:
                bvh = await asyncio.to_thread(_bvh_result, meta, lines, track_id)
            except (ValueError, KeyError) as e:
                raise HTTPException(status_code=422, detail=str(e).strip("'\"")) from None
            return Response(
                bvh,
                media_type="application/octet-stream",
                headers={"content-disposition": f'attachment; filename="{job_id}.bvh"'},
            )
        data = await asyncio.to_thread(_npz_result, meta, lines)
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"content-disposition": f'attachment; filename="{job_id}.npz"'},
        )

    @app.get("/v1/jobs/{job_id}/stream", dependencies=[Auth])
    async def job_stream(job_id: str, state: State) -> StreamingResponse:
        _job_or_404(state, job_id)
        return StreamingResponse(_tail(state, job_id), media_type="application/x-ndjson")


class _UploadTooLargeError(Exception):
    pass


def _limited(receive: Receive, limit: int) -> Receive:
    """`receive` that raises _UploadTooLargeError once the request body passes `limit` bytes."""
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _UploadTooLargeError
        return message

    return limited


def _copy_upload(upload: UploadFile, dest: Path, limit: int) -> int:
    size = 0
    with open(dest, "wb") as out:
        while chunk := upload.file.read(UPLOAD_CHUNK):
            size += len(chunk)
            if size > limit:
                raise _UploadTooLargeError
            out.write(chunk)
    return size


def _json_result(meta: dict[str, Any], lines: Path) -> Iterator[bytes]:
    yield formats.json_head({**meta, "coordinates": COORDINATES}).encode()
    with open(lines, "rb") as f:
        for i, line in enumerate(f):
            yield (b"," if i else b"") + line.rstrip(b"\n")
    yield b"]}"


def _frames(lines: Path) -> Iterator[dict[str, Any]]:
    with open(lines) as f:
        for line in f:
            yield json.loads(line)


def _csv_result(lines: Path) -> Iterator[bytes]:
    for chunk in formats.csv_chunks(_frames(lines), H36M_JOINTS):
        yield chunk.encode()


def _npz_result(meta: dict[str, Any], lines: Path) -> bytes:
    """One row per person-frame (`hotpose_client.formats.NPZ_ARRAYS`)."""
    return formats.npz_bytes(formats.npz_arrays({**meta, "coordinates": COORDINATES}, _frames(lines)))


def _bvh_result(meta: dict[str, Any], lines: Path, track_id: int | None) -> bytes:
    """One person's animation (`hotpose_client.bvh`); `track_id` may be omitted when there is one person."""
    ids: set[int] = set()

    def frames() -> Iterator[dict[str, Any]]:  # one at a time, keeping only the person asked for (long clips)
        for f in _frames(lines):
            ids.update(p["track_id"] for p in f["people"])
            if track_id is not None:
                f["people"] = [p for p in f["people"] if p["track_id"] == track_id]
            yield f

    seq = PoseSequence.from_dict({**meta, "frames": frames()})
    if track_id is not None and track_id not in ids:
        raise ValueError(f"no person with track_id {track_id} (have {sorted(ids)})")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "result.bvh"
        seq.to_bvh(path, track_id)
        return path.read_bytes()


async def _tail(state: AppState, job_id: str) -> AsyncIterator[bytes]:
    """The job's frames as NDJSON, as they are written; ends when the job ends."""
    assert state.store is not None
    f = None
    pending = b""
    try:
        while True:
            job = state.store.get(job_id)
            if f is None:
                path = frames_file(state.store, job_id)
                if path.exists():
                    f = open(path, "rb")  # noqa: SIM115 - kept open across renames while the job writes
            if f is not None:
                chunk = f.read(1 << 16)
                if chunk:
                    pending += chunk
                    cut = pending.rfind(b"\n") + 1
                    if cut:
                        yield pending[:cut]
                        pending = pending[cut:]
                    continue
            if job is None:
                return
            if job.status in ("done", "failed") and (f is not None or job.status == "failed"):
                if f is not None:
                    rest = f.read()
                    if rest or pending:
                        yield pending + rest
                if job.status == "failed":
                    yield (json.dumps({"error": job.error}) + "\n").encode()
                return
            await asyncio.sleep(0.1)
    finally:
        if f is not None:
            f.close()
