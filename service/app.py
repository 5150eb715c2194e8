"""The FastAPI application factory: settings in, app out (routes in `hotpose.service.routes`).

Models load in the lifespan (never at import) and a warm-up inference runs through both
batching schedulers before `/healthz` reports ready. Every route but `/livez`, `/healthz` and
`/metrics` needs an API key when `HOTPOSE_API_KEYS` is set.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from hotpose.service import __version__, metrics
from hotpose.service.deps import AppState
from hotpose.service.engine import Engine, EngineConfig
from hotpose.service.jobs import ClipLimits, JobRunner, JobStore
from hotpose.service.routes import ROUTERS
from hotpose.service.routes.info import STATIC, check_three
from hotpose.service.settings import Settings

log = logging.getLogger(__name__)

EXPIRE_EVERY_S = 3600  # how often finished jobs past the retention are deleted


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
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _start(state: AppState) -> None:
    s = state.settings
    s.data_dir.mkdir(parents=True, exist_ok=True)
    check_three(s.home)
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
    state.runner = JobRunner(state.store, lambda camera: engine.pipeline(camera=camera), limits, workers=s.job_workers)
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
        if state.store is not None:
            n = await asyncio.to_thread(state.store.expire, state.settings.retention_hours * 3600)
            if n:
                log.info("deleted %d expired jobs", n)


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
