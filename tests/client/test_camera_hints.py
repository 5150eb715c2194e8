"""Camera hints (`focal_px` or `fov_deg`, `person_height_m`) from the SDK and its command line to the
server's camera and back: clips as form fields, streams as config keys."""

from __future__ import annotations

import asyncio
import io
import json
import math
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from hotpose.service.bench import free_port
from hotpose_client import AsyncPoseClient, PoseClient, PoseSequence, RequestError
from hotpose_client.cli import main
from tests.client.conftest import LiveServer
from tests.conftest import astronaut_frames

Make = Callable[..., PoseClient]

HEIGHT_REFUSED = "person_height_m must be in [0.3, 2.5] metres, got 9.0"  # the server's reason for 9
BOTH_LENS_HINTS = "focal_px .* or fov_deg .* not both"


def test_a_clip_with_a_field_of_view_is_placed_with_that_camera(in_process: Make, astronaut_clip: Path) -> None:
    with in_process() as client:
        seq = client.process_clip(astronaut_clip, progress=False, fov_deg=90)
        plain = client.process_clip(astronaut_clip, progress=False)
    assert seq.camera is not None and plain.camera is not None
    assert seq.camera.focal_px == pytest.approx(seq.width / 2, abs=0.01)  # 90 degrees: tan(45) = 1
    assert not seq.camera.assumed
    # without a hint: the server's 70-degree guess, and it says so
    assert plain.camera.assumed
    assert plain.camera.focal_px == pytest.approx(plain.width / 2 / math.tan(math.radians(35)), abs=0.01)


def test_a_hint_the_server_refuses_is_a_request_error_with_its_reason(live_server: LiveServer) -> None:
    with PoseClient(base_url=live_server.url, api_key="k1") as client:
        with pytest.raises(RequestError, match=re.escape(HEIGHT_REFUSED)) as clip:
            client.submit_clip(io.BytesIO(b"not looked at"), person_height_m=9)
        with pytest.raises(RequestError, match=re.escape(HEIGHT_REFUSED)) as stream:
            client.stream(astronaut_frames(1), person_height_m=9)
    assert clip.value.status_code == 422 and HEIGHT_REFUSED in (clip.value.detail or "")
    assert stream.value.status_code == 1008 and "bad config" in str(stream.value)

    async def refused_async() -> tuple[RequestError, RequestError]:
        async with AsyncPoseClient(base_url=live_server.url, api_key="k1") as client:
            with pytest.raises(RequestError, match=re.escape(HEIGHT_REFUSED)) as clip:
                await client.submit_clip(io.BytesIO(b"not looked at"), person_height_m=9)
            with pytest.raises(RequestError, match=re.escape(HEIGHT_REFUSED)) as stream:
                await client.stream(astronaut_frames(1), person_height_m=9)
        return clip.value, stream.value

    clip_error, stream_error = asyncio.run(refused_async())
    assert (clip_error.status_code, stream_error.status_code) == (422, 1008)


def test_both_lens_hints_are_refused_before_any_request() -> None:
    calls: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(202, json={"job_id": "j1", "status": "queued"})

    nobody = f"http://127.0.0.1:{free_port()}"  # a stream that got as far as connecting: ConnectionError
    with PoseClient(transport=httpx.MockTransport(record)) as client:
        with pytest.raises(ValueError, match=BOTH_LENS_HINTS):
            client.submit_clip(io.BytesIO(b"video"), focal_px=600, fov_deg=60)
        with pytest.raises(ValueError, match=BOTH_LENS_HINTS):
            client.process_clip(io.BytesIO(b"video"), focal_px=600, fov_deg=60)
    with PoseClient(base_url=nobody, retries=0) as client, pytest.raises(ValueError, match=BOTH_LENS_HINTS):
        client.stream([b"x"], focal_px=600, fov_deg=60)

    async def refused_async() -> None:
        async with AsyncPoseClient(transport=httpx.MockTransport(record)) as client:
            with pytest.raises(ValueError, match=BOTH_LENS_HINTS):
                await client.process_clip(io.BytesIO(b"video"), focal_px=600, fov_deg=60)
        async with AsyncPoseClient(base_url=nobody, retries=0) as client:
            with pytest.raises(ValueError, match=BOTH_LENS_HINTS):
                await client.stream([b"x"], focal_px=600, fov_deg=60)

    asyncio.run(refused_async())
    assert calls == []


def test_clip_hints_are_form_fields_sent_only_when_given() -> None:
    bodies: list[bytes] = []

    def record(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        return httpx.Response(202, json={"job_id": "j1", "status": "queued"})

    with PoseClient(transport=httpx.MockTransport(record)) as client:
        client.submit_clip(io.BytesIO(b"video"))
        client.submit_clip(io.BytesIO(b"video"), focal_px=600, person_height_m=1.2)

    async def submit_async() -> None:
        async with AsyncPoseClient(transport=httpx.MockTransport(record)) as client:
            await client.submit_clip(io.BytesIO(b"video"), fov_deg=66)

    asyncio.run(submit_async())
    assert not any(f'name="{k}"'.encode() in bodies[0] for k in ("focal_px", "fov_deg", "person_height_m"))
    assert b'name="focal_px"\r\n\r\n600.0\r\n' in bodies[1] and b'name="person_height_m"\r\n\r\n1.2\r\n' in bodies[1]
    assert b'name="fov_deg"' not in bodies[1] and b'name="fov_deg"\r\n\r\n66.0\r\n' in bodies[2]


def test_a_stream_with_a_focal_length_answers_with_that_camera(live_server: LiveServer) -> None:
    with PoseClient(base_url=live_server.url, api_key="k1") as client:
        with client.stream(astronaut_frames(6), fps=10, max_in_flight=2, focal_px=600) as live:
            frames = list(live)
        with client.stream(astronaut_frames(2), fps=10, max_in_flight=2) as live:
            plain = list(live)
    assert [f.index for f in frames] == list(range(6))
    assert all(f.camera is not None and f.camera.focal_px == 600 and not f.camera.assumed for f in frames)
    assert plain and all(f.camera is not None and f.camera.assumed for f in plain)

    async def stream_async() -> list[tuple[float, bool]]:
        async with AsyncPoseClient(base_url=live_server.url, api_key="k1") as client:
            live = await client.stream(astronaut_frames(3), fps=10, max_in_flight=2, fov_deg=90)
            return [(f.camera.focal_px, f.camera.assumed) async for f in live if f.camera is not None]

    assert asyncio.run(stream_async()) == [(pytest.approx(256.0, abs=0.01), False)] * 3  # 512 wide, 90 degrees


def test_cli_passes_the_camera_hints(
    live_server: LiveServer, astronaut_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--url", live_server.url, "--api-key", "k1"]
    out = tmp_path / "p.json"
    assert main([*base, "clip", str(astronaut_clip), "--quiet", "-o", str(out), "--fov-deg", "90"]) == 0
    camera = PoseSequence.from_json(out).camera
    assert camera is not None and camera.focal_px == pytest.approx(256.0, abs=0.01) and not camera.assumed
    capsys.readouterr()

    webcam = [*base, "webcam", "--device", str(astronaut_clip), "--frames", "4", "--focal-px", "600"]
    assert main(webcam) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert lines and all(line["camera"]["focal_px"] == 600 for line in lines)

    assert main([*base, "clip", str(astronaut_clip), "-o", str(out), "--person-height-m", "9"]) == 1
    assert HEIGHT_REFUSED in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main([*base, "webcam", "--focal-px", "600", "--fov-deg", "60"])
    assert usage.value.code == 2 and "not allowed with argument --focal-px" in capsys.readouterr().err
