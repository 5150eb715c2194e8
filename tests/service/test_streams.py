from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from hotpose.service import metrics
from hotpose.service.app import create_app
from hotpose.service.bench import free_port
from hotpose.service.engine import Engine
from hotpose.service.pipeline import PosePipeline
from hotpose.service.settings import Settings
from tests.conftest import astronaut_frames, fail_stream_frame
from tests.service.test_video import huge_png_header


def jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def collect(ws, until_close: bool = True) -> list[dict]:  # type: ignore[no-untyped-def]
    msgs, closed = receive_until_closed(ws)
    assert closed.code == 1000
    return msgs


def receive_until_closed(ws) -> tuple[list[dict], WebSocketDisconnect]:  # type: ignore[no-untyped-def]
    """Every message until the server closes the stream, and the close (code, reason)."""
    msgs = []
    while True:
        try:
            msgs.append(ws.receive_json())
        except WebSocketDisconnect as e:
            return msgs, e


@pytest.mark.parametrize("emit", ["causal", "delayed"])
def test_stream_answers_every_frame_in_order(make_settings: Callable[..., Settings], emit: str) -> None:
    frames = astronaut_frames(30)
    # the test client sends without pacing: a queue longer than the clip keeps every frame
    with TestClient(create_app(make_settings(live_queue=64))) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "config", "emit": emit, "delay_frames": 6, "stride": 2}))
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["emit"] == emit
        poses = []
        for i, f in enumerate(frames):
            ws.send_text(json.dumps({"type": "frame", "t": i / 15}))
            ws.send_bytes(jpeg(f))
        ws.send_text(json.dumps({"type": "end"}))
        poses += collect(ws)
    assert [m["type"] for m in poses] == ["pose"] * 30
    assert [m["index"] for m in poses] == list(range(30))
    assert np.allclose([m["t"] for m in poses], np.arange(30) / 15, atol=1e-3)
    people = [p for m in poses for p in m["people"]]
    assert len(people) >= 28 and len({p["track_id"] for p in people}) == 1
    assert all(np.asarray(p["joints_3d"]).shape == (17, 3) for p in people)
    assert all(m["latency_ms"] >= 0 and m["dropped"] == 0 for m in poses)


def test_a_binary_that_is_not_an_image_gets_an_error_and_the_stream_goes_on(
    make_settings: Callable[..., Settings],
) -> None:
    frames = astronaut_frames(3)
    with TestClient(create_app(make_settings(live_queue=64))) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "config", "fps": 10, "stride": 1}))
        assert ws.receive_json()["type"] == "ready"
        ws.send_bytes(jpeg(frames[0]))
        ws.send_bytes(b"definitely not an image")
        ws.send_bytes(b"")
        ws.send_text("{not json")
        ws.send_bytes(jpeg(frames[1]))
        ws.send_text(json.dumps({"type": "end"}))
        msgs = collect(ws)
    errors = [m for m in msgs if m["type"] == "error"]
    assert {m["index"] for m in errors} == {1, 2, None}
    assert all("not an image" in m["message"] for m in errors if m["index"] is not None)
    assert [m["index"] for m in msgs if m["type"] == "pose"] == [0, 3]
    assert [m["t"] for m in msgs if m["type"] == "pose"] == [0.0, 0.3]


def test_a_time_that_is_not_a_finite_number_gets_an_error(make_settings: Callable[..., Settings]) -> None:
    frames = astronaut_frames(2)
    with TestClient(create_app(make_settings(live_queue=64))) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "config", "stride": 1}))
        assert ws.receive_json()["type"] == "ready"
        ws.send_text('{"type": "frame", "t": NaN}')
        ws.send_text(json.dumps({"type": "frame", "t": "inf"}))
        ws.send_bytes(jpeg(frames[0]))  # no valid time: it falls back to the arrival time
        ws.send_text(json.dumps({"type": "frame", "t": 1.5}))
        ws.send_bytes(jpeg(frames[1]))
        ws.send_text(json.dumps({"type": "end"}))
        msgs = collect(ws)
    errors = [m for m in msgs if m["type"] == "error"]
    assert len(errors) == 2 and all("finite" in m["message"] and m["index"] is None for m in errors)
    poses = [m for m in msgs if m["type"] == "pose"]
    assert [m["index"] for m in poses] == [0, 1] and poses[1]["t"] == 1.5 and poses[0]["t"] < 1.5


def test_an_idle_stream_is_closed_with_a_reason(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(stream_idle_s=1.0))) as client:
        with client.websocket_connect("/v1/stream") as ws, pytest.raises(WebSocketDisconnect) as e:
            ws.receive_json()  # never configured
        assert e.value.code == 1008 and "no message for 1 s" in e.value.reason
        with client.websocket_connect("/v1/stream") as ws:
            ws.send_text(json.dumps({"type": "config", "fps": 10}))
            assert ws.receive_json()["type"] == "ready"
            ws.send_bytes(jpeg(astronaut_frames(1)[0]))
            assert ws.receive_json()["index"] == 0
            with pytest.raises(WebSocketDisconnect) as e:
                ws.receive_json()
            assert e.value.code == 1008 and "no message" in e.value.reason
        assert client.app.state.hotpose.streams == set()  # type: ignore[attr-defined]


def test_an_idle_stream_answers_the_frames_held_for_context_before_closing(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(stream_idle_s=1.0, live_queue=64)
    with TestClient(create_app(settings)) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "config", "fps": 10, "emit": "delayed", "delay_frames": 20}))
        assert ws.receive_json()["type"] == "ready"
        for f in astronaut_frames(5):  # all five held: the lifter waits for 20 frames of future
            ws.send_bytes(jpeg(f))
        msgs, closed = receive_until_closed(ws)
    assert closed.code == 1008 and "no message" in closed.reason
    assert [m["index"] for m in msgs if m["type"] == "pose"] == [0, 1, 2, 3, 4]


def test_a_client_clock_that_goes_back_moves_later_frames_on(make_settings: Callable[..., Settings]) -> None:
    frames = astronaut_frames(12)
    times = [i / 10 for i in range(6)] + [i / 10 for i in range(6)]  # the client's clock restarts at frame 6
    with TestClient(create_app(make_settings(live_queue=64))) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "config", "stride": 1}))
        assert ws.receive_json()["type"] == "ready"
        for t, f in zip(times, frames, strict=True):
            ws.send_text(json.dumps({"type": "frame", "t": t}))
            ws.send_bytes(jpeg(f))
        ws.send_text(json.dumps({"type": "end"}))
        msgs = collect(ws)
    poses = [m for m in msgs if m["type"] == "pose"]
    assert [m["index"] for m in poses] == list(range(12))
    assert np.allclose([m["t"] for m in poses], np.arange(12) / 10, atol=1e-3)  # one step on, not stuck
    assert sum(len(m["people"]) for m in poses[6:]) >= 5  # the detections after the restart are kept
    (error,) = [m for m in msgs if m["type"] == "error"]
    assert error["index"] is None and "frame 6" in error["message"] and "+ 0.600 s" in error["message"]


def test_numbers_out_of_range_and_deep_nesting_get_an_error(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(live_queue=64))) as client:
        with client.websocket_connect("/v1/stream") as ws:
            ws.send_text(json.dumps({"type": "config", "fps": 10, "stride": 1}))
            assert ws.receive_json()["type"] == "ready"
            ws.send_text('{"type": "frame", "t": 1' + "0" * 400 + "}")
            ws.send_text("[" * 100_000)
            ws.send_bytes(jpeg(astronaut_frames(1)[0]))
            ws.send_text(json.dumps({"type": "end"}))
            msgs = collect(ws)
        assert [m["index"] for m in msgs if m["type"] == "error"] == [None, None]
        assert [m["index"] for m in msgs if m["type"] == "pose"] == [0]
        with client.websocket_connect("/v1/stream") as ws, pytest.raises(WebSocketDisconnect) as e:
            ws.send_text('{"type": "config", "stride": 1e999}')
            ws.receive_json()
        assert e.value.code == 1008 and "bad config" in e.value.reason


def test_a_refused_frame_takes_its_announced_time_with_it(make_settings: Callable[..., Settings]) -> None:
    frames = astronaut_frames(2)
    settings = make_settings(live_queue=64, max_message_mb=0.5)
    with TestClient(create_app(settings)) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "config", "fps": 10, "stride": 1}))
        assert ws.receive_json()["type"] == "ready"
        ws.send_bytes(jpeg(frames[0]))
        ws.send_text(json.dumps({"type": "frame", "t": 5.0}))
        ws.send_bytes(b"\0" * 600_000)  # over the limit: refused, and with it the t of 5 s
        ws.send_bytes(jpeg(frames[1]))  # no time of its own: index / fps
        ws.send_text(json.dumps({"type": "end"}))
        msgs = collect(ws)
    assert [(m["index"], m["t"]) for m in msgs if m["type"] == "pose"] == [(0, 0.0), (2, 0.2)]


def test_a_failure_in_the_models_ends_the_stream_out_loud(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    import hotpose.service.streams

    step = hotpose.service.streams._step
    fail_stream_frame(monkeypatch, at=1)
    frames = astronaut_frames(3)
    with TestClient(create_app(make_settings(live_queue=64))) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "config", "fps": 10, "stride": 1}))
        assert ws.receive_json()["type"] == "ready"
        for f in frames:
            ws.send_bytes(jpeg(f))
        msgs, closed = receive_until_closed(ws)
    assert closed.code == 1011 and "internal error at frame 1" in closed.reason
    message = "internal error at frame 1: RuntimeError: CUDA out of memory"
    errors = [m for m in msgs if m["type"] == "error"]
    assert errors[0] == {"type": "error", "index": 1, "message": message}
    # a frame queued behind it is not answered now, and says so
    assert all(m["message"] == "not answered: internal error at frame 1: RuntimeError" for m in errors[1:])
    assert {m["index"] for m in errors[1:]} <= {2}
    assert [m["index"] for m in msgs if m["type"] == "pose"] == [0]

    # the frames held for context fail at the end of the stream: the same, with no frame index
    monkeypatch.setattr(hotpose.service.streams, "_step", step)
    monkeypatch.setattr(PosePipeline, "flush", failing_flush)
    with TestClient(create_app(make_settings(live_queue=64))) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "config", "fps": 10, "emit": "delayed", "delay_frames": 5}))
        assert ws.receive_json()["type"] == "ready"
        for f in frames:
            ws.send_bytes(jpeg(f))
        ws.send_text(json.dumps({"type": "end"}))
        msgs = []
        with pytest.raises(WebSocketDisconnect) as e:
            while True:
                msgs.append(ws.receive_json())
    assert e.value.code == 1011 and "internal error at the end of the stream" in e.value.reason
    errors = [m for m in msgs if m["type"] == "error"]
    assert errors[0]["index"] is None and "lifter gone" in errors[0]["message"]
    assert {m["index"] for m in errors[1:]} == {0, 1, 2}  # held for the delay: each told it is not answered
    assert all(m["message"].startswith("not answered: internal error at the end") for m in errors[1:])


def failing_flush(self: PosePipeline) -> list:
    raise RuntimeError("lifter gone")


def test_a_frame_over_the_pixel_limit_gets_an_error(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(max_frame_pixels=256 * 256)
    with TestClient(create_app(settings)) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "config", "fps": 10}))
        assert ws.receive_json()["type"] == "ready"
        ws.send_bytes(huge_png_header(30000, 30000))  # refused from its header, never decoded
        ws.send_bytes(jpeg(astronaut_frames(1)[0]))
        ws.send_bytes(jpeg(np.zeros((200, 200, 3), np.uint8)))
        ws.send_text(json.dumps({"type": "end"}))
        msgs = collect(ws)
    assert msgs[0] == {"type": "error", "index": 0, "message": "frame 0: 30000x30000 exceeds the limit of 65536 pixels"}
    assert msgs[1] == {"type": "error", "index": 1, "message": "frame 1: 512x512 exceeds the limit of 65536 pixels"}
    assert [m["index"] for m in msgs[2:]] == [2] and msgs[2]["type"] == "pose"


def test_bad_config_and_too_many_streams_close_with_a_reason(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(max_streams=1))) as client:
        with client.websocket_connect("/v1/stream") as ws:
            ws.send_text(json.dumps({"type": "config", "emit": "sometimes"}))
            with pytest.raises(WebSocketDisconnect) as e:
                ws.receive_json()
            assert e.value.code == 1008 and "emit" in e.value.reason
        with client.websocket_connect("/v1/stream") as ws:  # the test lifter's window is 27 frames
            ws.send_text(json.dumps({"type": "config", "stride": 28}))
            with pytest.raises(WebSocketDisconnect) as e:
                ws.receive_json()
            assert e.value.code == 1008 and "stride must be in [1, 27]" in e.value.reason
        with client.websocket_connect("/v1/stream") as first:
            first.send_text(json.dumps({"type": "config"}))
            assert first.receive_json()["type"] == "ready"
            with client.websocket_connect("/v1/stream") as second:
                with pytest.raises(WebSocketDisconnect) as e:
                    second.receive_json()
                assert e.value.code == 1013 and "too many streams" in e.value.reason
            first.send_text(json.dumps({"type": "end"}))
            assert collect(first) == []


def test_api_key_on_the_websocket(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(api_keys="secret"))) as client:
        with client.websocket_connect("/v1/stream") as ws, pytest.raises(WebSocketDisconnect) as e:
            ws.receive_json()
        assert e.value.code == 1008
        with client.websocket_connect("/v1/stream?api_key=secret") as ws:
            ws.send_text(json.dumps({"type": "config"}))
            assert ws.receive_json()["type"] == "ready"


def test_a_fast_client_gets_drops_reported_not_lost(make_settings: Callable[..., Settings]) -> None:
    frames = [jpeg(f) for f in astronaut_frames(40)]
    with TestClient(create_app(make_settings(live_queue=1))) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "config", "fps": 30, "stride": 1}))
        assert ws.receive_json()["type"] == "ready"
        for f in frames:  # as fast as possible, without reading
            ws.send_bytes(f)
        ws.send_text(json.dumps({"type": "end"}))
        msgs = collect(ws)
    answered = [m["index"] for m in msgs if m["type"] == "pose"]
    dropped = [i for m in msgs if m["type"] == "dropped" for i in m["indexes"]]
    assert dropped, "the server kept up with an unthrottled client: the test does not exercise backpressure"
    assert sorted(answered + dropped) == list(range(40)) and answered == sorted(answered)
    assert msgs[-1]["type"] == "pose" and msgs[-1]["dropped"] == len(dropped)


def test_shared_video_streams_with_stable_ids(make_settings: Callable[..., Settings], shared_dir: Path) -> None:
    cap = cv2.VideoCapture(str(shared_dir / "videos" / "people_one_by_one_768x432_10fps.mp4"))
    frames = []
    while len(frames) < 120:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.imencode(".jpg", bgr)[1].tobytes())
    with TestClient(create_app(make_settings(live_queue=200))) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "config", "fps": 10, "stride": 4}))
        assert ws.receive_json()["type"] == "ready"
        msgs: list[dict] = []
        for f in frames:
            ws.send_bytes(f)
        ws.send_text(json.dumps({"type": "end"}))
        msgs += collect(ws)
    assert [m["index"] for m in msgs] == list(range(len(frames)))
    ids = [p["track_id"] for m in msgs for p in m["people"]]
    assert ids and len(set(ids)) <= 3  # people walk in one by one; an id is never re-issued per frame


def test_load_eight_concurrent_streams(make_settings: Callable[..., Settings]) -> None:
    """8 streams at once over real loopback sockets for a bounded time: nothing lost or leaked."""
    import websockets

    port = free_port()
    app = create_app(make_settings(max_streams=8, live_queue=4))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    frames = [jpeg(f) for f in astronaut_frames(8)]
    per_stream = 24

    async def one(k: int) -> tuple[list[int], list[int]]:
        async with websockets.connect(f"ws://127.0.0.1:{port}/v1/stream", max_size=None) as ws:
            await ws.send(json.dumps({"type": "config", "fps": 15, "stride": 4}))
            assert json.loads(await ws.recv())["type"] == "ready"
            for i in range(per_stream):
                await ws.send(frames[(i + k) % len(frames)])
                await asyncio.sleep(1 / 15)
            await ws.send(json.dumps({"type": "end"}))
            answered, dropped = [], []
            async for raw in ws:
                m = json.loads(raw)
                if m["type"] == "pose":
                    answered.append(m["index"])
                elif m["type"] == "dropped":
                    dropped += m["indexes"]
            assert ws.close_code == 1000
            return answered, dropped

    async def main() -> list[tuple[list[int], list[int]]]:
        return await asyncio.wait_for(asyncio.gather(*(one(k) for k in range(8))), timeout=180)

    try:
        deadline = time.time() + 60
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        results = asyncio.run(main())
        for answered, dropped in results:
            assert sorted(answered + dropped) == list(range(per_stream)) and answered == sorted(answered)
        assert app.state.hotpose.streams == set()  # every session was released
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_delayed_streams_keep_the_future_context_over_a_missed_detection() -> None:
    from hotpose.service.lifting import LiftPolicy, StreamLifter
    from hotpose.service.stream_protocol import StreamConfig
    from tests.service.test_lifting import EchoLift, F, H, W, pose

    def emitted_at(policy: LiftPolicy) -> dict[object, int]:
        sl, at = StreamLifter(F, EchoLift(), policy), {}
        for i in range(40):
            for key, _ in sl.push(i, i / 30, [] if i == 20 else [(0, pose(i / 30))], W, H):  # missed at 20
                at[key] = i
        return at

    delayed = StreamConfig(delay_frames=8, stride=4, smoothing=True, max_gap_s=3.0, emit="delayed").policy()
    assert emitted_at(delayed)[19] >= 19 + 8  # frame 19 still waited for its 8 frames of future
    assert emitted_at(LiftPolicy(stride=4, delay=8, hold_s=0.0, max_gap_s=1.0))[19] == 20  # without a hold: cut short


def test_live_poses_carry_each_persons_root_and_the_camera(make_settings: Callable[..., Settings]) -> None:
    frames = astronaut_frames(8)
    with TestClient(create_app(make_settings(live_queue=64))) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "config", "fps": 10, "stride": 2, "focal_px": 600}))
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["root_lag_frames"] == 0  # causal: roots filtered, no waiting
        for f in frames:
            ws.send_bytes(jpeg(f))
        ws.send_text(json.dumps({"type": "end"}))
        poses = collect(ws)
    assert all(m["camera"] == {"focal_px": 600.0, "cx": 256.0, "cy": 256.0, "width": 512, "height": 512,
                               "assumed": False} for m in poses)  # fmt: skip
    roots = [p["root_3d"] for m in poses for p in m["people"]]
    assert roots and all(r is None or (len(r) == 3 and r[2] > 0) for r in roots)


def test_a_bad_camera_in_the_config_closes_with_the_reason(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings())) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "config", "fov_deg": -5}))
        with pytest.raises(WebSocketDisconnect) as e:
            ws.receive_json()
        assert e.value.code == 1008 and "fov_deg must be in" in e.value.reason


def test_a_closed_stream_leaves_no_state_behind(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # what a server running for days would accumulate (`hotpose bench soak` watches its memory): each
    # stream's pipeline (tracking, lifter buffers, filters) goes with the stream, ended or dropped by the client
    made: list[weakref.ref[PosePipeline]] = []
    pipeline = Engine.pipeline

    def tracked(self: Engine, *args: Any, **kw: Any) -> PosePipeline:
        made.append(weakref.ref(p := pipeline(self, *args, **kw)))
        return p

    monkeypatch.setattr(Engine, "pipeline", tracked)
    frames = [jpeg(f) for f in astronaut_frames(6)]
    open_before = metrics.ACTIVE_STREAMS._value.get()
    app = create_app(make_settings(live_queue=64))
    with TestClient(app) as client:
        for ends in (True, False, True):  # False: the client goes without `end`
            with client.websocket_connect("/v1/stream") as ws:
                ws.send_text(json.dumps({"type": "config", "fps": 15, "stride": 2}))
                assert ws.receive_json()["type"] == "ready"
                for f in frames:
                    ws.send_bytes(f)
                if ends:
                    ws.send_text(json.dumps({"type": "end"}))
                    assert [m["type"] for m in collect(ws)] == ["pose"] * len(frames)
        for _ in range(200):  # the server notices the last client gone
            if not app.state.hotpose.streams:
                break
            time.sleep(0.05)
        assert not app.state.hotpose.streams and metrics.ACTIVE_STREAMS._value.get() == open_before
        gc.collect()
        assert len(made) == 3 and [r for r in made if r() is not None] == []
