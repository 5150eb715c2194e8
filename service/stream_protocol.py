"""The live stream's messages: the client's config and text messages parsed, and the close codes.

The protocol itself is described in `hotpose.service.streams` (and docs/websocket.md); this module
turns the client's JSON into typed values or a `ProtocolError` whose text goes back to the client.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any, Literal

from hotpose.service.lifting import LiftPolicy
from hotpose.service.placing import CameraRequest
from hotpose.service.settings import Settings
from hotpose_client.schema import CLOSE_INTERNAL as CLOSE_INTERNAL  # the close codes: one definition, the schema's
from hotpose_client.schema import CLOSE_NORMAL as CLOSE_NORMAL
from hotpose_client.schema import CLOSE_OVERLOADED as CLOSE_OVERLOADED
from hotpose_client.schema import CLOSE_POLICY as CLOSE_POLICY

MAX_CLOSE_REASON = 123  # bytes of UTF-8: a close frame carries at most 125, two of them the code

Emit = Literal["causal", "delayed"]
WINDOW_WITHOUT_LIFTER = 243  # the bound of stride and delay_frames on a server with no lifter (2D only)
PARSE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError)


def close_reason(text: str) -> str:
    """`text` cut to what a close frame can carry, never inside a character (a longer reason is not
    sent at all: the WebSocket library refuses the frame and the client sees the connection drop)."""
    return text.encode()[:MAX_CLOSE_REASON].decode(errors="ignore")


class ProtocolError(ValueError):
    """A client message that does not follow the protocol (its text is sent back)."""


class BadFrameTimeError(ProtocolError):
    """A frame message whose `t` is not a finite number: no time is announced for the next frame."""


@dataclass(frozen=True)
class StreamConfig:
    """One stream's settings: the service's defaults (`from_settings`), then the client's config message."""

    delay_frames: int  # delay of "delayed" emission (frames)
    stride: int  # the lifter runs every this many grid frames per person
    smoothing: bool  # one-euro filter on the 2D shown
    max_gap_s: float  # the tracker's gap: a person hidden this long continues their lifter buffer
    emit: Emit = "causal"  # not a setting: each client chooses (causal unless it asks)
    fps: float | None = None  # the client's frame rate when it sends no times
    ack: bool = False  # acknowledge each frame as soon as it is processed
    camera: CameraRequest = CameraRequest()  # focal_px / fov_deg / person_height_m, for placing people

    @classmethod
    def from_settings(cls, s: Settings) -> StreamConfig:
        return cls(s.live_delay_frames, s.live_stride, s.live_smoothing, s.track_max_gap_s)

    def parse(self, msg: dict[str, Any], window: int, min_delay: int = 0) -> StreamConfig:
        """A client's config message over these defaults; `window`: the lifter's frames (limits stride and
        delay); `min_delay`: the future context the lifter needs (`lifting.min_delay`: half its window for
        a seq2frame lifter, which then emits delayed unless the client asks for causal, and is refused)."""
        cfg = self.parse_fields(msg, window)
        if min_delay <= 0:
            return cfg
        if msg.get("emit") == "causal":
            raise ProtocolError(
                f"this server's lifter predicts the centre frame of a {window}-frame window (seq2frame): it "
                f"needs {min_delay} frames of future context and cannot emit causal; use emit 'delayed'"
            )
        if "delay_frames" in msg and cfg.delay_frames < min_delay:
            raise ProtocolError(f"delay_frames must be >= {min_delay} (half the seq2frame lifter's window)")
        return replace(cfg, emit="delayed", delay_frames=max(cfg.delay_frames, min_delay))

    def parse_fields(self, msg: dict[str, Any], window: int) -> StreamConfig:
        cfg = self
        if msg.get("ack") is not None:
            cfg = replace(cfg, ack=_flag(msg, "ack"))
        if msg.get("fps") is not None:
            fps = _number(msg, "fps")
            if not 0 < fps <= 240:
                raise ProtocolError("fps must be in (0, 240]")
            cfg = replace(cfg, fps=fps)
        if "emit" in msg:
            if msg["emit"] not in ("causal", "delayed"):
                raise ProtocolError("emit must be 'causal' or 'delayed'")
            cfg = replace(cfg, emit=msg["emit"])
        if "delay_frames" in msg:
            delay = _whole(msg, "delay_frames")
            if not 1 <= delay <= window - 1:
                raise ProtocolError(f"delay_frames must be in [1, {window - 1}]")
            cfg = replace(cfg, delay_frames=delay)
        if "stride" in msg:
            stride = _whole(msg, "stride")
            if not 1 <= stride <= window:
                raise ProtocolError(f"stride must be in [1, {window}] (the lifter's window)")
            cfg = replace(cfg, stride=stride)
        if msg.get("smoothing") is not None:
            cfg = replace(cfg, smoothing=_flag(msg, "smoothing"))
        given = {k: _number(msg, k) for k in ("focal_px", "fov_deg", "person_height_m") if msg.get(k) is not None}
        if given:
            try:
                cfg = replace(cfg, camera=CameraRequest(**given))
            except ValueError as e:
                raise ProtocolError(str(e)) from None
        return cfg

    def policy(self) -> LiftPolicy:
        delay = self.delay_frames if self.emit == "delayed" else 0
        # delayed: a person missed for a frame or a few keeps their pending frames' future context
        # (the others wait up to 0.2 s more when someone leaves); causal frames have none to keep
        hold = 0.2 if self.emit == "delayed" else 0.0
        return LiftPolicy(stride=self.stride, delay=delay, max_gap_s=self.max_gap_s, hold_s=hold)


def _flag(msg: dict[str, Any], key: str) -> bool:
    """A JSON true or false (bool("false") is True: a string is refused, not read as the opposite)."""
    value = msg[key]
    if not isinstance(value, bool):
        raise ProtocolError(f"{key} must be true or false, got {type(value).__name__}")
    return value


def _number(msg: dict[str, Any], key: str) -> float:
    """A JSON number (not a string or a bool); OverflowError for an integer too large for a float."""
    value = msg[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"{key} must be a number, got {type(value).__name__}")
    return float(value)


def _whole(msg: dict[str, Any], key: str) -> int:
    """A JSON number with no fraction (3 or 3.0, not 2.9: no silent rounding)."""
    value = _number(msg, key)
    if not value.is_integer():
        raise ProtocolError(f"{key} must be a whole number, got {value}")
    return int(value)


def config_message(text: str) -> dict[str, Any] | None:
    """The first text message as a config (its fields), or None when it is some other message."""
    try:
        msg = json.loads(text)
    except PARSE_ERRORS as e:
        raise ProtocolError(str(e)) from e
    if not isinstance(msg, dict):
        raise ProtocolError(f"the first message is text but not a JSON object (a config): {type(msg).__name__}")
    return msg if msg.get("type") == "config" else None


@dataclass(frozen=True)
class FrameTime:
    """`{"type": "frame", "t": seconds}`: the capture time of the next binary frame."""

    t: float


@dataclass(frozen=True)
class End:
    """`{"type": "end"}`: answer what is held, then close."""


def parse_text(text: str) -> FrameTime | End:
    """A text message after the config -> its typed value; `ProtocolError` says what is wrong (a
    `BadFrameTimeError` for a frame message without a usable `t`: no time is announced then)."""
    try:
        m = json.loads(text)
        kind = m.get("type")
    except PARSE_ERRORS as e:
        raise ProtocolError(str(e)) from e
    if kind == "frame":
        t = m.get("t")
        try:
            ok = isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t)
        except OverflowError:  # an integer too large for a float
            ok = False
        if not ok:
            raise BadFrameTimeError(f"t must be a finite number of seconds, got {str(t)[:40]}")
        return FrameTime(float(t))
    if kind == "end":
        return End()
    if kind == "config":
        raise ProtocolError("a config is only read as the stream's first message: this one is ignored")
    raise ProtocolError(f"unknown message type {kind!r}"[:200])
