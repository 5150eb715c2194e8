"""What the routes share: the application's state and the API-key check (FastAPI dependencies).

`create_app` (`hotpose.service.app`) makes one `AppState`, fills it in the lifespan and puts it on
`app.state.hotpose`; the routers in `hotpose.service.routes` reach it only through this module.
"""

from __future__ import annotations

import hmac
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from starlette.requests import HTTPConnection

from hotpose.service.engine import Engine
from hotpose.service.jobs import JobRunner, JobStore
from hotpose.service.settings import Settings


@dataclass
class AppState:
    settings: Settings
    engine: Engine | None = None
    store: JobStore | None = None
    runner: JobRunner | None = None
    executor: ThreadPoolExecutor | None = None  # live sessions' blocking steps
    ready: bool = False
    streams: set[str] = field(default_factory=set)  # ids of the open live streams


@dataclass(frozen=True)
class Ready:
    """The state of a service whose models are loaded: every part present."""

    settings: Settings
    engine: Engine
    store: JobStore
    runner: JobRunner


def app_state(conn: HTTPConnection) -> AppState:
    """The state of the app serving this request or WebSocket."""
    state: AppState = conn.app.state.hotpose
    return state


def key_ok(settings: Settings, authorization: str | None, api_key: str | None) -> bool:
    """Whether a request may pass: no keys configured, or a configured key as Bearer token or `api_key`."""
    keys = settings.keys
    if not keys:
        return True
    token = api_key
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    if token is None:
        return False
    # compared in constant time, every key: the answer's timing says nothing of how close a guess was
    given = token.encode()
    return any([hmac.compare_digest(given, k.encode()) for k in sorted(keys)])


def require_key(request: Request, api_key: Annotated[str | None, Query()] = None) -> None:
    if not key_ok(app_state(request).settings, request.headers.get("authorization"), api_key):
        raise HTTPException(status_code=401, detail="missing or wrong API key", headers={"WWW-Authenticate": "Bearer"})


def ready_state(request: Request) -> Ready:
    s = app_state(request)
    if not s.ready or s.engine is None or s.store is None or s.runner is None:
        raise HTTPException(status_code=503, detail="models are loading")
    return Ready(s.settings, s.engine, s.store, s.runner)


State = Annotated[Ready, Depends(ready_state)]
Auth = Depends(require_key)
