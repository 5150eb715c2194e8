"""A server whose lifter is seq2frame (TPC-MixSTE): live streams are delayed by half its window,
causal ones are refused with the reason, and every frame of a stream gets its 3D."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from hotpose.models import create_lifter, save_checkpoint
from hotpose.service.app import create_app
from hotpose.service.settings import Settings
from tests.conftest import astronaut_frames
from tests.service.test_streams import jpeg, receive_until_closed

SMALL = {"dim": 16, "depth": 2, "num_heads": 2, "frames": 27, "token_num": 7, "layer_index": 1}


@pytest.fixture
def tpc_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    model = create_lifter("tpc_mixste", device="cpu", **SMALL)
    path = tmp_path / "tpc.pt"
    save_checkpoint(path, "tpc_mixste", model.config.to_dict(), model.state_dict())
    return make_settings(lifter="tpc_mixste", lifter_weights=path, live_queue=64)


def test_a_causal_stream_is_refused_with_the_reason(tpc_settings: Settings) -> None:
    with TestClient(create_app(tpc_settings)) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "config", "emit": "causal"}))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1008 and "seq2frame" in closed.value.reason


def test_a_stream_that_asks_nothing_is_delayed_by_half_the_window_and_every_frame_gets_3d(
    tpc_settings: Settings,
) -> None:
    frames = astronaut_frames(20)
    with TestClient(create_app(tpc_settings)) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "config"}))
        ready = ws.receive_json()
        # at least half the window (13 of 27 frames), the server's default delay if longer
        assert (ready["emit"], ready["window"], ready["stride"]) == ("delayed", 27, 1)  # every frame its window
        assert ready["delay_frames"] == max(tpc_settings.live_delay_frames, 13)
        for i, f in enumerate(frames):
            ws.send_text(json.dumps({"type": "frame", "t": i / 15}))
            ws.send_bytes(jpeg(f))
        ws.send_text(json.dumps({"type": "end"}))
        msgs, closed = receive_until_closed(ws)
    assert closed.code == 1000
    poses = [m for m in msgs if m["type"] == "pose"]
    assert [m["index"] for m in poses] == list(range(len(frames)))
    people = [p for m in poses for p in m["people"]]
    assert people and all(p["joints_3d"] is not None for p in people)
