"""`hotpose bench soak`: N live streams held for S seconds against a real server process, and its memory.

The server runs as a child process (`hotpose serve` on 127.0.0.1, a fresh data folder, open access,
room for every stream), so its resident memory can be read from `/proc/PID/status` (VmRSS, Linux)
once a second. N clients send a synthetic 720p clip's JPEGs paced at `fps` (`bench.live_stream`,
as `hotpose bench service` does), then `end`. The report gives per stream sent / answered / dropped
/ errors, latency p50 / p95 (frame received -> pose sent, server side), the memory samples, and
the verdict on memory: after `warmup_s` the samples are cut in thirds and the median of the last
third is compared with the median of the first (medians: the allocator's page-ins and returns make
single samples jumpy). It fails when memory grows by `GROWTH_LIMIT` (5%) or more, when a stream's
accounting does not add up (answered + dropped + errors != sent), or when a stream does not close
with 1000; `hotpose bench soak` then exits 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from websockets.exceptions import WebSocketException

from hotpose.service.bench import encode_jpegs, free_port, live_stream, make_clip

GROWTH_LIMIT = 0.05  # memory growth between the first and last third after warm-up that fails a soak
MAX_STREAMS, MAX_FPS, MAX_SECONDS = 64, 60.0, 3600.0  # the bounds of one soak
START_TIMEOUT_S = 300.0  # loading the models on a busy CPU


class SoakError(RuntimeError):
    """The soak could not run: bad bounds, or a server that did not start (its log's tail attached)."""


def check_bounds(streams: int, fps: float, seconds: float) -> None:
    if not 1 <= streams <= MAX_STREAMS:
        raise SoakError(f"--streams must be in [1, {MAX_STREAMS}]")
    if not 0 < fps <= MAX_FPS:
        raise SoakError(f"--fps must be in (0, {MAX_FPS:g}]")
    if not 0 < seconds <= MAX_SECONDS:
        raise SoakError(f"--seconds must be in (0, {MAX_SECONDS:g}]")
    if int(seconds * fps) < 1:
        raise SoakError("--seconds x --fps must make at least one frame")


def rss_mb(pid: int) -> float:
    """The resident memory of process `pid` in MiB (VmRSS in /proc/PID/status)."""
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"^VmRSS:\s+(\d+)\s+kB", text, re.MULTILINE)
    if m is None:
        raise SoakError(f"no VmRSS in /proc/{pid}/status (has the process exited?)")
    return int(m.group(1)) / 1024


def memory_growth(samples: list[tuple[float, float]], warmup_s: float) -> dict[str, Any]:
    """(seconds, MiB) samples -> the medians of the first and last third after `warmup_s` and their ratio - 1.

    Fewer than 3 samples after warm-up: no verdict (`growth` None)."""
    after = [mb for t, mb in samples if t >= warmup_s]
    if len(after) < 3:
        return {"warmup_s": warmup_s, "samples_after_warmup": len(after), "first_third_mb": None, "last_third_mb": None,
                "growth": None}  # fmt: skip
    k = len(after) // 3
    first, last = statistics.median(after[:k]), statistics.median(after[-k:])
    return {"warmup_s": warmup_s, "samples_after_warmup": len(after), "first_third_mb": first, "last_third_mb": last,
            "growth": last / first - 1}  # fmt: skip


class _Server:
    """`hotpose serve` as a child process on loopback, its output in `log`."""

    def __init__(self, port: int, data_dir: Path, log: Path, streams: int) -> None:
        env = dict(os.environ)
        env.update({"HOTPOSE_DATA_DIR": str(data_dir), "HOTPOSE_API_KEYS": ""})
        for limit in ("HOTPOSE_MAX_STREAMS", "HOTPOSE_MAX_STREAMS_PER_KEY"):  # every client is 127.0.0.1
            env[limit] = str(max(streams, int(env.get(limit) or 0)))
        cmd = [sys.executable, "-m", "hotpose.service.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SoakError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(urllib.error.URLError, OSError), self._get("/healthz", 2.0) as r:
                if r.status == 200:
                    return
            time.sleep(0.5)
        raise SoakError(f"the server was not ready after {timeout_s:g} s:\n{self.log_tail()}")

    def active_streams(self) -> float | None:
        """`hotpose_active_streams` from /metrics."""
        with contextlib.suppress(urllib.error.URLError, OSError), self._get("/metrics", 5.0) as r:
            m = re.search(rb"^hotpose_active_streams\s+(\S+)", r.read(), re.MULTILINE)
            return float(m.group(1)) if m else None
        return None

    def _get(self, path: str, timeout_s: float) -> http.client.HTTPResponse:
        response: http.client.HTTPResponse = urllib.request.urlopen(f"{self.url}{path}", timeout=timeout_s)
        return response

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def soak(
    streams: int,
    fps: float,
    seconds: float,
    warmup_s: float | None = None,
    clip: Path | None = None,
    on_second: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run the soak (see the module's docstring); `clip`: the frames to send (default: `make_clip`'s 720p
    clip); `warmup_s`: default a sixth of `seconds`, at most 30 s; `on_second()` after each memory sample."""
    check_bounds(streams, fps, seconds)
    warmup = min(30.0, seconds / 6) if warmup_s is None else warmup_s
    frames = int(seconds * fps)
    with tempfile.TemporaryDirectory() as tmp:
        if clip is None:
            clip = Path(tmp) / "clip720.mp4"
            source = make_clip(clip)
        else:
            source = clip.name
        jpegs = encode_jpegs(clip)
        port = free_port()
        server = _Server(port, Path(tmp) / "data", Path(tmp) / "server.log", streams)
        try:
            server.wait_ready(START_TIMEOUT_S)
            pid = server.proc.pid
            idle = rss_mb(pid)
            load = [os.getloadavg()[0]]  # the CPU this soak shares: 1-min load average at start and end
            samples: list[tuple[float, float]] = []
            done = threading.Event()
            t0 = time.perf_counter()

            def sample() -> None:  # a thread of its own: a busy client loop does not skip samples
                while not done.wait(1.0):
                    samples.append((round(time.perf_counter() - t0, 2), round(rss_mb(pid), 1)))
                    if on_second is not None:
                        on_second()

            async def main() -> list[dict[str, Any]]:
                url = f"ws://127.0.0.1:{port}/v1/stream"
                return await asyncio.gather(*(live_stream(url, jpegs, k, frames, fps) for k in range(streams)))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                results = asyncio.run(main())
            except (OSError, WebSocketException) as e:
                tail = server.log_tail()
                raise SoakError(f"a stream failed ({type(e).__name__}: {e}); the server's log:\n{tail}") from e
            finally:
                done.set()
                sampler.join()
            load.append(os.getloadavg()[0])
            time.sleep(2.0)  # the server lets go of the closed streams
            after = rss_mb(pid)
            active_after = server.active_streams()
        finally:
            server.stop()
    report = _report(streams, fps, seconds, source, results, samples, idle, after, active_after, warmup)
    return report | {"load_1m": [round(x, 2) for x in load]}


def _report(
    streams: int, fps: float, seconds: float, source: str, results: list[dict[str, Any]],
    samples: list[tuple[float, float]], idle: float, after: float, active_after: float | None, warmup: float,
) -> dict[str, Any]:  # fmt: skip
    def pct(xs: list[float], q: float) -> float | None:
        return float(np.percentile(xs, q)) if xs else None

    per_stream = []
    for k, r in enumerate(results):
        lat = r["latency_ms"]
        fields = {key: v for key, v in r.items() if key != "latency_ms"}
        per_stream.append({"stream": k, **fields, "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95)})
    lat_all = [x for r in results for x in r["latency_ms"]]
    growth = memory_growth(samples, warmup)
    accounted = all(s["answered"] + s["dropped"] + s["errors"] == s["sent"] for s in per_stream)
    closed = all(s["close_code"] == 1000 for s in per_stream)
    flat = growth["growth"] is None or growth["growth"] < GROWTH_LIMIT
    total = {key: sum(s[key] for s in per_stream) for key in ("sent", "answered", "dropped", "errors")}
    return {
        "streams": streams, "fps": fps, "seconds": seconds, "clip_source": source, "total": total,
        "per_stream": per_stream, "p50_ms": pct(lat_all, 50), "p95_ms": pct(lat_all, 95),
        "memory": {"idle_mb": round(idle, 1), "after_close_mb": round(after, 1),
                   "peak_mb": max((mb for _, mb in samples), default=idle), **growth, "samples": samples},
        "active_streams_after": active_after, "growth_limit": GROWTH_LIMIT,
        "accounted": accounted, "closed_normally": closed, "memory_flat": flat, "ok": accounted and closed and flat,
        "cpu_count": os.cpu_count(), "load_1m": None,
    }  # fmt: skip


def format_soak_report(r: dict[str, Any]) -> str:
    m = r["memory"]
    lines = [
        f"soak: {r['streams']} stream(s) x {r['fps']:g} fps x {r['seconds']:g} s on loopback; clip {r['clip_source']}",
    ]
    if r["load_1m"]:
        start, end = r["load_1m"]
        lines.append(f"host: {r['cpu_count']} CPUs, 1-min load average {start:.1f} at the start, {end:.1f} at the end")
    for s in r["per_stream"]:
        lat = "no answer" if s["p50_ms"] is None else f"p50 {s['p50_ms']:.0f} ms, p95 {s['p95_ms']:.0f} ms"
        lines.append(
            f"  stream {s['stream']}: sent {s['sent']}, answered {s['answered']}, dropped {s['dropped']}, "
            f"errors {s['errors']}; {lat}; closed {s['close_code']}"
        )
    t = r["total"]
    lat = "no answer" if r["p50_ms"] is None else f"p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms"
    lines.append(
        f"  all: sent {t['sent']}, answered {t['answered']}, dropped {t['dropped']}, errors {t['errors']}; {lat}"
    )
    lines.append(
        f"memory (server RSS): idle {m['idle_mb']:.0f} MiB, peak {m['peak_mb']:.0f} MiB, "
        f"{m['after_close_mb']:.0f} MiB 2 s after the streams closed"
    )
    if m["growth"] is None:
        lines.append(f"memory growth: no verdict (fewer than 3 samples after the {m['warmup_s']:.0f} s warm-up)")
    else:
        verdict = "flat" if r["memory_flat"] else f"GROWS (limit {100 * r['growth_limit']:g}%)"
        lines.append(
            f"memory growth after the {m['warmup_s']:.0f} s warm-up: first third {m['first_third_mb']:.1f} MiB, "
            f"last third {m['last_third_mb']:.1f} MiB (medians): {100 * m['growth']:+.1f}%, {verdict}"
        )
    if not r["accounted"]:
        lines.append("FAIL: a stream's answered + dropped + errors != sent")
    if not r["closed_normally"]:
        lines.append("FAIL: a stream did not close with 1000")
    lines.append("ok" if r["ok"] else "FAILED")
    return "\n".join(lines)
