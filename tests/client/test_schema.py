"""The wire format's one module (`hotpose_client.schema`): round trips, refusals, and docs/websocket.md."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError
from starlette.websockets import WebSocketDisconnect

from hotpose.service.app import create_app
from hotpose.service.pipeline import FramePoses, PersonPose
from hotpose.service.settings import Settings
from hotpose_client import Frame, JobFailed, PoseSequence, ProtocolError, schema
from hotpose_client._base import StreamState, stream_line
from tests.conftest import astronaut_frames

DOCS = Path(__file__).resolve().parents[2] / "docs" / "websocket.md"

PERSON = {
    "track_id": 3, "bbox": [1.5, 2.0, 30.25, 40.0], "score": 0.91, "keypoints_2d": [[10.5, 20.25, 0.9]] * 17,
    "joints_3d": [[0.1, -0.2, 0.3]] * 17, "root_3d": [0.5, -0.1, 3.25],
}  # fmt: skip
CAMERA = {"focal_px": 457.02, "cx": 320.0, "cy": 240.0, "width": 640, "height": 480, "assumed": True}


def test_a_result_round_trips_through_json() -> None:
    frames = [{"index": 0, "time": 0.0, "people": [PERSON, {**PERSON, "track_id": 4, "joints_3d": None}]},
              {"index": 1, "time": 0.0333, "people": []}]  # fmt: skip
    doc = {"fps": 30.0, "width": 640, "height": 480, "joint_names": [f"j{i}" for i in range(17)],
           "skeleton_edges": [[0, 1]], "coordinates": {"time": "s"}, "camera": CAMERA, "frames": frames}  # fmt: skip
    result = schema.Result.model_validate_json(json.dumps(doc))
    assert json.loads(result.model_dump_json()) == doc
    assert result.frames[0].people[1].joints_3d is None and result.camera == schema.Camera(**CAMERA)
    head = {k: v for k, v in doc.items() if k not in ("frames", "camera")}
    assert schema.ResultHead.model_validate(head).head_dict() == head  # no camera: left out, not null


def test_older_results_and_messages_still_parse() -> None:
    """Results written before `root_3d` and `camera`, and pose messages before latency/dropped/camera."""
    old = {k: v for k, v in PERSON.items() if k != "root_3d"}
    assert schema.Person.model_validate(old).root_3d is None
    pose = schema.parse_server_message(json.dumps({"type": "pose", "index": 2, "t": 0.1, "people": [old]}))
    assert isinstance(pose, schema.PoseMessage) and pose.camera is None and pose.latency_ms is None
    newer = schema.Frame.model_validate({"index": 0, "time": 0.0, "people": [], "new_field": 1})
    assert not hasattr(newer, "new_field")  # a newer server's extra keys are ignored


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "pose", "index": 1, "t": 0.0, "people": [{**PERSON, "keypoints_2d": [[1, 2]]}]}, "at least 3"),
        ({"type": "pose", "index": -1, "t": 0.0, "people": []}, "greater than or equal to 0"),
        ({"type": "pose", "index": 1, "people": []}, "t\n  Field required"),
        ({"type": "dropped", "indexes": "3", "dropped": 1}, "dropped.indexes\n  Input should be a valid array"),
        ({"type": "ready"}, "stream_id\n  Field required"),
        ({"type": "nonsense"}, "does not match any of the expected tags: 'ready', 'pose', 'dropped', 'ack', 'error'"),
        ({"index": 1}, "Unable to extract tag using discriminator 'type'"),
    ],
)
def test_bad_server_messages_are_refused_naming_the_field(message: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(error)):
        schema.parse_server_message(json.dumps(message))


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "config", "fps": 0}, "fps\n  Input should be greater than 0"),
        ({"type": "config", "emit": "later"}, "Input should be 'causal' or 'delayed'"),
        ({"type": "config", "fov_deg": 200}, "less than or equal to 179"),
        ({"type": "config", "stride": "many"}, "stride\n  Input should be a valid integer"),
        ({"type": "frame", "t": "soon"}, "t\n  Input should be a valid number"),
        ({"type": "frame"}, "t\n  Field required"),
        ({"type": "hello"}, "does not match any of the expected tags: 'config', 'frame', 'end'"),
    ],
)
def test_bad_client_messages_are_refused_naming_the_field(message: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(error)):
        schema.parse_client_message(json.dumps(message))


def test_a_frame_time_must_be_finite() -> None:
    with pytest.raises(ValidationError, match="t must be a finite number of seconds"):
        schema.parse_client_message('{"type": "frame", "t": Infinity}')
    assert schema.parse_client_message('{"type": "frame", "t": 1.5}') == schema.FrameTimeMessage(t=1.5)
    assert schema.parse_client_message(b'{"type": "end"}') == schema.EndMessage()


def test_every_message_round_trips() -> None:
    messages: list[BaseModel] = [
        schema.ConfigMessage(emit="delayed", fps=25, ack=True, fov_deg=60),
        schema.FrameTimeMessage(t=12.345),
        schema.EndMessage(),
        schema.ReadyMessage(
            stream_id="s1",
            emit="causal",
            stride=8,
            delay_frames=0,
            window=243,
            smoothing=True,
            queue=2,
            lifter=True,
            flip=False,
            root_lag_frames=0,
        ),  # fmt: skip
        schema.PoseMessage(
            index=4,
            t=0.1333,
            people=[schema.Person.model_validate(PERSON)],
            latency_ms=31.5,
            dropped=1,
            camera=schema.Camera(**CAMERA),
        ),  # fmt: skip
        schema.DroppedMessage(indexes=[3], dropped=1),
        schema.AckMessage(index=4),
        schema.ErrorMessage(index=None, message="bad message: t must be a finite number of seconds"),
    ]
    for m in messages:
        text = m.model_dump_json()
        parse = schema.parse_client_message if isinstance(m, schema.CLIENT_MESSAGES) else schema.parse_server_message
        assert parse(text) == m, text
    assert set(map(type, messages)) == {*schema.CLIENT_MESSAGES, *schema.SERVER_MESSAGES}


def _documented_messages(section: str) -> dict[str, set[str]]:
    """docs/websocket.md's message table under `section` -> {type: the keys the row names}."""
    text = DOCS.read_text().split(section, 1)[1].split("\n\n", 2)[1]
    out = {}
    for row in text.splitlines():
        code = re.match(r"\| `(\{.*?\})` \|", row)
        if code is not None:
            kind = re.search(r'"type": "(\w+)"', code.group(1))
            assert kind is not None, row
            out[kind.group(1)] = set(re.findall(r'(?<!: )"(\w+)"', code.group(1)))  # keys, not string values
    return out


def _type(model: type[BaseModel]) -> str:
    return str(model.model_fields["type"].default)


def test_every_documented_message_has_a_model_and_each_model_is_documented() -> None:
    client = _documented_messages("Client to server:")
    server = _documented_messages("Server to client:")
    assert set(client) == {_type(m) for m in schema.CLIENT_MESSAGES}
    assert set(server) == {_type(m) for m in schema.SERVER_MESSAGES}
    for model in schema.SERVER_MESSAGES:  # the server's rows name every field
        assert server[_type(model)] == set(model.model_fields), model.__name__
    for model in schema.CLIENT_MESSAGES:
        assert client[_type(model)] <= set(model.model_fields), model.__name__
    config_table = DOCS.read_text().split("## The config", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", config_table, re.MULTILINE))
    assert documented | {"type"} == set(schema.ConfigMessage.model_fields)


def test_the_close_codes_are_the_documented_ones() -> None:
    closing = DOCS.read_text().split("## Closing", 1)[1]
    documented = {int(c) for c in re.findall(r"^\| (\d{4}) \|", closing, re.MULTILINE)}
    codes = {schema.CLOSE_NORMAL, schema.CLOSE_POLICY, schema.CLOSE_TOO_BIG, schema.CLOSE_INTERNAL}
    codes.add(schema.CLOSE_OVERLOADED)
    assert documented == codes


# --- the server serialises with the schema ----------------------------------------------------------


def test_a_server_built_frame_round_trips_into_the_sdk() -> None:
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 640, (17, 3)).astype(np.float32)
    people = [
        PersonPose(1, (10.123, 20.0, 300.456, 400.0), 0.98765, kp, rng.normal(size=(17, 3)), np.array([0.1, 0.2, 4.0])),
        PersonPose(7, (0.0, 0.0, 5.0, 5.0), 0.5, kp),  # not lifted, no root
    ]
    fp = FramePoses(12, 0.412345, people)
    text = fp.to_json()
    wire = schema.Frame.model_validate_json(text)
    assert wire == fp.to_wire() and json.loads(text) == fp.to_dict()
    assert wire.time == 0.4123 and wire.people[0].bbox == [10.12, 20.0, 300.46, 400.0]  # the server's rounding
    frame = Frame.from_dict(json.loads(text))
    assert frame.to_wire() == wire  # the SDK's typed frame is the same frame
    np.testing.assert_allclose(frame.people[0].keypoints_2d, np.round(kp, 2), atol=1e-9)
    assert frame.people[1].joints_3d is None and frame.people[1].root_3d is None


def test_what_a_live_stream_sends_parses_as_documented(make_settings: Callable[..., Settings]) -> None:
    seen: list[BaseModel] = []
    with TestClient(create_app(make_settings())) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(schema.ConfigMessage(fps=10, ack=True).model_dump_json(exclude_none=True))
        seen.append(schema.parse_server_message(ws.receive_text()))
        ws.send_text('{"type": "frame", "t": "soon"}')  # refused, the stream goes on
        seen.append(schema.parse_server_message(ws.receive_text()))
        ws.send_bytes(b"not an image")
        seen.append(schema.parse_server_message(ws.receive_text()))
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(astronaut_frames(1)[0], cv2.COLOR_RGB2BGR))
        assert ok
        ws.send_bytes(buf.tobytes())
        ws.send_text(schema.EndMessage().model_dump_json())
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                seen.append(schema.parse_server_message(ws.receive_text()))
    assert closed.value.code == schema.CLOSE_NORMAL
    kinds = [type(m) for m in seen]
    assert kinds[:3] == [schema.ReadyMessage, schema.ErrorMessage, schema.ErrorMessage]
    assert schema.AckMessage in kinds and schema.PoseMessage in kinds
    pose = next(m for m in seen if isinstance(m, schema.PoseMessage))
    assert pose.index == 1 and pose.camera is not None and pose.latency_ms is not None and pose.dropped == 0


def test_the_openapi_document_shows_the_schema_models(make_settings: Callable[..., Settings]) -> None:
    doc = create_app(make_settings()).openapi()
    ok = doc["paths"]["/v1/jobs/{job_id}/result"]["get"]["responses"]["200"]["content"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/Result"}
    assert {"application/octet-stream", "text/csv"} <= set(ok)
    job = doc["paths"]["/v1/jobs/{job_id}"]["get"]["responses"]["200"]["content"]["application/json"]
    assert job["schema"] == {"$ref": "#/components/schemas/JobResponse"}
    components = doc["components"]["schemas"]
    for model in (schema.Result, schema.Frame, schema.Person, schema.Camera, schema.JobResponse, schema.ErrorResponse):
        assert set(components[model.__name__]["properties"]) == set(model.model_fields), model.__name__


def test_the_sdk_refuses_a_malformed_answer_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"(?s)not a hotpose result: .*\nfps\n  Field required"):
        PoseSequence.from_dict({"width": 640, "height": 480, "joint_names": [], "frames": []})
    bad_line = json.dumps({"index": 0, "time": 0.0, "people": [{**PERSON, "bbox": [1, 2]}]})
    with pytest.raises(ProtocolError, match=r"(?s)job j: bad stream .*people\.0\.bbox\n  List should have at least 4"):
        stream_line(bad_line, "j")
    with pytest.raises(JobFailed, match="out of memory"):
        stream_line('{"error": "out of memory"}', "j")
    state = StreamState()
    with pytest.raises(ProtocolError, match=r"(?s)bad 'ack' message from the server: .*\nack.index\n  Field required"):
        state.on_message('{"type": "ack"}')
    assert state.on_message('{"type": "hint", "text": "a newer server"}') is None and state.acked == 0
