"""`hotpose bench service --ray`: the single-process server and hotpose on Ray Serve side by side on this
machine, over HTTP for both: clip jobs (upload to done, interleaved rounds), live streams, the cost of
one Serve handle call, and each model replica's throughput, for sizing a cluster (docs/deploy.md).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from hotpose.service.bench import clip_job_fps, encode_jpegs, free_port, make_clip, measure_live
from hotpose.service.settings import Settings

HANDLE_CALLS = 50  # calls timed for the handle overhead
CAPACITY_STREAMS = 4  # concurrent streams feeding the Detector replica when measuring its throughput
CAPACITY_WINDOWS = 64  # windows sent at once to the Lifter replica


def bench_ray(
    settings: Settings,
    rounds: int = 3,
    seconds: float = 20.0,
    fps: float = 15.0,
    config: Path | None = None,
    on_step: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Both servers up at once (each idle while the other is measured); interleaved clip rounds, then one
    live stream on each, the handle overhead and the replicas' throughput on Ray."""
    import uvicorn

    from hotpose.service.app import create_app
    from hotpose.service.deploy import ray_run

    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip720.mp4"
        source = make_clip(clip)
        jpegs = encode_jpegs(clip)
        local = settings.model_copy(update={"data_dir": Path(tmp) / "process", "live_queue": 2})
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(local), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        env = _settings_env(settings, Path(tmp) / "ray")
        try:
            ray_url = ray_run.start(
                "127.0.0.1", free_port(), config or ray_run.CONFIG, num_cpus=os.cpu_count(), env=env
            )
            while not server.started:
                time.sleep(0.05)
            urls = {"process": f"http://127.0.0.1:{port}", "ray": ray_url}
            for url in urls.values():  # a first job warms every path up (not counted)
                clip_job_fps(url, clip)
            clips: dict[str, list[float]] = {k: [] for k in urls}
            for _ in range(rounds):
                for kind, url in urls.items():
                    clips[kind].append(clip_job_fps(url, clip))
                if on_step is not None:
                    on_step()
            live = {kind: measure_live(url, jpegs, 1, fps, seconds) for kind, url in urls.items()}
            if on_step is not None:
                on_step()
            report: dict[str, Any] = {
                "clip_source": source, "rounds": rounds, "cpus": os.cpu_count(),
                "clip_fps": {k: statistics.median(v) for k, v in clips.items()},
                "live": live, "handle_ms": handle_overhead_ms(), "capacity": replica_capacity(jpegs),
            }  # fmt: skip
        finally:
            server.should_exit = True
            thread.join(timeout=60)
            ray_run.stop()
    report["clip_ratio"] = report["clip_fps"]["ray"] / report["clip_fps"]["process"]
    return report


def _settings_env(s: Settings, data_dir: Path) -> dict[str, str]:
    """The settings the command was given, as the HOTPOSE_* variables the replicas read."""
    env = {"HOTPOSE_DATA_DIR": str(data_dir), "HOTPOSE_LIFTER": s.lifter}
    if s.lifter_weights is not None:
        env["HOTPOSE_LIFTER_WEIGHTS"] = str(s.lifter_weights)
    if s.device is not None:
        env["HOTPOSE_DEVICE"] = s.device
    if s.threads is not None:
        env["HOTPOSE_THREADS"] = str(s.threads)
    return env


def handle_overhead_ms() -> dict[str, float]:
    """One call of a method that does nothing (`pid`) on the Detector and on the Lifter, through handles."""
    from ray import serve

    out = {}
    for name in ("Detector", "Lifter"):
        handle = serve.get_deployment_handle(name, app_name="hotpose")
        handle.pid.remote().result()
        times = []
        for _ in range(HANDLE_CALLS):
            t0 = time.perf_counter()
            handle.pid.remote().result()
            times.append(1000 * (time.perf_counter() - t0))
        out[name] = statistics.median(times)
    return out


def replica_capacity(jpegs: list[bytes]) -> dict[str, float]:
    """What one replica of each model serves on this machine: Detector frames/s with CAPACITY_STREAMS
    tracked streams sending 720p JPEGs as fast as answered; Lifter windows/s with CAPACITY_WINDOWS
    windows in flight, with test-time flip (clips) and without (live streams' default). A person needs
    a window every 81 grid frames (30 fps) of a clip, every `HOTPOSE_LIVE_STRIDE` of a live stream."""
    from ray import serve

    from hotpose.service.deploy.ray_backends import RayDetector, RayLifter

    det = RayDetector(serve.get_deployment_handle("Detector", app_name="hotpose"))
    det.start()
    frames = jpegs[: min(len(jpegs), 60)]

    def one_stream(_: int) -> int:
        detect = det.new_stream()
        for i, data in enumerate(frames):
            detect(np.zeros((1, 1, 3), np.uint8), i / 30, data)
        return len(frames)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(CAPACITY_STREAMS) as pool:
        n = sum(pool.map(one_stream, range(CAPACITY_STREAMS)))
    detector_fps = n / (time.perf_counter() - t0)
    lifter_handle = serve.get_deployment_handle("Lifter", app_name="hotpose")
    info = lifter_handle.info.remote().result()
    out = {"detector_frames_per_s": detector_fps, "lifter_windows_per_s_flip": 0.0, "lifter_windows_per_s": 0.0}
    if info is not None:
        lif = RayLifter(lifter_handle, info)
        windows = np.zeros((CAPACITY_WINDOWS, info.window, 17, info.kind.channels), np.float32)
        for flip, key in ((True, "lifter_windows_per_s_flip"), (False, "lifter_windows_per_s")):
            lif.lift(windows[:4], flip=flip)
            t0 = time.perf_counter()
            lif.lift(windows, flip=flip)
            out[key] = CAPACITY_WINDOWS / (time.perf_counter() - t0)
    return out


def format_ray_report(r: dict[str, Any]) -> str:
    c, lv = r["clip_fps"], r["live"]
    lines = [
        f"{r['cpus']} CPUs; clip: {r['clip_source']}, 1280x720, medians of {r['rounds']} interleaved rounds",
        f"clip job over HTTP (upload to done): single process {c['process']:.1f} frames/s, Ray Serve "
        f"{c['ray']:.1f} frames/s (ratio {r['clip_ratio']:.2f})",
    ]
    for kind in ("process", "ray"):
        x = lv[kind]
        lines.append(
            f"live 1 stream x {x['fps_sent']:g} fps causal, {kind}: p50 {x['p50_ms']:.0f} ms, "
            f"p95 {x['p95_ms']:.0f} ms, answered {x['answered']}/{x['frames_sent']}, dropped {x['dropped']}"
        )
    h, cap = r["handle_ms"], r["capacity"]
    lines.append(f"Serve handle call overhead (median of {HANDLE_CALLS}): Detector {h['Detector']:.1f} ms, "
                 f"Lifter {h['Lifter']:.1f} ms")  # fmt: skip
    lines.append(f"one Detector replica: {cap['detector_frames_per_s']:.1f} frames/s (720p, {CAPACITY_STREAMS} "
                 f"tracked streams); one Lifter replica: {cap['lifter_windows_per_s_flip']:.1f} windows/s with flip "
                 f"(clips), {cap['lifter_windows_per_s']:.1f} without (live default)")  # fmt: skip
    return "\n".join(lines)
