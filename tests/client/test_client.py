from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from hotpose.service.app import create_app
from hotpose.service.bench import free_port
from hotpose.service.settings import Settings
from hotpose_client import (
    AsyncPoseClient,
    AuthError,
    ConnectionError,
    Frame,
    HotposeError,
    JobFailed,
    PoseClient,
    PoseSequence,
    RequestError,
    ServerBusy,
    ServerError,
)
from hotpose_client.bvh import read_bvh
from tests.client.conftest import LiveServer
from tests.conftest import astronaut_frames, fail_stream_frame

Make = Callable[..., PoseClient]


def test_process_clip_round_trip(in_process: Make, astronaut_clip: Path, tmp_path: Path) -> None:
    progress: list[tuple[str, float]] = []
    with in_process() as client:
        seq = client.process_clip(astronaut_clip, progress=lambda stage, f: progress.append((stage, f)))
        assert isinstance(seq, PoseSequence) and len(seq) == 30
        assert (seq.width, seq.height, seq.fps) == (512, 512, pytest.approx(10.0))
        assert [f.index for f in seq.frames] == list(range(30))
        assert len(seq.track_ids()) == 1  # one person, one id
        j = seq.joints_3d()
        seen = ~np.isnan(j).any(axis=(1, 2))
        assert j.shape == (30, 17, 3) and seen.sum() >= 28  # a new person is confirmed after 2 frames
        assert np.abs(j[seen, 0]).max() == 0  # root-relative
        assert seq.coordinates["joints_3d"].startswith("metres, camera frame")
        assert ("upload", 1.0) in progress and progress[-1] == ("process", 1.0)

        # the server's own NPZ/CSV downloads read back into the same sequence
        job_id = client.submit_clip(astronaut_clip.open("rb"))
        client.wait(job_id)
        npz = PoseSequence.from_npz(client.download(job_id, tmp_path / "r.npz"))
        np.testing.assert_allclose(npz.joints_3d(), client.result(job_id).joints_3d(), atol=1e-6)
        assert npz.coordinates == seq.coordinates and npz.skeleton_edges == seq.skeleton_edges
        csv = PoseSequence.from_csv(client.download(job_id, tmp_path / "r.csv"), fps=seq.fps)
        full = client.result(job_id).keypoints_2d()
        np.testing.assert_allclose(csv.keypoints_2d(), full[~np.isnan(full).any(axis=(1, 2))])  # CSV: no empty frames
        bvh = client.download(job_id, tmp_path / "p.bvh", track_id=seq.track_ids()[0])
        assert len(read_bvh(bvh).motion) == 30
        with pytest.raises(RequestError, match="no person with track_id") as nobody:
            client.download(job_id, tmp_path / "q.bvh", track_id=seq.track_ids()[0] + 1)
        assert nobody.value.status_code == 422

        # iter_frames follows the job's NDJSON stream
        frames = list(client.iter_frames(job_id))
        assert [f.index for f in frames] == list(range(30)) and all(isinstance(f, Frame) for f in frames)

        seq.to_bvh(tmp_path / "r.bvh")
        assert len(read_bvh(tmp_path / "r.bvh").motion) == 30
        client.delete_job(job_id)
        with pytest.raises(RequestError) as e:
            client.job(job_id)
        assert e.value.status_code == 404


def test_errors_map_to_the_documented_tree(in_process: Make, astronaut_clip: Path) -> None:
    with in_process(api_keys="secret", api_key="wrong") as client, pytest.raises(AuthError) as e:
        client.info()
    assert e.value.status_code == 401 and "API key" in str(e.value)
    with in_process(api_keys="secret", api_key="secret") as client:
        assert client.ready() and client.info()["window"] > 0
        job_id = client.submit_clip(io.BytesIO(b"this is not a video" * 50))
        with pytest.raises(JobFailed) as failed:
            client.wait(job_id)
        assert failed.value.job_id == job_id and "video" in failed.value.reason.lower()
        with pytest.raises(JobFailed) as again:
            client.result(job_id)
        assert again.value.reason == failed.value.reason
        with pytest.raises(JobFailed):
            client.download(job_id, "unused.json")
        with pytest.raises(JobFailed):
            list(client.iter_frames(job_id))
        with pytest.raises(RequestError) as empty:
            client.submit_clip(io.BytesIO(b""))
        assert empty.value.status_code == 422
    assert issubclass(JobFailed, HotposeError) and issubclass(ConnectionError, OSError)


def test_too_many_clips_waiting_is_server_busy(make_settings: Callable[..., Settings], astronaut_clip: Path) -> None:
    with TestClient(create_app(make_settings(max_pending_jobs=0))) as tc:
        client = PoseClient(base_url="http://testserver", transport=tc._transport)  # type: ignore[arg-type]
        with client, pytest.raises(ServerBusy) as busy:
            client.submit_clip(astronaut_clip)  # try again later
    assert busy.value.status_code == 429 and "too many clips waiting" in str(busy.value)


def test_server_down_is_a_connection_error_after_retries() -> None:
    calls = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        raise httpx.ConnectError("connection refused", request=request)

    client = PoseClient(transport=httpx.MockTransport(refuse), retries=2, backoff=0.001)
    with client, pytest.raises(ConnectionError, match="cannot reach the hotpose server"):
        client.job("abc")
    assert calls == ["/v1/jobs/abc"] * 3  # first try + 2 retries
    with PoseClient(base_url=f"http://127.0.0.1:{free_port()}", retries=1, backoff=0.001) as client:
        with pytest.raises(ConnectionError):
            client.info()
        with pytest.raises(ConnectionError):
            client.stream([b"x"])


def test_async_client_in_process(make_settings: Callable[..., Settings], astronaut_clip: Path) -> None:
    app = create_app(make_settings())
    with TestClient(app):  # runs the lifespan (models load); the async client talks ASGI directly

        async def main() -> tuple[PoseSequence, list[int]]:
            transport = httpx.ASGITransport(app=app)
            async with AsyncPoseClient(base_url="http://testserver", transport=transport) as client:
                seq = await client.process_clip(astronaut_clip, progress=False)
                job_id = await client.submit_clip(astronaut_clip)
                await client.wait(job_id)
                return seq, [f.index async for f in client.iter_frames(job_id)]

        seq, indexes = asyncio.run(main())
    assert len(seq) == 30 and seq.joints_3d().shape == (30, 17, 3)
    assert indexes == list(range(30))


def test_stream_of_a_real_clip_accounts_for_every_frame(live_server: LiveServer) -> None:
    images = astronaut_frames(24)
    with PoseClient(base_url=live_server.url, api_key="k1") as client:
        # lossless: the client waits instead of letting the server drop frames; more in flight than the
        # server's queue (2) could be dropped, so the client keeps to the queue
        with client.stream(images, fps=15, max_in_flight=8) as live:
            frames = list(live)
        assert [f.index for f in frames] == list(range(24)) and live.dropped == [] and live.errors == []
        ids = {p.track_id for f in frames for p in f.people}
        assert len(ids) == 1 and all(f.people for f in frames[2:])  # one person, one id (gating: 2 frames)
        assert all(f.latency_ms is not None for f in frames)
        assert frames[-1].people[0].joints_3d is not None

        # as fast as possible, with a bad frame in the middle: answered + dropped + errors = sent
        items: list[object] = [*images[:10], b"not an image", *images[10:]]
        live = client.stream(items)
        answered = [f.index for f in live]
        s = live.state
        assert s.sent == 25 and len(answered) + len(s.dropped) + len(s.errors) == 25
        assert answered == sorted(answered) and 10 not in answered
        assert 10 in s.dropped or (s.errors[0][0] == 10 and "not an image" in s.errors[0][1])  # dropped or refused


def test_stream_errors(live_server: LiveServer) -> None:
    with PoseClient(base_url=live_server.url, api_key="nope") as client, pytest.raises(AuthError):
        list(client.stream([b"x"]))
    with PoseClient(base_url=live_server.url, api_key="k1") as client:
        with pytest.raises(ValueError, match="emit"):
            client.stream([], emit="sometimes")
        held = [client.stream(iter(lambda: b"", None)) for _ in range(2)]  # both slots, never ending
        try:
            with pytest.raises(ServerBusy, match="too many streams"):
                list(client.stream([b"x"]))
        finally:
            for h in held:
                h.close()
        with pytest.raises(TypeError, match="numpy arrays or encoded bytes"):
            list(client.stream([object()]))


def test_async_stream(live_server: LiveServer) -> None:
    images = astronaut_frames(12)

    async def frames() -> object:
        for i, img in enumerate(images):
            yield i / 15, img

    async def main() -> list[int]:
        async with AsyncPoseClient(base_url=live_server.url, api_key="k1") as client:
            live = await client.stream(frames(), emit="delayed", delay_frames=4, max_in_flight=3)
            return [f.index async for f in live]

    assert asyncio.run(main()) == list(range(12))


def test_a_server_failure_mid_stream_is_a_server_error_with_the_reason(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_stream_frame(monkeypatch, at=2)
    with PoseClient(base_url=live_server.url, api_key="k1") as client:
        live = client.stream(astronaut_frames(6), fps=10, max_in_flight=1)
        got = []
        with pytest.raises(ServerError, match="internal error at frame 2") as e:
            for f in live:
                got.append(f.index)
        assert e.value.status_code == 1011 and got == sorted(got) and all(i < 2 for i in got)  # frames before it
        assert live.errors[0] == (2, "internal error at frame 2: RuntimeError: CUDA out of memory")
        # and each frame sent that will not be answered now (held for context or queued) says so
        assert all(m == "not answered: internal error at frame 2: RuntimeError" for _, m in live.errors[1:])
        assert not {i for i, _ in live.errors} & set(got)


def test_async_stream_surfaces_a_failing_source(live_server: LiveServer) -> None:
    images = astronaut_frames(3)

    async def broken() -> object:
        yield images[0]
        yield images[1]
        raise OSError("camera unplugged")

    async def bad_item() -> object:
        yield images[0]
        yield object()

    async def main(frames: object) -> list[int]:
        got: list[int] = []
        async with AsyncPoseClient(base_url=live_server.url, api_key="k1") as client:
            live = await client.stream(frames, fps=10)  # type: ignore[arg-type]
            async for f in live:
                got.append(f.index)
        return got

    with pytest.raises(HotposeError, match="camera unplugged"):
        asyncio.run(asyncio.wait_for(main(broken()), 60))  # before: waited for the server forever
    with pytest.raises(TypeError, match="numpy arrays or encoded bytes"):
        asyncio.run(asyncio.wait_for(main(bad_item()), 60))
