"""`WS /v1/stream` under random and hostile clients (issue 33), and docs/websocket.md checked against the code.

A real uvicorn server (the close frame's 123-byte limit and TCP backpressure exist only on a real
socket) with a tiny untrained lifter takes message sequences drawn by hypothesis: configs with wrong
types, huge, negative and non-finite numbers, binary frames before the config, a config twice,
floods of frames, truncated and garbage images, unknown message types, text that is not JSON, and
clients that disconnect without a close frame or read nothing until the end. Whatever they send, the
server answers only with the messages and close codes docs/websocket.md lists (the tables are parsed
from the doc: what a client reads there is what is checked), accounts for every frame (answered,
dropped, or an `error` with its index), never blames itself (1011) for a client's input, releases
the stream's slot, and serves a clean stream afterwards.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import json
import math
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import uvicorn
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

import hotpose.service.stream_protocol as protocol
from hotpose.service.app import create_app
from hotpose.service.bench import free_port
from hotpose.service.settings import Settings
from tests.conftest import astronaut_frames, serve
from tests.service.test_video import huge_png_header

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "websocket.md"
MAX_MESSAGE_MB = 0.05  # small, so that an oversized frame costs the test little


# --- the protocol as docs/websocket.md writes it ----------------------------------------------------


def _section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start : end if end >= 0 else None]


def _table_rows(text: str) -> list[list[str]]:
    """The body rows of the first Markdown table in `text`, as stripped cells."""
    rows, seen = [], False
    for line in text.splitlines():
        if line.startswith("|"):
            seen = True
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if not set("".join(cells)) <= set("-| "):
                rows.append(cells)
        elif seen:
            break
    return rows[1:]  # without the header


def doc_server_messages() -> dict[str, set[str]]:
    """type -> its fields, from the "Server to client" table (`{"type": "pose", "index", ...}`)."""
    out = {}
    for cells in _table_rows(_section("Server to client:")):
        names = re.findall(r'"(\w+)"', cells[0])
        assert names[0] == "type", cells[0]
        out[names[1]] = {"type", *names[2:]}
    return out


def doc_client_messages() -> set[str]:
    """The JSON message types of the "Client to server" table (binary frames are not JSON)."""
    rows = _table_rows(_section("Client to server:"))
    return {m.group(1) for cells in rows if (m := re.search(r'"type": "(\w+)"', cells[0]))}


@dataclass(frozen=True)
class CloseRow:
    code: int
    reason: str  # as the doc writes it; "" when the row gives no reason in backticks
    pattern: re.Pattern[str]  # the reasons it stands for (`...` anything, a number any number, N any word)


def doc_close_codes() -> list[CloseRow]:
    rows = []
    for cells in _table_rows(_section("## Closing")):
        quoted = re.fullmatch(r"`(.*)`", cells[1])
        reason = quoted.group(1) if quoted else ""
        parts = re.split(r"(\.\.\.|\b\d+(?:\.\d+)?\b|\bN\b)", reason)
        regex = "".join(
            ".*" if p == "..." else r"[\d.]+" if re.fullmatch(r"[\d.]+", p) else r"\S+" if p == "N" else re.escape(p)
            for p in parts
        )
        rows.append(CloseRow(int(cells[0]), reason, re.compile(regex if quoted else ".*", re.S)))
    return rows


SERVER_MESSAGES = doc_server_messages()
CLOSE_ROWS = doc_close_codes()


def check_message(raw: str | bytes) -> dict[str, Any]:
    """One server message: text, JSON, a documented type with exactly its documented fields."""
    assert isinstance(raw, str), f"the server sent a binary message: {raw[:40]!r}"
    msg = json.loads(raw, parse_constant=_not_json)  # NaN or Infinity: a browser's JSON.parse refuses it
    assert isinstance(msg, dict) and msg.get("type") in SERVER_MESSAGES, f"undocumented message {raw[:200]}"
    assert set(msg) == SERVER_MESSAGES[msg["type"]], f"{msg['type']}: fields {sorted(msg)} are not the doc's"
    if _schema is not None:  # the SDK's typed wire schema, once it exists, reads it too
        _schema.parse_server_message(raw)
    if msg["type"] in ("pose", "ack"):
        assert isinstance(msg["index"], int) and msg["index"] >= 0
    if msg["type"] == "error":
        assert (msg["index"] is None or isinstance(msg["index"], int)) and isinstance(msg["message"], str)
    if msg["type"] == "dropped":
        assert all(isinstance(i, int) for i in msg["indexes"]) and isinstance(msg["dropped"], int)
    return msg


def _not_json(name: str) -> None:
    raise AssertionError(f"the server sent {name}, which is not JSON")


def check_close(code: int | None, reason: str) -> None:
    assert code is not None, "the server dropped the connection without a close frame"
    assert len(reason.encode()) <= protocol.MAX_CLOSE_REASON
    assert any(r.code == code and r.pattern.fullmatch(reason) for r in CLOSE_ROWS), (
        f"undocumented close {code} {reason!r}"
    )


try:  # the SDK's wire schema (issue 33, item 1), where this checkout has it
    import hotpose_client.schema as _schema
except ImportError:  # pragma: no cover - before it lands
    _schema = None  # type: ignore[assignment]


# --- what hostile clients send ------------------------------------------------------------------------


def _jpeg(rgb: np.ndarray) -> bytes:
    return bytes(cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1])


_ASTRONAUT = cv2.resize(astronaut_frames(1)[0], (96, 96))
BINARIES: dict[str, bytes] = {
    "jpeg": _jpeg(_ASTRONAUT),
    "truncated jpeg": _jpeg(_ASTRONAUT)[:700],
    "jpeg header only": _jpeg(_ASTRONAUT)[:200],
    "garbage": bytes(range(256)) * 3,
    "empty": b"",
    "over the size limit": b"\xff\xd8" + b"\0" * int(MAX_MESSAGE_MB * (1 << 20)),
    "over the pixel limit": huge_png_header(30000, 30000),
    "a 1x400 strip": _jpeg(np.full((1, 400, 3), 200, np.uint8)),
    "noise png": bytes(cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (40, 30, 3), np.uint8))[1]),
}

JPEG = BINARIES["jpeg"]
weird_numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 5e-324, 1e-300, 1e300, 2.5, 10**400]),
)
weird_values = st.one_of(
    weird_numbers,
    st.none(),
    st.booleans(),
    st.text(max_size=8),
    st.sampled_from(["é" * 200, "false", "30", "causal", "delayed", [], {}, [1, 2], {"a": 1}]),
)
CONFIG_FIELDS = ["emit", "delay_frames", "stride", "smoothing", "fps", "ack", "focal_px", "fov_deg", "person_height_m"]
good_values = {
    "emit": st.sampled_from(["causal", "delayed"]),
    "delay_frames": st.integers(1, 26),
    "stride": st.integers(1, 27),
    "smoothing": st.booleans(),
    "fps": st.floats(0.5, 240),
    "ack": st.booleans(),
    "focal_px": st.floats(10, 5000),
    "fov_deg": st.floats(1, 179),
    "person_height_m": st.floats(0.3, 2.5),
}
good_configs = st.fixed_dictionaries({"type": st.just("config")}, optional=good_values)
configs = st.fixed_dictionaries(
    {"type": st.just("config")},
    optional={k: st.one_of(good_values[k], good_values[k], weird_values) for k in CONFIG_FIELDS}
    | {"unknown": weird_values},
)


def _dumps(value: object) -> str:
    return json.dumps(value)  # NaN and Infinity as Python writes them: JSON most parsers refuse


texts = st.one_of(
    st.builds(lambda t: _dumps({"type": "frame", "t": t}), st.one_of(weird_numbers, weird_values)),
    st.builds(lambda t: _dumps({"type": "frame", "t": t}), st.floats(-1e6, 1e6)),
    configs.map(_dumps),  # a config after the first message
    st.sampled_from(
        [
            "{not json",
            "",
            "[1, 2]",
            "5",
            '"config"',
            "null",
            "{}",
            '{"type": 5}',
            '{"type": "hello"}',
            '{"type": ["end"]}',
            '{"type": "frame"}',
            '{"type": "frame", "t": 1' + "0" * 5000 + "}",
            "[" * 50_000,
            "é" * 1000,
        ]
    ),
    st.text(max_size=30),
)


@dataclass(frozen=True)
class Send:
    text: str | None = None
    data: bytes | None = None


binaries = st.sampled_from(sorted(BINARIES)).map(lambda k: [Send(data=BINARIES[k])])
actions = st.one_of(
    texts.map(lambda t: [Send(text=t)]),
    binaries,
    binaries,
    st.integers(3, 8).map(lambda n: [Send(data=BINARIES["jpeg"])] * n),  # a flood
)


@st.composite
def sessions(draw: st.DrawFn) -> tuple[list[Send], str]:
    """What one client sends from its first message on, and how it leaves: `end`, or a dropped connection."""
    first = draw(
        st.one_of(
            configs.map(lambda c: [Send(text=_dumps(c))]),  # mostly refused: 1008
            good_configs.map(lambda c: [Send(text=_dumps(c))]),
            st.just([Send(text='{"type": "config"}')]),
            actions,  # no config: a binary, a frame time, garbage
        )
    )
    rest = draw(st.lists(actions, min_size=2, max_size=8))
    ending = draw(st.sampled_from(["end", "end", "end", "disconnect"]))
    return first + [s for a in rest for s in a], ending


def _is_number(v: object) -> bool:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:  # an integer too large for a float
        return False


def opens(first: Send) -> bool:
    """Whether a stream whose first message is `first` opens (`ready`) rather than closing with 1008:
    a binary or a JSON object opens it; a config must follow the doc's table; other text does not."""
    if first.text is None:
        return True
    try:
        msg = json.loads(first.text)
    except (ValueError, RecursionError):
        return False
    if not isinstance(msg, dict):
        return False
    return msg.get("type") != "config" or config_is_valid(msg)


def config_is_valid(cfg: dict[str, Any], window: int = 27) -> bool:
    """What the doc's config table accepts (the test lifter's window: 27 frames)."""

    def within(key: str, lo: float, hi: float, whole: bool = False) -> bool:
        v = cfg.get(key)
        return _is_number(v) and lo <= v <= hi and (not whole or float(v).is_integer())  # type: ignore[operator,arg-type]

    checks = [
        "emit" not in cfg or cfg["emit"] in ("causal", "delayed"),
        "delay_frames" not in cfg or within("delay_frames", 1, window - 1, whole=True),
        "stride" not in cfg or within("stride", 1, window, whole=True),
        cfg.get("fps") is None or (within("fps", 0, 240) and cfg["fps"] > 0),
        all(cfg.get(k) is None or isinstance(cfg[k], bool) for k in ("smoothing", "ack")),
        cfg.get("focal_px") is None or (within("focal_px", 0, math.inf) and cfg["focal_px"] > 0),
        cfg.get("fov_deg") is None or within("fov_deg", 1, 179),
        cfg.get("focal_px") is None or cfg.get("fov_deg") is None,  # "instead of focal_px"
        cfg.get("person_height_m") is None or within("person_height_m", 0.3, 2.5),
    ]
    return all(checks)


# --- the server --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    settings_ = Settings(
        device="cpu",
        lifter="hot_mixste",
        lifter_weights=tiny_weights,
        data_dir=tmp_path_factory.mktemp("fuzz") / "data",
        live_queue=2,
        max_message_mb=MAX_MESSAGE_MB,
        max_frame_pixels=512 * 512,
        stream_idle_s=30,
    )
    app = create_app(settings_)
    with serve(app) as url:
        yield url, app


def _open(url: str, **kw: Any) -> ClientConnection:
    return connect(url.replace("http", "ws", 1) + "/v1/stream", max_size=None, open_timeout=60, **kw)


def _wait_released(app: Any, at_least_one: bool = False) -> None:
    """Until the server has let go of every stream (a dropped connection is noticed asynchronously);
    `at_least_one`: of a stream that has to open first."""
    deadline = time.monotonic() + 60
    while at_least_one and not app.state.hotpose.streams and time.monotonic() < deadline:
        time.sleep(0.02)
    while app.state.hotpose.streams and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not app.state.hotpose.streams, "a stream's slot was never released"


def _read_until_closed(ws: ClientConnection) -> tuple[list[dict[str, Any]], int | None, str]:
    msgs = []
    try:
        while True:
            msgs.append(check_message(ws.recv(timeout=120)))  # a hang guard, not a timed assertion
    except ConnectionClosed as e:
        rcvd = e.rcvd
    return msgs, (rcvd.code if rcvd else None), (rcvd.reason if rcvd else "")


def _run_session(url: str, app: Any, sends: list[Send], ending: str) -> None:
    _wait_released(app)
    sent = 0
    with _open(url, max_queue=None) as ws:  # the client buffers what it does not read yet: no deadlock on a flood
        try:
            for s in sends:
                if s.data is not None:
                    ws.send(s.data)
                    sent += 1
                else:
                    ws.send(s.text or "")
            if ending == "disconnect":
                event("disconnected")
                ws.socket.shutdown(socket.SHUT_RDWR)  # gone without a close frame
                return
            ws.send('{"type": "end"}')
        except ConnectionClosed:
            pass  # the server closed first (a bad config): read why below
        msgs, code, reason = _read_until_closed(ws)
    check_close(code, reason)
    assert code != protocol.CLOSE_INTERNAL, f"a client's input was taken for an internal error: {reason}"
    event(f"closed {code}" + (" (bad config)" if reason.startswith("bad config") else ""))
    event(f"frames: {'none' if not sent else 'some'}")
    if not opens(sends[0]):
        assert not msgs and code == protocol.CLOSE_POLICY and reason.startswith("bad config: "), (code, reason)
        return
    assert msgs[0]["type"] == "ready" and all(m["type"] != "ready" for m in msgs[1:])
    assert code == protocol.CLOSE_NORMAL, (code, reason)
    answered = [m["index"] for m in msgs if m["type"] == "pose"]
    dropped = [i for m in msgs if m["type"] == "dropped" for i in m["indexes"]]
    refused = [m["index"] for m in msgs if m["type"] == "error" and m["index"] is not None]
    assert answered == sorted(answered), "poses out of order"
    assert sorted(answered + dropped + refused) == list(range(sent)), "a frame was lost or answered twice"
    counts = [m["dropped"] for m in msgs if m["type"] in ("pose", "dropped")]
    assert counts == sorted(counts) and (not dropped or counts[-1] == len(dropped))
    acks = [m["index"] for m in msgs if m["type"] == "ack"]
    assert set(acks) <= set(range(sent)) and len(set(acks)) == len(acks)


@settings(
    max_examples=60,
    derandomize=True,  # the same examples on every run: a failure reproduces, the time is bounded
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(session=sessions())
# what the fuzz found (each fixed, with a unit test in test_stream_protocol.py or test_nanodet.py), and edge cases
@example(session=([Send(text='{"type": "config", "stride": "' + "é" * 200 + '"}')], "end"))  # close reason > 123 B
@example(session=([Send(text='{"type": "config", "ack": "false", "stride": 2.9}'), Send(data=JPEG)], "end"))
@example(session=([Send(text='{"type": "config"}'), Send(text='{"type": "config", "fps": 1}'), Send(data=JPEG)], "end"))
@example(session=([Send(data=BINARIES["a 1x400 strip"]), Send(data=JPEG), Send(data=JPEG)], "end"))
@example(session=([Send(text='{"type": "config", "fps": 5e-324}'), *[Send(data=JPEG)] * 3], "end"))
@example(session=([Send(text='{"type": "config", "focal_px": 1e300}'), *[Send(data=JPEG)] * 3], "end"))
@example(
    session=(
        [
            Send(text='{"type": "frame", "t": 1e300}'),
            Send(data=JPEG),
            Send(text='{"type": "frame", "t": 1e300}'),
            Send(data=JPEG),
        ],
        "end",
    )
)
def test_hostile_clients_get_only_documented_answers(server: tuple[str, Any], session: tuple[list[Send], str]) -> None:
    url, app = server
    _run_session(url, app, *session)


def test_the_server_is_healthy_after_the_fuzzing(server: tuple[str, Any]) -> None:
    """Runs after the fuzz (file order) on the same server: a clean stream and the health route still work."""
    url, app = server
    _wait_released(app)
    assert httpx.get(url + "/healthz", timeout=30).status_code == 200
    frames = [_jpeg(cv2.resize(f, (128, 128))) for f in astronaut_frames(4)]
    with _open(url) as ws:
        ws.send(json.dumps({"type": "config", "fps": 10, "stride": 1, "ack": True}))
        assert check_message(ws.recv(timeout=60))["type"] == "ready"
        msgs = []
        for f in frames:
            ws.send(f)
            while not msgs or msgs[-1]["type"] != "ack":  # lossless: one frame in flight
                msgs.append(check_message(ws.recv(timeout=60)))
        ws.send('{"type": "end"}')
        rest, code, _ = _read_until_closed(ws)
    assert code == 1000
    assert [m["index"] for m in msgs + rest if m["type"] == "pose"] == [0, 1, 2, 3]
    _wait_released(app)


@contextmanager
def _server_with_keepalive(settings_: Settings, ping_s: float | None) -> Iterator[tuple[str, Any]]:
    """Like `serve`, with uvicorn's keepalive ping every `ping_s` (None: none; `hotpose serve`: uvicorn's 20 s)."""
    app = create_app(settings_)
    port = free_port()
    config = uvicorn.Config(app, port=port, log_level="warning", ws_ping_interval=ping_s, ws_ping_timeout=ping_s)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not (server.started and app.state.hotpose.ready) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class RawClient:
    """A WebSocket client on a bare socket that reads the handshake's answer and nothing after it."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /v1/stream HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, payload: bytes, opcode: int = 0x2) -> None:
        """One masked frame (a client's frames are masked); blocks while the server reads nothing."""
        n, mask = len(payload), os.urandom(4)
        length = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode]) + length + mask + masked)


def test_a_client_that_never_reads_is_held_back_and_let_go(tiny_weights: Path, tmp_path: Path) -> None:
    """A client that sends and never reads: once the socket's buffers are full the server stops reading
    it too (it does not buffer answers without bound), and when the client goes, its slot is freed even
    though the server was blocked sending to it; a clean stream works afterwards."""
    settings_ = Settings(
        device="cpu", lifter="hot_mixste", lifter_weights=tiny_weights, data_dir=tmp_path / "data",
        live_queue=2, max_message_mb=MAX_MESSAGE_MB, stream_idle_s=600,
    )  # fmt: skip
    total = 100_000  # 80 MB of frames: far more than the sockets' buffers hold
    with _server_with_keepalive(settings_, ping_s=None) as (url, app):
        client = RawClient(url)
        client.send(b'{"type": "config"}', opcode=0x1)
        sent = 0
        done = threading.Event()

        def flood() -> None:  # each frame answered with an `error` or `dropped`: the server has to send
            nonlocal sent
            with contextlib.suppress(OSError):
                for _ in range(total):
                    client.send(BINARIES["garbage"])
                    sent += 1
            done.set()

        threading.Thread(target=flood, daemon=True).start()
        before = -1
        while sent != before and not done.is_set():  # until the client's sends stall (or all went through)
            before = sent
            done.wait(2.0)
        assert not done.is_set(), f"the server read all {total} frames of a client that reads nothing"
        assert app.state.hotpose.streams, "the stream was closed, not held back"
        client.sock.shutdown(socket.SHUT_RDWR)  # the client goes, the server still blocked sending to it
        client.sock.close()
        assert done.wait(60)
        _wait_released(app)
        assert httpx.get(url + "/healthz", timeout=30).status_code == 200
        with _open(url) as clean:
            clean.send(json.dumps({"type": "config"}))
            assert check_message(clean.recv(timeout=60))["type"] == "ready"
            clean.send('{"type": "end"}')
            assert _read_until_closed(clean)[1] == 1000


# --- docs/websocket.md against the code ---------------------------------------------------------------

STREAM_SOURCES = [ROOT / "service" / "streams.py", ROOT / "service" / "routes" / "stream.py"]


def _reason_regex(node: ast.expr | None, assigned: dict[str, ast.expr]) -> str:
    """A close's reason as written in the code -> a regex of the reasons it sends (f-string fields: anything)."""
    if node is None:
        return ""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(_reason_regex(v, assigned) if isinstance(v, ast.Constant) else ".+" for v in node.values)
    if isinstance(node, ast.Name) and node.id in assigned:
        return _reason_regex(assigned[node.id], assigned)
    if isinstance(node, ast.Call) and node.args:  # close_reason(...): the same text, cut to fit
        return _reason_regex(node.args[0], assigned)
    if isinstance(node, ast.Subscript):  # text[:n]
        return _reason_regex(node.value, assigned)
    raise AssertionError(f"a close reason the test cannot read: {ast.unparse(node)}")


def code_closes() -> list[tuple[int, str, str]]:
    """(code, reason regex, where) of every `ws.close(...)` in the stream's modules."""
    out = []
    for path in STREAM_SOURCES:
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            assigned = {
                t.id: a.value
                for a in ast.walk(fn)
                if isinstance(a, ast.Assign)
                for t in a.targets
                if isinstance(t, ast.Name)
            }
            for call in ast.walk(fn):
                if not (
                    isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "close"
                ):
                    continue
                kw = {k.arg: k.value for k in call.keywords}
                if "code" not in kw:
                    continue
                code = kw["code"]
                value = getattr(protocol, code.id) if isinstance(code, ast.Name) else ast.literal_eval(code)
                out.append((int(value), _reason_regex(kw.get("reason"), assigned), f"{path.name}:{call.lineno}"))
    return out


def code_message_types() -> set[str]:
    """The `type`s of the JSON messages the server writes: dict literals with a "type", JSON text passed
    to `send_text`, and the SDK schema's message classes the code builds (once it uses them)."""
    found: set[str] = set()
    text = "\n".join(p.read_text() for p in STREAM_SOURCES)
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Dict):
            found |= {
                v.value
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and k.value == "type" and isinstance(v, ast.Constant)
            }
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "send_text":
            written = " ".join(
                c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)
            )
            found |= set(re.findall(r'"type":\s*"(\w+)"', written))
    if _schema is not None:
        for cls in _schema.SERVER_MESSAGES:
            if re.search(rf"\b{cls.__name__}\(", text):
                found.add(cls.model_fields["type"].default)
    return found


def test_every_close_the_server_sends_is_documented_and_every_documented_one_is_sent() -> None:
    closes = code_closes()
    assert len(closes) >= 5, closes
    for code, regex, where in closes:
        rows = [r for r in CLOSE_ROWS if r.code == code and r.reason and re.fullmatch(regex, r.reason, re.S)]
        assert rows or (code == 1000 and regex == ""), f"{where}: close {code} {regex!r} is not in docs/websocket.md"
    for row in CLOSE_ROWS:
        if row.code == 1009:  # uvicorn's own, on a message over its size limit (the doc says so)
            continue
        sent = [c for c in closes if c[0] == row.code and (not row.reason or re.fullmatch(c[1], row.reason, re.S))]
        assert sent, f"docs/websocket.md lists {row.code} {row.reason!r}, which the server never sends"


def test_every_message_type_is_documented_both_ways() -> None:
    assert code_message_types() == set(SERVER_MESSAGES)
    parsed = set(
        re.findall(r"""(?:kind|get\("type"\)) == "(\w+)\"""", (ROOT / "service" / "stream_protocol.py").read_text())
    )
    assert parsed == doc_client_messages() == {"config", "frame", "end"}
    fields = set(CONFIG_FIELDS)
    doc_fields = {re.sub(r"`", "", c[0]) for c in _table_rows(_section("## The config"))}
    assert doc_fields == fields, "the config table and the fields the server reads differ"
    source = (ROOT / "service" / "stream_protocol.py").read_text()
    assert all(f'"{f}"' in source for f in fields)
