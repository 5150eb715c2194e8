"""`hotpose bench service`: end-to-end clip throughput and live-stream latency.

- Clip: a 720p clip (the shared office clip upscaled when present, else a panning astronaut)
  decoded alone (the ceiling: nothing can go faster than decoding) and run end to end (decode,
  detect, track, lift, JSON per frame) through the service's engine and batching schedulers;
  medians of interleaved rounds.
- Live: a real server on loopback; N clients send JPEG frames paced at `fps` over WebSockets
  (causal emission unless told otherwise) and record each reply's server-side `latency_ms`
  (frame received -> pose sent) and the frames the server dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hotpose.service.engine import Engine, EngineConfig
from hotpose.service.pipeline import iter_poses
from hotpose.service.settings import Settings
from hotpose.service.video import iter_frames

log = logging.getLogger(__name__)

SHARED_CLIP = Path(__file__).resolve().parents[2] / "shared" / "videos" / "people_one_by_one_768x432_10fps.mp4"


def make_clip(path: Path, frames: int = 120, size: tuple[int, int] = (1280, 720), fps: float = 30.0) -> str:
    """Write a 720p test clip; returns where its content came from."""
    w, h = size
    fourcc = cv2.VideoWriter_fourcc(*"mp4v")  # type: ignore[attr-defined]
    writer = cv2.VideoWriter(str(path), fourcc, fps, (w, h))
    source = "astronaut pan"
    if SHARED_CLIP.exists():
        cap = cv2.VideoCapture(str(SHARED_CLIP))
        n = 0
        cap.set(cv2.CAP_PROP_POS_FRAMES, 120)  # people are in view from here on
        while n < frames:
            ok, bgr = cap.read()
            if not ok:
                break
            writer.write(cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR))
            n += 1
        source = f"{SHARED_CLIP.name} (frames 120-{120 + n}) upscaled"
    else:
        from hotpose.models.bench import astronaut

        img = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)
        canvas = np.zeros((h, w + 400, 3), np.uint8)
        canvas[(h - 512) // 2 : (h - 512) // 2 + 512, 300:812] = img
        for i in range(frames):
            writer.write(np.ascontiguousarray(canvas[:, 2 * i : 2 * i + w]))
    writer.release()
    return source


def bench_clip(
    engine: Engine, clip: Path, rounds: int = 3, on_round: Callable[[], None] | None = None
) -> dict[str, Any]:
    decode, e2e = [], []
    n = 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        n = sum(1 for _ in iter_frames(clip))
        decode.append(n / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        pipe = engine.pipeline()  # the clip jobs' policy
        m = 0
        for fp in iter_poses(iter_frames(clip), pipe):
            json.dumps(fp.to_dict())
            m += 1
        e2e.append(m / (time.perf_counter() - t0))
        if on_round is not None:
            on_round()
    return {
        "frames": n,
        "decode_fps": statistics.median(decode),
        "end_to_end_fps": statistics.median(e2e),
        "ratio": statistics.median(e2e) / statistics.median(decode),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def encode_jpegs(clip: Path, quality: int = 85) -> list[bytes]:
    """Every frame of `clip` as the JPEG a live client sends."""
    return [
        cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
        for _, _, f in iter_frames(clip)
    ]


async def live_stream(
    url: str,
    jpegs: list[bytes],
    k: int,
    frames: int,
    fps: float,
    emit: str = "causal",
    stride: int | None = None,
) -> dict[str, Any]:
    """One live client: `frames` JPEGs paced at `fps` with capture times (client `k` starts 7k frames into
    the clip), then `end`; what the server answered. `sent` = `answered` + `dropped` + `errors` when the
    server keeps its accounting and closes normally (`close_code` 1000)."""
    import websockets

    async with websockets.connect(url, max_size=None) as ws:
        cfg: dict[str, Any] = {"type": "config", "emit": emit}
        if stride:
            cfg["stride"] = stride
        await ws.send(json.dumps(cfg))
        json.loads(await ws.recv())
        lat: list[float] = []
        dropped: list[int] = []
        errors: list[int] = []

        async def reader() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                async for raw in ws:
                    m = json.loads(raw)
                    if m["type"] == "pose":
                        lat.append(m["latency_ms"])
                    elif m["type"] == "dropped":
                        dropped.extend(m["indexes"])
                    elif m["type"] == "error" and m.get("index") is not None:
                        errors.append(m["index"])

        task = asyncio.create_task(reader())
        t0 = time.perf_counter()
        sent = 0
        with contextlib.suppress(websockets.ConnectionClosed):  # the server closed early: close_code says why
            for i in range(frames):
                await ws.send(json.dumps({"type": "frame", "t": i / fps}))
                await ws.send(jpegs[(i + 7 * k) % len(jpegs)])
                sent += 1
                await asyncio.sleep(max(t0 + (i + 1) / fps - time.perf_counter(), 0))
            await ws.send(json.dumps({"type": "end"}))
        await task
        return {
            "sent": sent, "answered": len(lat), "dropped": len(dropped), "errors": len(errors),
            "latency_ms": lat, "close_code": ws.close_code, "seconds": time.perf_counter() - t0,
        }  # fmt: skip


def bench_live(
    settings: Settings,
    clip: Path,
    streams: int,
    fps: float,
    seconds: float,
    emit: str = "causal",
    stride: int | None = None,
) -> dict[str, Any]:
    """`streams` live clients against a single-process server started for the run."""
    import uvicorn

    from hotpose.service.app import create_app

    port = free_port()
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        return measure_live(f"http://127.0.0.1:{port}", encode_jpegs(clip), streams, fps, seconds, emit, stride)
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def measure_live(
    url: str,
    jpegs: list[bytes],
    streams: int,
    fps: float,
    seconds: float,
    emit: str = "causal",
    stride: int | None = None,
) -> dict[str, Any]:
    """`streams` live clients against the server at `url` (http://host:port), paced at `fps` for `seconds`."""
    n = int(seconds * fps)
    ws_url = url.replace("http://", "ws://", 1) + "/v1/stream"

    async def main() -> list[dict[str, Any]]:
        return await asyncio.gather(*(live_stream(ws_url, jpegs, k, n, fps, emit, stride) for k in range(streams)))

    results = asyncio.run(main())
    lat = sorted(x for r in results for x in r["latency_ms"])
    answered = sum(r["answered"] for r in results)
    wall = max(r["seconds"] for r in results)
    return {
        "streams": streams, "fps_sent": fps, "emit": emit, "frames_sent": n * streams, "answered": answered,
        "dropped": sum(r["dropped"] for r in results), "p50_ms": float(np.percentile(lat, 50)) if lat else None,
        "p95_ms": float(np.percentile(lat, 95)) if lat else None, "answered_fps": answered / wall,
    }  # fmt: skip


def clip_job_fps(url: str, clip: Path, timeout: float = 600) -> float:
    """POST `clip` to the server at `url` and wait for its job: frames per second from upload to done."""
    import httpx

    t0 = time.perf_counter()
    with httpx.Client(base_url=url, timeout=60) as c:
        r = c.post("/v1/clips", files={"file": (clip.name, clip.read_bytes(), "video/mp4")})
        r.raise_for_status()
        job_id = r.json()["job_id"]
        while time.perf_counter() - t0 < timeout:
            job = c.get(f"/v1/jobs/{job_id}").json()
            if job["status"] == "done":
                fps = job["frames_done"] / (time.perf_counter() - t0)
                c.delete(f"/v1/jobs/{job_id}")
                return float(fps)
            if job["status"] == "failed":
                raise RuntimeError(f"the benchmark's clip job failed: {job['error']}")
            time.sleep(0.05)
    raise TimeoutError(f"the benchmark's clip job did not finish in {timeout:g} s")


def bench_render(
    rounds: int = 3, frames: int = 120, threads: int | None = None, on_round: Callable[[], None] | None = None
) -> dict[str, Any]:
    """`hotpose run --render` on a 720p clip: the two passes timed apart, medians over rounds."""
    import torch

    from hotpose.models import create_lifter, resolve_weights
    from hotpose.service.backends import create_2d_stage
    from hotpose.service.pipeline import process_frames
    from hotpose.service.render import render_video
    from hotpose.service.video import iter_frames

    if threads:
        torch.set_num_threads(threads)
    s = Settings()  # the default 2D stage and lifter
    detector = create_2d_stage(EngineConfig.from_settings(s).detector, "cpu")
    lifter = create_lifter(s.lifter, weights=resolve_weights(s.lifter, s.lifter_weights), device="cpu")
    lift_s, render_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip720.mp4"
        source = make_clip(clip, frames=frames)
        out = Path(tmp) / "render.mp4"
        for _ in range(rounds):
            t0 = time.perf_counter()
            seq = process_frames(iter_frames(clip), detector, lifter, fps=30.0, max_gap_s=s.track_max_gap_s)
            lift_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            n = render_video(iter_frames(clip), {f.index: f.people for f in seq.frames}, out, 30.0)
            render_s.append(time.perf_counter() - t0)
            if on_round is not None:
                on_round()
        cap = cv2.VideoCapture(str(out))
        size = f"{int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))}x{int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))}"
        cap.release()
    lift, render = float(np.median(lift_s)), float(np.median(render_s))
    return {
        "clip_source": source, "frames": n, "clip_fps": 30.0, "rounds": rounds, "output_size": size,
        "lift_fps": n / lift, "render_fps": n / render, "total_fps": n / (lift + render),
        "realtime_factor": n / (lift + render) / 30.0,
    }  # fmt: skip


def bench_service(
    settings: Settings,
    rounds: int = 3,
    seconds: float = 20.0,
    fps: float = 15.0,
    on_step: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Clip throughput (`rounds`) and three live runs (1 and 4 causal streams, 1 delayed); `on_step()`
    after each clip round and each live run."""
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip720.mp4"
        source = make_clip(clip)
        engine = Engine(EngineConfig.from_settings(settings))
        try:
            report: dict[str, Any] = {
                "device": engine.device,
                "clip_source": source,
                "clip": bench_clip(engine, clip, rounds, on_step),
            }
        finally:
            engine.close()
        settings = settings.model_copy(update={"data_dir": Path(tmp) / "data", "live_queue": 2})
        report["live"] = []
        for streams, emit in ((1, "causal"), (4, "causal"), (1, "delayed")):
            report["live"].append(bench_live(settings, clip, streams, fps, seconds, emit=emit))
            if on_step is not None:
                on_step()
    return report


def format_service_report(r: dict[str, Any]) -> str:
    c = r["clip"]
    lines = [
        f"device {r['device']}; clip: {r['clip_source']}, {c['frames']} frames 1280x720",
        f"clip: decode alone {c['decode_fps']:.1f} frames/s; end to end {c['end_to_end_fps']:.1f} frames/s "
        f"({100 * c['ratio']:.0f}% of decode)",
    ]
    for lv in r["live"]:
        lines.append(
            f"live {lv['streams']} stream(s) x {lv['fps_sent']:g} fps {lv['emit']}: p50 {lv['p50_ms']:.0f} ms, "
            f"p95 {lv['p95_ms']:.0f} ms, answered {lv['answered']}/{lv['frames_sent']} "
            f"({lv['answered_fps']:.1f} frames/s), dropped {lv['dropped']}"
        )
    return "\n".join(lines)
