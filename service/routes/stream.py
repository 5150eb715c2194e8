"""`WS /v1/stream`: admission (API key, readiness, the stream limits, in all and per client: `deps.client_id`);
the session is `hotpose.service.streams`."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, WebSocket

from hotpose.service import metrics
from hotpose.service.deps import app_state, client_id, key_ok
from hotpose.service.stream_protocol import CLOSE_OVERLOADED, CLOSE_POLICY
from hotpose.service.streams import StreamContext, serve_stream

router = APIRouter()


@router.websocket("/v1/stream")
async def stream(ws: WebSocket) -> None:
    state = app_state(ws)
    s = state.settings
    await ws.accept()
    if not key_ok(s, ws.headers.get("authorization"), ws.query_params.get("api_key")):
        await ws.close(code=CLOSE_POLICY, reason="missing or wrong API key")
        return
    if not state.ready or state.engine is None or state.executor is None:
        await ws.close(code=CLOSE_OVERLOADED, reason="models are loading")
        return
    if len(state.streams) >= s.max_streams:
        await ws.close(code=CLOSE_OVERLOADED, reason=f"too many streams (limit {s.max_streams})")
        return
    client = client_id(s, ws)
    if client is not None and state.client_streams[client] >= s.max_streams_per_key:
        who = "this API key" if client.startswith("key:") else "this client address"
        reason = f"too many streams for {who} (HOTPOSE_MAX_STREAMS_PER_KEY={s.max_streams_per_key})"
        await ws.close(code=CLOSE_OVERLOADED, reason=reason)
        return
    sid = uuid.uuid4().hex[:12]
    state.streams.add(sid)
    if client is not None:
        state.client_streams[client] += 1
    metrics.ACTIVE_STREAMS.inc()
    try:
        await serve_stream(ws, StreamContext(s, state.engine, state.executor), sid)
    finally:
        state.streams.discard(sid)
        if client is not None:
            state.client_streams[client] -= 1
            if state.client_streams[client] <= 0:
                del state.client_streams[client]
        metrics.ACTIVE_STREAMS.dec()
