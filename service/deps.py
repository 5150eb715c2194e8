"""What the routes share: the application's state and the API-key check (FastAPI dependencies).

`create_app` (`hotpose.service.app`) makes one `AppState`, fills it in the lifespan and puts it on
`app.state.hotpose`; the routers in `hotpose.service.routes` reach it only through this module.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from starlette.requests import HTTPConnection

from hotpose.service.engine import Engine
from hotpose.service.jobs import JobRunner, Jobs
from hotpose.service.settings import Settings


@dataclass
class AppState:
    settings: Settings
    engine: Engine | None = None
    jobs: Jobs | None = None
    runner: JobRunner | None = None  # None where other processes run the clips (Ray ClipWorkers)
    executor: ThreadPoolExecutor | None = None  # live sessions' blocking steps
    ready: bool = False
    streams: set[str] = field(default_factory=set)  # ids of the open live streams
    client_streams: Counter[str] = field(default_factory=Counter)  # open live streams per `client_id`
    uploads: Counter[str | None] = field(default_factory=Counter)  # clip uploads being received, per `client_id`
    admission: asyncio.Lock = field(default_factory=asyncio.Lock)  # a clip's admission: count, check, take a slot


@dataclass(frozen=True)
class Ready:
    """The state of a service whose models are loaded: every part present."""

    settings: Settings
    engine: Engine
    jobs: Jobs
    uploads: Counter[str | None]
    admission: asyncio.Lock


def app_state(conn: HTTPConnection) -> AppState:
    """The state of the app serving this request or WebSocket."""
    state: AppState = conn.app.state.hotpose
    return state


def key_ok(settings: Settings, authorization: str | None, api_key: str | None) -> bool:
    """Whether a request may pass: no keys configured, or a configured key as Bearer token or `api_key`."""
    keys = settings.keys
    if not keys:
        return True
    token = _token(authorization, api_key)
    if token is None:
        return False
    # compared in constant time, every key: the answer's timing says nothing of how close a guess was
    given = token.encode()
    return any([hmac.compare_digest(given, k.encode()) for k in sorted(keys)])


def _token(authorization: str | None, api_key: str | None) -> str | None:
    """The key a request sends: its Bearer token, else its `api_key` query parameter."""
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return api_key


def client_id(settings: Settings, conn: HTTPConnection) -> str | None:
    """Who a request or stream comes from, for the per-key limits (`HOTPOSE_MAX_*_PER_KEY`).

    With API keys: `key:` and a sha256 prefix of its key (a job records it; the key itself is never
    stored or logged). On an open server: `addr:` and a sha256 prefix of the client's address (behind
    a proxy on the same machine, uvicorn takes it from `X-Forwarded-For`), except None for a client
    on the server's own machine (loopback): an open server is meant to be used from its own machine,
    and counting all of its local users as one client would cut it down to the per-key limit.
    """
    if settings.keys:
        token = _token(conn.headers.get("authorization"), conn.query_params.get("api_key")) or ""
        return "key:" + hashlib.sha256(token.encode()).hexdigest()[:16]
    host = conn.client.host if conn.client is not None else ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:  # not an address (a Unix socket, a test client): counted by its name
        pass
    return "addr:" + hashlib.sha256(host.encode()).hexdigest()[:16]


def require_key(request: Request, api_key: Annotated[str | None, Query()] = None) -> None:
    if not key_ok(app_state(request).settings, request.headers.get("authorization"), api_key):
        raise HTTPException(status_code=401, detail="missing or wrong API key", headers={"WWW-Authenticate": "Bearer"})


def ready_state(request: Request) -> Ready:
    s = app_state(request)
    if not s.ready or s.engine is None or s.jobs is None:
        raise HTTPException(status_code=503, detail="models are loading")
    return Ready(s.settings, s.engine, s.jobs, s.uploads, s.admission)


State = Annotated[Ready, Depends(ready_state)]
Auth = Depends(require_key)
