"""Live streams: `WS /v1/stream`.

Protocol (client -> server):
- optional first text message `{"type": "config", "fps": 30, "emit": "causal" | "delayed",
  "delay_frames": N, "stride": N, "smoothing": true, "ack": false, "focal_px": F | "fov_deg": D,
  "person_height_m": H}` (the last three place people: `hotpose.service.placing`);
- per frame, optionally a text message `{"type": "frame", "t": seconds}` (capture time), then one
  binary message: an encoded image (JPEG, PNG or WebP);
- `{"type": "end"}`: the server flushes what it holds, answers, and closes with 1000.

Server -> client: `{"type": "ready", ...}` once, then per processed frame `{"type": "pose", "index",
"t", "people", "latency_ms", "dropped", "camera"}` in index order (each person with `root_3d`, placed
with `camera`); `{"type": "error", "index", "message"}` for a
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

The parts: admission (`hotpose.service.routes.stream`), message parsing
(`hotpose.service.stream_protocol`), flow control (`FrameQueue`, `FrameClock`), the receive loop
(`_receive_loop`) and the worker that runs frames through the models in order (`_process`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import BaseModel
from starlette.types import Message
from starlette.websockets import WebSocketState

from hotpose.service import metrics
from hotpose.service.backends import BackendError
from hotpose.service.engine import Engine
from hotpose.service.pipeline import FramePoses, PosePipeline
from hotpose.service.settings import Settings
from hotpose.service.smoothing import OneEuroConfig
from hotpose.service.stream_protocol import (
    CLOSE_INTERNAL,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    PARSE_ERRORS,
    WINDOW_WITHOUT_LIFTER,
    BadFrameTimeError,
    End,
    ProtocolError,
    StreamConfig,
    close_reason,
    config_message,
    parse_text,
)
from hotpose.service.video import NotAnImageError, decode_image
from hotpose_client import schema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamContext:
    """What a session needs from the service: its settings, its models, the threads for blocking steps."""

    settings: Settings
    engine: Engine
    executor: ThreadPoolExecutor


async def serve_stream(ws: WebSocket, ctx: StreamContext, sid: str) -> None:
    """One accepted, admitted WebSocket from its first message to its close."""
    opened = await _open(ws, ctx, sid)
    if opened is None:
        return
    session, first = opened
    worker = asyncio.create_task(_process(ws, session, ctx.executor))
    try:
        ended = await _receive_loop(ws, session, worker, ctx.settings, first)
        if ended:
            await worker
            if ws.application_state == WebSocketState.CONNECTED:
                await ws.close(code=CLOSE_NORMAL)
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


# --- flow control ---------------------------------------------------------------------


@dataclass
class _Frame:
    index: int
    t: float  # the client's time (or index / fps, or arrival), before `FrameClock` orders it
    data: bytes
    received: float  # perf_counter at arrival


@dataclass
class FrameQueue:
    """The frames waiting for the models: at most `size`; a new frame on a full queue drops the oldest."""

    size: int
    frames: deque[_Frame] = field(default_factory=deque)
    dropped: int = 0

    def put(self, frame: _Frame) -> _Frame | None:
        """Queue `frame`; returns the frame dropped to make room, if any (to be reported, never silently)."""
        old = None
        if len(self.frames) >= self.size:
            old = self.frames.popleft()
            self.dropped += 1
            metrics.FRAMES_DROPPED.inc()
        self.frames.append(frame)
        return old

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class FrameClock:
    """Frame times that always increase: a client clock that goes back or repeats is moved on."""

    last: float = -float("inf")
    shift: float = 0.0  # added to the client's times once its clock went back
    step: float = 1 / 30  # the last positive step between frame times
    shifts: int = 0  # frames whose time was moved on

    def order(self, index: int, t_client: float) -> tuple[float, str | None]:
        """The time used for this frame, and the message to send when the client's clock went back."""
        t = t_client + self.shift
        note = None
        if not math.isfinite(t):  # index / a vanishing fps (5e-324), or a shift past the float range
            t = self.last + self.step if self.last > -math.inf else 0.0
            note = f"frame {index}: its time is not a finite number of seconds; it is placed one step after the last"
        elif t <= self.last:  # went back or stood still: continue one step after the last frame
            self.shift = self.last + self.step - t_client
            if t < self.last - 0.5 or self.shifts == 0:
                note = (f"frame {index}: t = {t_client:.3f} s is not after the previous frame's; this stream's times "
                        f"from here on are the client's + {self.shift:.3f} s (poses carry the times used)")  # fmt: skip
            self.shifts += 1
            t = t_client + self.shift
        elif self.last > -float("inf"):
            self.step = min(max(t - self.last, 1 / 240), 1.0)
        self.last = t
        return t, note


@dataclass
class _Session:
    sid: str
    config: StreamConfig
    pipeline: PosePipeline
    queue: FrameQueue
    max_pixels: int
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    received: dict[int, float] = field(default_factory=dict)  # index -> arrival, until answered
    ended: bool = False
    busy: bool = False  # a frame is in the models
    next_index: int = 0
    t_first: float | None = None  # arrival of the first frame, when times are arrival times

    @property
    def dropped(self) -> int:
        return self.queue.dropped

    def frame_time(self, index: int, given: float | None, now: float) -> float:
        """The client's `t`; else `index / fps` when the config gives `fps`; else the arrival time."""
        if given is not None:
            return given
        if self.config.fps:
            return index / self.config.fps
        if self.t_first is None:
            self.t_first = now
        return now - self.t_first


# --- opening and the receive loop -------------------------------------------------------


async def _open(ws: WebSocket, ctx: StreamContext, sid: str) -> tuple[_Session, Message | None] | None:
    """Wait for the first message; a config message configures the stream. Sends `ready`.

    Returns the session and the first message when it still needs handling (it was not a config);
    None when the stream closed before it opened."""
    s, engine = ctx.settings, ctx.engine
    cfg = StreamConfig.from_settings(s)
    try:
        first = await asyncio.wait_for(ws.receive(), s.stream_idle_s)
    except WebSocketDisconnect:
        return None
    except TimeoutError:
        await ws.close(code=CLOSE_POLICY, reason=f"no message for {s.stream_idle_s:g} s")
        return None
    if first.get("type") == "websocket.disconnect":
        return None
    pending: Message | None = first
    try:
        msg = config_message(first["text"]) if first.get("text") is not None else None
        if msg is not None:
            pending = None
        # no config message: the defaults, which a seq2frame lifter turns into delayed emission
        cfg = cfg.parse(msg or {}, engine.window or WINDOW_WITHOUT_LIFTER, engine.min_delay)
    except PARSE_ERRORS as e:  # a ProtocolError, or a number int() or float() cannot take
        await ws.close(code=CLOSE_POLICY, reason=close_reason(f"bad config: {e}"))
        return None
    smoothing = OneEuroConfig() if cfg.smoothing else None
    pipeline = engine.pipeline(cfg.policy(), smoothing, flip=s.live_flip, camera=cfg.camera)
    session = _Session(sid, cfg, pipeline, FrameQueue(s.live_queue), s.max_frame_pixels)
    log.info("stream %s: open (%s)", sid, cfg)
    stride = 1 if engine.kind.seq2frame else cfg.stride  # a seq2frame lifter lifts every frame's own window
    await _say(ws, schema.ReadyMessage(
        stream_id=sid, emit=cfg.emit, stride=stride, delay_frames=cfg.policy().delay, window=engine.window,
        smoothing=cfg.smoothing, queue=s.live_queue, lifter=engine.lifter is not None, flip=s.live_flip,
        root_lag_frames=pipeline.placer.lag,
    ))  # fmt: skip
    return session, pending


async def _receive_loop(
    ws: WebSocket, session: _Session, worker: asyncio.Task[None], s: Settings, first: Message | None
) -> bool:
    """Messages until the client ends the stream (True) or it stops otherwise (False: gone, idle, failed)."""
    max_bytes = int(s.max_message_mb * (1 << 20))
    pending_t: float | None = None  # the time a frame message announced for the next binary frame
    msg = first
    while True:
        if msg is None:
            try:
                msg = await asyncio.wait_for(ws.receive(), s.stream_idle_s)
            except TimeoutError:
                if not worker.done() and (session.busy or session.queue):
                    continue  # the client may be waiting on us (acks)
                await _close_idle(ws, session, worker, s.stream_idle_s)
                return False
        gone = msg.get("type") == "websocket.disconnect" or ws.application_state != WebSocketState.CONNECTED
        if gone or worker.done():
            return False  # a worker that ended early failed and closed the socket
        if msg.get("bytes") is not None:
            await _on_frame(ws, session, msg["bytes"], pending_t, max_bytes, s.max_message_mb)
            pending_t = None  # the time announced for this frame goes with it
        elif msg.get("text") is not None:
            try:
                parsed = parse_text(msg["text"])
            except ProtocolError as e:
                if isinstance(e, BadFrameTimeError):
                    pending_t = None
                await _say(ws, schema.ErrorMessage(index=None, message=f"bad message: {e}"[:300]))
            else:
                if isinstance(parsed, End):
                    session.ended = True
                    session.wake.set()
                    return True
                pending_t = parsed.t
        msg = None


async def _on_frame(
    ws: WebSocket, session: _Session, data: bytes, given_t: float | None, max_bytes: int, max_mb: float
) -> None:
    """A binary message: numbered, timed and queued (or refused when too large; the oldest dropped when full)."""
    index = session.next_index
    session.next_index += 1
    if len(data) > max_bytes:
        await _say(ws, schema.ErrorMessage(index=index, message=f"frame larger than {max_mb:g} MB"))
        return
    now = time.perf_counter()
    old = session.queue.put(_Frame(index, session.frame_time(index, given_t, now), data, now))
    if old is not None:
        await _say(ws, schema.DroppedMessage(indexes=[old.index], dropped=session.dropped))
    session.wake.set()


async def _close_idle(ws: WebSocket, session: _Session, worker: asyncio.Task[None], idle_s: float) -> None:
    """No message for `idle_s` and nothing in the models: answer the frames held for context, close with 1008."""
    if not worker.done():
        if session.received:
            session.ended = True
            session.wake.set()
            await worker
        if ws.application_state == WebSocketState.CONNECTED:
            await ws.close(code=CLOSE_POLICY, reason=f"no message for {idle_s:g} s")
    log.info("stream %s: closed after %g s without a message", session.sid, idle_s)


# --- the worker: frames through the models, in order -------------------------------------


async def _process(ws: WebSocket, session: _Session, executor: ThreadPoolExecutor) -> None:
    loop = asyncio.get_running_loop()
    clock = FrameClock()
    while True:
        if not session.queue:
            if session.ended:
                break
            session.wake.clear()
            await session.wake.wait()
            continue
        fr = session.queue.frames.popleft()
        t, note = clock.order(fr.index, fr.t)
        if note is not None:
            await _say(ws, schema.ErrorMessage(index=None, message=note))
        session.received[fr.index] = fr.received
        session.busy = True
        try:
            out = await loop.run_in_executor(
                executor, _step, session.pipeline, fr.index, t, fr.data, session.max_pixels
            )
        except _NotAnImageError as e:
            session.received.pop(fr.index, None)
            session.busy = False
            await _say(ws, schema.ErrorMessage(index=fr.index, message=str(e)))
            continue
        except Exception as e:  # noqa: BLE001 - a model or scheduler failure ends the stream, said out loud
            await _fail(ws, session, fr.index, e)
            return
        if session.config.ack:
            await _say(ws, schema.AckMessage(index=fr.index))
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
    """A failure in the models: tell the client which frame and why, and the same for every other frame it
    sent that will not be answered now (held for context, or queued), then close with 1011."""
    where = "the end of the stream" if index is None else f"frame {index}"
    if isinstance(e, BackendError):  # a remote model replica died or is unreachable: not a bug of ours
        log.warning("stream %s: %s failed: %s", session.sid, where, e)
        reason = f"the models failed at {where}"
    else:
        log.error("stream %s: %s failed", session.sid, where, exc_info=e)
        reason = f"internal error at {where}: {type(e).__name__}"
    lost = sorted({*session.received, *(fr.index for fr in session.queue.frames)} - {index})
    session.received.clear()
    session.queue.frames.clear()
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # the client may be gone already
        await _say(ws, schema.ErrorMessage(index=index, message=f"{reason}: {e}"))
        for i in lost:
            await _say(ws, schema.ErrorMessage(index=i, message=f"not answered: {reason}"))
        await ws.close(code=CLOSE_INTERNAL, reason=close_reason(reason))


class _NotAnImageError(ValueError):
    """A frame that is not an image within the limits: reported for that frame, the stream goes on."""


def _step(pipeline: PosePipeline, index: int, t: float, data: bytes, max_pixels: int) -> list[FramePoses]:
    """Decode one frame and push it through the pipeline (blocking: runs on the executor)."""
    t0 = time.perf_counter()
    try:
        rgb = decode_image(data, max_pixels)
    except NotAnImageError as e:
        raise _NotAnImageError(f"frame {index}: {e}") from None
    metrics.STAGE_SECONDS.labels("decode").observe(time.perf_counter() - t0)
    metrics.FRAMES.labels("live").inc()
    return pipeline.push(index, t, rgb, data)


async def _say(ws: WebSocket, msg: BaseModel) -> None:
    """One server message (`hotpose_client.schema`: the documented ones), as compact JSON."""
    await ws.send_text(msg.model_dump_json())


async def _send(ws: WebSocket, session: _Session, frames: list[FramePoses]) -> None:
    now = time.perf_counter()
    camera = session.pipeline.camera
    wire_camera = None if camera is None else schema.Camera.model_validate(camera.to_dict())
    for fp in frames:
        arrived = session.received.pop(fp.index, now)
        frame = fp.to_wire()
        await _say(ws, schema.PoseMessage(
            index=frame.index, t=frame.time, people=frame.people, latency_ms=round(1000 * (now - arrived), 1),
            dropped=session.dropped, camera=wire_camera,
        ))  # fmt: skip
