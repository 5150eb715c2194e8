"""Live streams: `WS /v1/stream`.

Protocol (client -> server):
- optional first text message `{"type": "config", "fps": 30, "emit": "causal" | "delayed",
  "delay_frames": N, "stride": N, "smoothing": true, "ack": false}`;
- per frame, optionally a text message `{"type": "frame", "t": seconds}` (capture time), then one
  binary message: an encoded image (JPEG, PNG or WebP);
- `{"type": "end"}`: the server flushes what it holds, answers, and closes with 1000.

Server -> client: `{"type": "ready", ...}` once, then per processed frame `{"type": "pose", "index",
"t", "people", "latency_ms", "dropped"}` in index order; `{"type": "error", "index", "message"}` for a
binary that is not an image (the stream goes on); `{"type": "dropped", "indexes": [...]}` when the
server had to drop unprocessed frames; with `"ack": true`, `{"type": "ack", "index"}` as soon as a
frame has been processed (before its pose may be final), which lets a client that must not lose
frames (a file, not a camera) send the next one only when there is room (fewer than the `queue` of
`ready` unanswered), however long the lifter holds frames for context.

A stream with no message for `stream_idle_s` while the server holds none of its frames is closed
with 1008 and a reason; a failure inside the models (not the client's fault) sends `error` for the
frame and closes with 1011 and a reason, so a client never waits on a stream that stopped working.

Frame times: the client's `t` (finite seconds); else `index / fps` when the config gives `fps`; else
the arrival time. Times must increase: when a client's `t` goes back or repeats (a camera or a looped
file restarting its clock), that frame and all later ones are moved on to continue one frame step
after the previous frame, and a stream-level `error` (index null) says so (on the first such frame
and on every jump back of more than 0.5 s); poses carry the times used.

Backpressure: at most `live_queue` unprocessed frames wait per stream; when a new frame arrives
on a full queue the oldest waiting one is dropped and reported (never silently), so a client that
sends faster than the server processes gets the newest frames at bounded memory and latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from hotpose.service import metrics
from hotpose.service.lifting import LiftPolicy
from hotpose.service.pipeline import FramePoses, PosePipeline
from hotpose.service.smoothing import OneEuroConfig
from hotpose.service.video import image_size

log = logging.getLogger(__name__)

CLOSE_OVERLOADED = 1013  # "try again later"
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011


@dataclass
class _Frame:
    index: int
    t: float
    data: bytes
    received: float  # perf_counter at arrival


@dataclass
class StreamConfig:
    fps: float | None = None
    emit: str = "causal"
    delay_frames: int = 30
    stride: int = 2
    smoothing: bool = True
    ack: bool = False
    max_gap_s: float = 3.0  # the tracker's gap: a person hidden this long continues their lifter buffer

    @classmethod
    def parse(cls, msg: dict[str, Any], default: StreamConfig, window: int = 243) -> StreamConfig:
        """A client's config message over the defaults; `window`: the lifter's frames (limits stride and delay)."""
        cfg = StreamConfig(
            default.fps, default.emit, default.delay_frames, default.stride, default.smoothing,
            max_gap_s=default.max_gap_s,
        )
        cfg.ack = bool(msg.get("ack", False))
        if "fps" in msg and msg["fps"] is not None:
            cfg.fps = float(msg["fps"])
            if not 0 < cfg.fps <= 240:
                raise ValueError("fps must be in (0, 240]")
        if "emit" in msg:
            if msg["emit"] not in ("causal", "delayed"):
                raise ValueError("emit must be 'causal' or 'delayed'")
            cfg.emit = msg["emit"]
        if "delay_frames" in msg:
            cfg.delay_frames = int(msg["delay_frames"])
            if not 1 <= cfg.delay_frames <= window - 1:
                raise ValueError(f"delay_frames must be in [1, {window - 1}]")
        if "stride" in msg:
            cfg.stride = int(msg["stride"])
            if not 1 <= cfg.stride <= window:
                raise ValueError(f"stride must be in [1, {window}] (the lifter's window)")
        if "smoothing" in msg:
            cfg.smoothing = bool(msg["smoothing"])
        return cfg

    def policy(self) -> LiftPolicy:
        delay = self.delay_frames if self.emit == "delayed" else 0
        # delayed: a person missed for a frame or a few keeps their pending frames' future context
        # (the others wait up to 0.2 s more when someone leaves); causal frames have none to keep
        hold = 0.2 if self.emit == "delayed" else 0.0
        return LiftPolicy(stride=self.stride, delay=delay, max_gap_s=self.max_gap_s, hold_s=hold)


@dataclass
class _Session:
    sid: str
    config: StreamConfig
    pipeline: PosePipeline
    queue: deque[_Frame] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    received: dict[int, float] = field(default_factory=dict)  # index -> arrival, until answered
    dropped: int = 0
    ended: bool = False
    busy: bool = False  # a frame is in the models
    next_index: int = 0
    t_first: float | None = None
    shifts: int = 0  # frames whose time was moved on because the client's clock went back
    max_pixels: int = 3840 * 2160


def add_stream_route(app: FastAPI) -> None:
    from hotpose.service.app import AppState, check_key

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket) -> None:
        state: AppState = ws.app.state.hotpose
        s = state.settings
        await ws.accept()
        if not check_key(s, ws.headers.get("authorization"), ws.query_params.get("api_key")):
            await ws.close(code=CLOSE_POLICY, reason="missing or wrong API key")
            return
        if not state.ready or state.engine is None:
            await ws.close(code=CLOSE_OVERLOADED, reason="models are loading")
            return
        if len(state.streams) >= s.max_streams:
            await ws.close(code=CLOSE_OVERLOADED, reason=f"too many streams (limit {s.max_streams})")
            return
        assert state.executor is not None
        sid = uuid.uuid4().hex[:12]
        state.streams.add(sid)
        metrics.ACTIVE_STREAMS.inc()
        try:
            await _serve(ws, state, sid, state.executor)
        finally:
            state.streams.discard(sid)
            metrics.ACTIVE_STREAMS.dec()


async def _serve(ws: WebSocket, state: Any, sid: str, executor: ThreadPoolExecutor) -> None:
    s = state.settings
    engine = state.engine
    default = StreamConfig(
        None, "causal", s.live_delay_frames, s.live_stride, s.live_smoothing, max_gap_s=s.track_max_gap_s
    )
    cfg = default
    first: Any = None
    try:
        first = await asyncio.wait_for(ws.receive(), s.stream_idle_s)
    except WebSocketDisconnect:
        return
    except TimeoutError:
        await ws.close(code=CLOSE_POLICY, reason=f"no message for {s.stream_idle_s:g} s")
        return
    if first.get("type") == "websocket.disconnect":
        return
    if first.get("text") is not None:
        try:
            msg = json.loads(first["text"])
            if msg.get("type") == "config":
                cfg = StreamConfig.parse(msg, default, engine.window or 243)
                first = None
        except (ValueError, TypeError, AttributeError, OverflowError, RecursionError) as e:
            await ws.close(code=CLOSE_POLICY, reason=f"bad config: {e}"[:120])
            return
    smoothing = OneEuroConfig() if cfg.smoothing else None
    session = _Session(
        sid, cfg, engine.pipeline(cfg.policy(), smoothing, flip=s.live_flip), max_pixels=s.max_frame_pixels
    )
    log.info("stream %s: open (%s)", sid, cfg)
    await ws.send_json({
        "type": "ready", "stream_id": sid, "emit": cfg.emit, "stride": cfg.stride,
        "delay_frames": cfg.policy().delay, "window": engine.window, "smoothing": cfg.smoothing,
        "queue": s.live_queue, "lifter": engine.lifter is not None, "flip": s.live_flip,
    })  # fmt: skip
    worker = asyncio.create_task(_process(ws, session, executor))
    max_bytes = int(s.max_message_mb * (1 << 20))
    pending_t: float | None = None
    idle = False
    try:
        msg = first
        while True:
            if msg is None:
                try:
                    msg = await asyncio.wait_for(ws.receive(), s.stream_idle_s)
                except TimeoutError:
                    if not worker.done() and (session.busy or session.queue):
                        continue  # the client may be waiting on us (acks)
                    if not worker.done():
                        if session.received:  # frames held for context: answer them before closing
                            session.ended = True
                            session.wake.set()
                            await worker
                        if ws.application_state == WebSocketState.CONNECTED:
                            await ws.close(code=CLOSE_POLICY, reason=f"no message for {s.stream_idle_s:g} s")
                    log.info("stream %s: closed after %g s without a message", sid, s.stream_idle_s)
                    idle = True
                    break
            kind = msg.get("type")
            if kind == "websocket.disconnect" or worker.done() or ws.application_state != WebSocketState.CONNECTED:
                break  # the worker ended early: it failed and closed the socket
            if msg.get("bytes") is not None:
                data: bytes = msg["bytes"]
                index = session.next_index
                session.next_index += 1
                if len(data) > max_bytes:
                    pending_t = None  # the time announced for this frame goes with it
                    await ws.send_json(
                        {"type": "error", "index": index, "message": f"frame larger than {s.max_message_mb:g} MB"}
                    )
                    msg = None
                    continue
                now = time.perf_counter()
                t = _frame_time(session, index, pending_t, now)
                pending_t = None
                if len(session.queue) >= s.live_queue:
                    old = session.queue.popleft()
                    session.dropped += 1
                    metrics.FRAMES_DROPPED.inc()
                    await ws.send_json({"type": "dropped", "indexes": [old.index], "dropped": session.dropped})
                session.queue.append(_Frame(index, t, data, now))
                session.wake.set()
            elif msg.get("text") is not None:
                try:
                    m = json.loads(msg["text"])
                    if m.get("type") == "frame":
                        pending_t = float(m["t"])
                        if not math.isfinite(pending_t):
                            pending_t = None
                            raise ValueError("t must be a finite number of seconds")
                    elif m.get("type") == "end":
                        session.ended = True
                        session.wake.set()
                        break
                    else:
                        raise ValueError(f"unknown message type {m.get('type')!r}")
                except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError) as e:
                    await ws.send_json({"type": "error", "index": None, "message": f"bad message: {e}"[:300]})
            msg = None
        if session.ended and not idle:
            await worker
            if ws.application_state == WebSocketState.CONNECTED:
                await ws.close(code=1000)
            log.info("stream %s: ended by the client; %d frames, %d dropped", sid, session.next_index, session.dropped)
    except WebSocketDisconnect:
        pass
    except RuntimeError as e:  # sent to a socket the worker had just closed (after a failure)
        log.debug("stream %s: %s", sid, e)
    finally:
        if not worker.done():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await worker
        log.info("stream %s: closed", sid)


def _frame_time(session: _Session, index: int, given: float | None, now: float) -> float:
    if given is not None:
        return given
    if session.config.fps:
        return index / session.config.fps
    if session.t_first is None:
        session.t_first = now
    return now - session.t_first


async def _process(ws: WebSocket, session: _Session, executor: ThreadPoolExecutor) -> None:
    loop = asyncio.get_running_loop()
    last_t = -float("inf")
    shift = 0.0  # added to the client's times once its clock went back (module docstring: frame times)
    step = 1 / 30  # the last positive step between frame times
    while True:
        if not session.queue:
            if session.ended:
                break
            session.wake.clear()
            await session.wake.wait()
            continue
        fr = session.queue.popleft()
        t = fr.t + shift
        if t <= last_t:  # the client's clock went back or stood still: continue one step after the last frame
            shift = last_t + step - fr.t
            if t < last_t - 0.5 or session.shifts == 0:
                await ws.send_json({"type": "error", "index": None, "message": (
                    f"frame {fr.index}: t = {fr.t:.3f} s is not after the previous frame's; this stream's times "
                    f"from here on are the client's + {shift:.3f} s (poses carry the times used)")})  # fmt: skip
            session.shifts += 1
            t = fr.t + shift
        elif last_t > -float("inf"):
            step = min(max(t - last_t, 1 / 240), 1.0)
        last_t = t
        session.received[fr.index] = fr.received
        session.busy = True
        try:
            out = await loop.run_in_executor(
                executor, _step, session.pipeline, fr.index, t, fr.data, session.max_pixels
            )
        except _NotAnImageError as e:
            session.received.pop(fr.index, None)
            session.busy = False
            await ws.send_json({"type": "error", "index": fr.index, "message": str(e)})
            continue
        except Exception as e:  # noqa: BLE001 - a model or scheduler failure ends the stream, said out loud
            await _fail(ws, session, fr.index, e)
            return
        if session.config.ack:
            await ws.send_text(f'{{"type":"ack","index":{fr.index}}}')
        await _send(ws, session, out)
        session.busy = False
    session.busy = True
    try:
        out = await loop.run_in_executor(executor, session.pipeline.flush)
    except Exception as e:  # noqa: BLE001 - as above, for the frames held for context
        await _fail(ws, session, None, e)
        return
    await _send(ws, session, out)


async def _fail(ws: WebSocket, session: _Session, index: int | None, e: Exception) -> None:
    """A failure in the models: tell the client which frame and why, then close with 1011."""
    where = "the end of the stream" if index is None else f"frame {index}"
    log.error("stream %s: %s failed", session.sid, where, exc_info=e)
    reason = f"internal error at {where}: {type(e).__name__}"
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # the client may be gone already
        await ws.send_json({"type": "error", "index": index, "message": f"{reason}: {e}"})
        await ws.close(code=CLOSE_INTERNAL, reason=reason[:120])


class _NotAnImageError(ValueError):
    pass


def _step(pipeline: PosePipeline, index: int, t: float, data: bytes, max_pixels: int) -> list[FramePoses]:
    t0 = time.perf_counter()
    size = image_size(data)  # from the header: a huge image is refused before it is decoded
    if size is None:
        raise _NotAnImageError(f"frame {index}: not an image (send JPEG, PNG or WebP bytes)")
    if size[0] * size[1] > max_pixels:
        raise _NotAnImageError(f"frame {index}: {size[0]}x{size[1]} exceeds the limit of {max_pixels} pixels")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise _NotAnImageError(f"frame {index}: the image does not decode (corrupt or truncated)")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    metrics.STAGE_SECONDS.labels("decode").observe(time.perf_counter() - t0)
    metrics.FRAMES.labels("live").inc()
    return pipeline.push(index, t, rgb)


async def _send(ws: WebSocket, session: _Session, frames: list[FramePoses]) -> None:
    now = time.perf_counter()
    for fp in frames:
        arrived = session.received.pop(fp.index, now)
        msg = {
            "type": "pose",
            **fp.to_dict(),
            "t": round(fp.time, 4),
            "latency_ms": round(1000 * (now - arrived), 1),
            "dropped": session.dropped,
        }
        msg.pop("time")
        await ws.send_text(json.dumps(msg, separators=(",", ":")))
