"""The live stream's message parsing and flow control, without a socket (end to end: test_streams.py)."""

from __future__ import annotations

import math

import pytest

from hotpose.service.deps import key_ok
from hotpose.service.settings import Settings
from hotpose.service.stream_protocol import (
    BadFrameTimeError,
    End,
    FrameTime,
    ProtocolError,
    StreamConfig,
    close_reason,
    config_message,
    parse_text,
)
from hotpose.service.streams import FrameClock, FrameQueue, _Frame


def test_the_defaults_are_the_settings_and_a_config_overrides_them() -> None:
    s = Settings(live_delay_frames=12, live_stride=6, live_smoothing=False, track_max_gap_s=2.0)
    base = StreamConfig.from_settings(s)
    assert (base.delay_frames, base.stride, base.smoothing, base.max_gap_s) == (12, 6, False, 2.0)
    assert (base.emit, base.fps, base.ack) == ("causal", None, False)
    cfg = base.parse({"emit": "delayed", "fps": 25, "stride": 3, "ack": True, "smoothing": True}, window=27)
    assert (cfg.emit, cfg.fps, cfg.stride, cfg.ack, cfg.smoothing, cfg.delay_frames) == (
        "delayed",
        25.0,
        3,
        True,
        True,
        12,
    )
    policy = cfg.policy()
    assert (policy.stride, policy.delay, policy.max_gap_s, policy.hold_s) == (3, 12, 2.0, 0.2)
    causal = base.policy()
    assert (causal.delay, causal.hold_s) == (0, 0.0)


@pytest.mark.parametrize(
    ("msg", "error"),
    [
        ({"fps": 0}, "fps must be in"),
        ({"fps": 1000}, "fps must be in"),
        ({"emit": "soon"}, "emit must be"),
        ({"delay_frames": 27}, r"delay_frames must be in \[1, 26\]"),
        ({"stride": 0}, r"stride must be in \[1, 27\]"),
        ({"stride": 28}, r"stride must be in \[1, 27\]"),
    ],
)
def test_a_config_out_of_range_is_refused_with_the_reason(msg: dict[str, object], error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        StreamConfig.from_settings(Settings()).parse(msg, window=27)


@pytest.mark.parametrize(
    ("msg", "error"),
    [
        ({"ack": "false"}, "ack must be true or false, got str"),  # bool("false") was True: acks turned on
        ({"smoothing": 0}, "smoothing must be true or false, got int"),
        ({"stride": 2.9}, "stride must be a whole number, got 2.9"),  # was rounded down to 2
        ({"stride": "5"}, "stride must be a number, got str"),
        ({"delay_frames": True}, "delay_frames must be a number, got bool"),
        ({"fps": [30]}, "fps must be a number, got list"),
        ({"focal_px": "600"}, "focal_px must be a number, got str"),
    ],
)
def test_a_config_field_of_the_wrong_json_type_is_refused(msg: dict[str, object], error: str) -> None:
    """Found by tests/service/test_stream_fuzz.py: the server read "false" as true and 2.9 as 2."""
    with pytest.raises(ProtocolError, match=error):
        StreamConfig.from_settings(Settings()).parse(msg, window=27)
    cfg = StreamConfig.from_settings(Settings()).parse({"stride": 3.0, "ack": None, "smoothing": None}, window=27)
    assert (cfg.stride, cfg.ack, cfg.smoothing) == (3, False, True)  # a whole 3.0 is 3; null is the default


def test_a_close_reason_fits_a_close_frame() -> None:
    """Found by the fuzz: "bad config: " + a non-ASCII value cut to 120 characters was up to 480 bytes;
    the WebSocket library refused the close frame and the client saw the connection drop (1006)."""
    for text in ["é" * 200, "x" * 500, "bad config: " + "€" * 50, "short"]:
        reason = close_reason(text)
        assert len(reason.encode()) <= 123 and text.startswith(reason)
    assert close_reason("short") == "short"


def test_the_first_message_is_a_config_or_not() -> None:
    assert config_message('{"type": "config", "fps": 30}') == {"type": "config", "fps": 30}
    assert config_message('{"type": "frame", "t": 0}') is None
    with pytest.raises(ProtocolError):
        config_message("{not json")


def test_text_messages_parse_to_typed_values() -> None:
    assert parse_text('{"type": "frame", "t": 1.5}') == FrameTime(1.5)
    assert parse_text('{"type": "end"}') == End()
    with pytest.raises(BadFrameTimeError, match="finite"):
        parse_text('{"type": "frame", "t": NaN}')
    with pytest.raises(ProtocolError, match="unknown message type 'hello'"):
        parse_text('{"type": "hello"}')
    with pytest.raises(ProtocolError, match="only read as the stream's first message"):
        parse_text('{"type": "config", "fps": 30}')  # a config twice: said so, not "unknown type 'config'"
    # every frame message without a usable t cancels the time it would have announced, not only NaN
    for bad in ['{"type": "frame"}', '{"type": "frame", "t": "1.5"}', '{"type": "frame", "t": true}',
                '{"type": "frame", "t": 1' + "0" * 400 + "}", '{"type": "frame", "t": [1]}']:  # fmt: skip
        with pytest.raises(BadFrameTimeError, match="t must be a finite number of seconds"):
            parse_text(bad)
    for bad in ('{"type": "frame"}', "[1, 2]", "nope", '{"type": "frame", "t": "soon"}', "[" * 100_000):
        with pytest.raises(ProtocolError):
            parse_text(bad)


def test_a_full_queue_drops_its_oldest_frame_and_counts_it() -> None:
    q = FrameQueue(2)
    frames = [_Frame(i, i / 30, b"", 0.0) for i in range(4)]
    assert q.put(frames[0]) is None and q.put(frames[1]) is None
    assert q.put(frames[2]) is frames[0] and q.put(frames[3]) is frames[1]
    assert [f.index for f in q.frames] == [2, 3] and q.dropped == 2 and len(q) == 2


def test_frame_times_always_increase_and_a_clock_going_back_is_reported() -> None:
    clock = FrameClock()
    times = [clock.order(i, t) for i, t in enumerate([0.0, 0.1, 0.2, 0.05, 0.15, 0.15])]
    used = [t for t, _ in times]
    assert all(b > a for a, b in zip(used, used[1:], strict=False))
    assert [note is not None for _, note in times] == [False, False, False, True, False, False]
    assert math.isclose(used[3], 0.3) and "frame 3" in (times[3][1] or "") and clock.shifts == 2


def test_a_time_that_is_not_finite_is_placed_one_step_on() -> None:
    """Found by the fuzz: `fps: 5e-324` (in (0, 240]) made frame 1's time 1 / 5e-324 = inf, and the lifter's
    grid failed on it (NaN to int): 1011, an internal error, for a client's config."""
    clock = FrameClock()
    used = [clock.order(i, t) for i, t in enumerate([0.0, 0.1, math.inf, 0.3, -math.inf])]
    assert [t for t, _ in used][:4] == pytest.approx([0.0, 0.1, 0.2, 0.3]) and math.isfinite(used[4][0])
    assert used[2][1] is not None and "frame 2" in used[2][1] and "not a finite number" in used[2][1]
    assert FrameClock().order(0, math.inf)[0] == 0.0


def test_api_keys_as_bearer_token_or_query_parameter() -> None:
    open_, locked = Settings(api_keys=""), Settings(api_keys="k1, k2")
    assert key_ok(open_, None, None)
    assert key_ok(locked, "Bearer k2", None) and key_ok(locked, None, "k1")
    assert not key_ok(locked, None, None) and not key_ok(locked, "Bearer nope", None)
    assert not key_ok(locked, "Basic k1", None)


def test_a_seq2frame_lifter_emits_delayed_and_refuses_causal() -> None:
    """A lifter that predicts the centre of a 243-frame window needs 121 frames of future context."""
    base = StreamConfig.from_settings(Settings(live_delay_frames=12))
    cfg = base.parse({}, window=243, min_delay=121)  # a client that asks for nothing gets what works
    assert (cfg.emit, cfg.policy().delay) == ("delayed", 121)
    assert base.parse({"emit": "delayed", "delay_frames": 200}, 243, 121).policy().delay == 200
    with pytest.raises(ProtocolError, match="seq2frame.*cannot emit causal"):
        base.parse({"emit": "causal"}, window=243, min_delay=121)
    with pytest.raises(ProtocolError, match=">= 121"):
        base.parse({"emit": "delayed", "delay_frames": 30}, window=243, min_delay=121)
    assert base.parse({"emit": "causal"}, window=243).emit == "causal"  # a seq2seq lifter: as asked
