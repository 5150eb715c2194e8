"""The FastAPI application factories (routes in `hotpose.service.routes`).

`build_app` makes the app over backend objects: a 2D stage and a lifter (`hotpose.service.backends`:
this process's batching schedulers, or Ray Serve handles) and the job and result stores
(`hotpose.service.stores`); no route knows which it has. `create_app(settings)` is the single-process
server: local models, SQLite or PostgreSQL, a directory or S3, as the settings say.

Models load in the lifespan (never at import) and a warm-up inference runs through both
backends before `/healthz` reports ready. Every route but `/livez`, `/healthz` and
`/metrics` needs an API key when `HOTPOSE_API_KEYS` is set.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from hotpose.service import __version__, metrics
from hotpose.service.backends import DetectorBackend, LifterBackend
from hotpose.service.deps import AppState
from hotpose.service.engine import Engine, EngineConfig, local_backends
from hotpose.service.jobs import ClipLimits, JobRunner, Jobs, RunnerConfig
from hotpose.service.routes import ROUTERS
from hotpose.service.routes.info import STATIC, check_three
from hotpose.service.settings import Settings
from hotpose.service.stores import JobStore, ResultStore, open_job_store, open_result_store
from hotpose.service.stores.base import StoreUnavailableError

log = logging.getLogger(__name__)

EXPIRE_EVERY_S = 3600  # how often finished jobs past the retention are deleted


def create_app(settings: Settings | None = None) -> FastAPI:
    """The single-process server: this process's models and clip workers, the stores the settings name."""
    s = settings or Settings()
    detector, lifter = local_backends(EngineConfig.from_settings(s))
    return build_app(
        s, detector=detector, lifter=lifter, jobs=open_job_store(s.job_db, s.data_dir),
        results=open_result_store(s.results, s.data_dir),
    )  # fmt: skip


def build_app(
    settings: Settings,
    *,
    detector: DetectorBackend,
    lifter: LifterBackend | None,
    jobs: JobStore,
    results: ResultStore,
    workers: int | None = None,
) -> FastAPI:
    """The app over these backends; `workers` clip workers in this process (default `HOTPOSE_JOB_WORKERS`;
    0 where other processes take the queued jobs from the store)."""
    state = AppState(settings=settings)
    parts = _Parts(detector, lifter, jobs, results, settings.job_workers if workers is None else workers)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(_start, state, parts)
        cleaner = asyncio.create_task(_expire_periodically(state))
        try:
            yield
        finally:
            cleaner.cancel()
            await asyncio.to_thread(_stop, state)

    app = FastAPI(title="hotpose", version=__version__, lifespan=lifespan)
    app.state.hotpose = state
    app.middleware("http")(_count_requests)
    if state.settings.origins:  # an explicit CORS policy; none by default
        app.add_middleware(
            CORSMiddleware, allow_origins=state.settings.origins, allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-Id"], expose_headers=["X-Request-Id"],
        )  # fmt: skip
    for router in ROUTERS:
        app.include_router(router)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for kind in _store_errors():
        app.add_exception_handler(kind, _store_unavailable)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


@dataclass(frozen=True)
class _Parts:
    detector: DetectorBackend
    lifter: LifterBackend | None
    jobs: JobStore
    results: ResultStore
    workers: int


def _start(state: AppState, parts: _Parts) -> None:
    s = state.settings
    s.data_dir.mkdir(parents=True, exist_ok=True)
    check_three(s.home)
    parts.detector.start()
    if parts.lifter is not None:
        parts.lifter.start()
    engine = Engine(detector=parts.detector, lifter=parts.lifter, flip=s.flip, track_max_gap_s=s.track_max_gap_s)
    state.engine = engine
    if engine.window and s.live_stride > engine.window:
        raise ValueError(f"HOTPOSE_LIVE_STRIDE={s.live_stride} exceeds the lifter's window of {engine.window} frames")
    jobs = Jobs(parts.jobs, parts.results, s.data_dir / "uploads")
    state.jobs = jobs
    expired = jobs.expire(s.retention_hours * 3600)
    if expired:
        log.info("deleted %d jobs older than the retention", expired)
    if parts.workers > 0:
        limits = ClipLimits(s.max_clip_frames, s.max_clip_seconds, s.max_frame_pixels)
        config = RunnerConfig.from_settings(s, parts.workers)
        runner = JobRunner(jobs, lambda camera: engine.pipeline(camera=camera), limits, config)
        resumed = runner.recover()
        if resumed:
            log.info("queued again after a restart: %s", resumed)
        runner.start()
        state.runner = runner
    else:
        swept = jobs.sweep()
        if swept:
            log.info("deleted %d half-received uploads", swept)
    state.executor = ThreadPoolExecutor(max_workers=s.max_streams, thread_name_prefix="stream")
    state.ready = True
    weights = parts.lifter.info.weights if parts.lifter is not None else None
    log.info("ready: lifter %s (%s) on %s; jobs in %s, results in %s", s.lifter, weights, engine.device,
             parts.jobs.url, parts.results.url)  # fmt: skip


def _stop(state: AppState) -> None:
    state.ready = False
    if state.executor is not None:
        state.executor.shutdown(wait=False, cancel_futures=True)
    if state.runner is not None:
        state.runner.close()
    if state.engine is not None:
        state.engine.close()
    if state.jobs is not None:
        state.jobs.close()


async def _count_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Metrics and a log line per request; `x-request-id` passed through or made."""
    rid = request.headers.get("x-request-id") or uuid.uuid4().hex[:12]
    t0 = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    path = getattr(route, "path", "unmatched")
    metrics.REQUESTS.labels(request.method, path, str(response.status_code)).inc()
    response.headers["x-request-id"] = rid
    log.info(
        "request %s %s %s -> %d (%.1f ms)",
        rid, request.method, request.url.path, response.status_code, 1000 * (time.perf_counter() - t0),
    )  # fmt: skip
    return response


async def _expire_periodically(state: AppState) -> None:
    while True:
        await asyncio.sleep(EXPIRE_EVERY_S)
        if state.jobs is None:
            continue
        try:
            n = await asyncio.to_thread(state.jobs.expire, state.settings.retention_hours * 3600)
        except Exception:  # a store down for a moment: the next round tries again
            log.exception("could not delete expired jobs")
            continue
        if n:
            log.info("deleted %d expired jobs", n)


def _store_errors() -> list[type[Exception]]:
    """What a job or result store raises when it cannot be reached: ours, and the database and object-storage
    clients' own for a connection lost at run time (when those clients are loaded: their store is in use)."""
    kinds: list[type[Exception]] = [StoreUnavailableError]
    if "psycopg" in sys.modules:
        kinds.append(sys.modules["psycopg"].OperationalError)
    if "botocore.exceptions" in sys.modules:
        botocore = sys.modules["botocore.exceptions"]
        kinds += [botocore.BotoCoreError, botocore.ClientError]
    return kinds


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    """A store that cannot answer: 503 with the reason (never a password: the stores' messages mask it)."""
    log.error("store unavailable for %s %s: %s", request.method, request.url.path, exc)
    detail = f"the job store or result store is unavailable ({type(exc).__name__}); try again shortly"
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "5"})


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """A request FastAPI could not validate: 422 with the one error body (`schemas.ErrorResponse`)."""
    assert isinstance(exc, RequestValidationError)
    parts = [f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()]
    return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    """HTTP errors as FastAPI answers them, except 405: its `Allow` names every method of the path
    (Starlette's names those of the first route that matched the path only)."""
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        allowed: set[str] = set()
        for route in request.app.routes:
            if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE:
                allowed |= route.methods or set()
        headers["Allow"] = ", ".join(sorted(allowed))
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
