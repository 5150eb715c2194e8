"""`hotpose bench soak`: the machinery (a real server process, live clients, memory samples) and its verdict.
The soak's figures come from the command (docs/benchmarks.md); nothing here is timed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from hotpose.service import soak as soak_module
from hotpose.service.bench import make_clip
from hotpose.service.cli import main
from hotpose.service.soak import SoakError, check_bounds, format_soak_report, memory_growth, rss_mb, soak


@pytest.mark.slow
def test_a_short_soak_reports_every_field_and_accounts_for_every_frame(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=10, size=(320, 240))
    seconds: list[int] = []
    r = soak(1, 4.0, 3.0, warmup_s=0.0, clip=clip, on_second=lambda: seconds.append(1))
    assert r["streams"] == 1 and r["fps"] == 4.0 and len(r["per_stream"]) == 1
    s = r["per_stream"][0]
    assert s["sent"] == 12 and s["close_code"] == 1000
    assert s["answered"] + s["dropped"] + s["errors"] == s["sent"]
    assert r["total"]["sent"] == 12 and r["accounted"] and r["closed_normally"]
    assert s["answered"] > 0 and s["p50_ms"] is not None and s["p95_ms"] >= s["p50_ms"]
    m = r["memory"]
    assert m["samples"] and len(seconds) == len(m["samples"]) and m["idle_mb"] > 0 and m["after_close_mb"] > 0
    assert m["peak_mb"] >= max(mb for _, mb in m["samples"])
    assert r["active_streams_after"] == 0  # the server let go of the closed stream
    assert r["ok"] == r["memory_flat"]
    json.dumps(r)  # --json prints it as it is
    assert "stream 0: sent 12" in format_soak_report(r)


def test_memory_growth_compares_the_first_and_last_third_after_warm_up() -> None:
    samples = [(float(t), 100.0 if t < 5 else 200.0 + (t >= 11) * 20.0) for t in range(14)]
    g = memory_growth(samples, warmup_s=5.0)  # 9 samples after warm-up: thirds of 3
    assert g["samples_after_warmup"] == 9 and g["first_third_mb"] == 200.0 and g["last_third_mb"] == 220.0
    assert g["growth"] == pytest.approx(0.10)
    assert memory_growth(samples[:6], warmup_s=5.0)["growth"] is None  # one sample after warm-up: no verdict


def _report(growth: float | None, accounted: bool = True) -> dict[str, Any]:
    """A one-stream report whose memory grows by `growth` (None: too few samples) after a zero warm-up."""
    result = {"sent": 10, "answered": 8, "dropped": 2 if accounted else 1, "errors": 0, "close_code": 1000,
              "seconds": 1.0, "latency_ms": [100.0, 200.0]}  # fmt: skip
    samples = [] if growth is None else [(0.0, 100.0), (1.0, 100.0), (2.0, 100.0 * (1 + growth))]
    return soak_module._report(1, 10.0, 1.0, "test", [result], samples, 90.0, 95.0, 0.0, 0.0)


def test_the_report_says_when_memory_grows_or_frames_go_missing() -> None:
    assert "flat" in format_soak_report(_report(0.01)) and format_soak_report(_report(0.01)).endswith("ok")
    grows = format_soak_report(_report(0.07))
    assert "+7.0%, GROWS (limit 5%)" in grows and grows.endswith("FAILED")
    assert "no verdict" in format_soak_report(_report(None))
    assert "answered + dropped + errors != sent" in format_soak_report(_report(0.0, accounted=False))


@pytest.mark.parametrize("ok, code", [(True, 0), (False, 1)])
def test_bench_soak_exits_1_when_the_soak_fails(
    ok: bool, code: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[Any, ...]] = []

    def fake(*args: Any, **kw: Any) -> dict[str, Any]:
        seen.append(args)
        return _report(0.0 if ok else 0.2)

    monkeypatch.setattr(soak_module, "soak", fake)
    assert main(["bench", "soak", "--streams", "2", "--fps", "5", "--seconds", "30", "--json", "--quiet"]) == code
    assert seen == [(2, 5.0, 30.0)] and json.loads(capsys.readouterr().out)["ok"] is ok


@pytest.mark.parametrize("streams, fps, seconds", [(0, 10.0, 10.0), (65, 10.0, 10.0), (1, 0.0, 10.0),
                                                   (1, 61.0, 10.0), (1, 10.0, 3601.0), (1, 1.0, 0.5)])  # fmt: skip
def test_a_soak_is_bounded(streams: int, fps: float, seconds: float) -> None:
    with pytest.raises(SoakError, match="must"):
        check_bounds(streams, fps, seconds)


def test_rss_is_read_from_proc() -> None:
    if not Path("/proc/self/status").exists():
        pytest.skip("no /proc (not Linux)")
    assert 1 < rss_mb(os.getpid()) < 1 << 20
