"""Benchmarks for the models (`hotpose bench lifter`, `hotpose bench detector`).

Latency is measured, never asserted: the machine is shared and noisy, so
models are timed interleaved (one forward of each per round) and medians and
ratios are reported from the same run.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hotpose.models import create_lifter
from hotpose.models.layers import Attention, CrossAttention, count_parameters

log = logging.getLogger(__name__)


def count_flops(model: nn.Module, x: Tensor) -> dict[str, float]:
    """FLOPs of one forward, counted with hooks.

    `linear`: 2 x the multiply-accumulates of every nn.Linear (the paper's
    convention). `attention`: 2 x the MACs of the QK^T and AV matmuls.
    """
    macs = {"linear": 0, "attention": 0}

    def on_linear(mod: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> None:
        assert isinstance(mod, nn.Linear)
        macs["linear"] += inp[0].numel() // mod.in_features * mod.in_features * mod.out_features

    def on_attention(mod: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> None:
        q = inp[0]
        k = inp[1] if len(inp) > 1 else q
        n, lk, c = k.shape
        lq = q.shape[1]
        macs["attention"] += 2 * n * lq * lk * c  # QK^T and AV over all heads

    hooks = []
    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            hooks.append(mod.register_forward_hook(on_linear))
        elif isinstance(mod, Attention | CrossAttention):
            hooks.append(mod.register_forward_hook(on_attention))
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    linear = 2.0 * macs["linear"]
    return {"gflops_linear": linear / 1e9, "gflops_total": (linear + 2.0 * macs["attention"]) / 1e9}


def time_interleaved(fns: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call for each function, measured round-robin."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return times


def bench_lifter(
    dim: int = 512,
    frames: int = 243,
    token_num: int = 81,
    layer_index: int = 3,
    batches: tuple[int, ...] = (1, 4),
    rounds: int = 7,
    threads: int | None = None,
    num_heads: int = 8,
) -> dict[str, Any]:
    """Params, FLOPs per window and interleaved median latency of mixste vs hot_mixste."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    models: dict[str, nn.Module] = {
        "mixste": create_lifter("mixste", device="cpu", dim=dim, frames=frames, num_heads=num_heads),
        "hot_mixste": create_lifter(
            "hot_mixste",
            device="cpu",
            dim=dim,
            frames=frames,
            num_heads=num_heads,
            token_num=token_num,
            layer_index=layer_index,
        ),
    }

    x1 = torch.randn(1, frames, 17, 2)
    report: dict[str, Any] = {
        "config": {
            "dim": dim,
            "num_heads": num_heads,
            "frames": frames,
            "token_num": token_num,
            "layer_index": layer_index,
        },
        "threads": torch.get_num_threads(),
        "rounds": rounds,
        "models": {},
    }
    for name, m in models.items():
        report["models"][name] = {"params_m": count_parameters(m) / 1e6, **count_flops(m, x1)}

    for b in batches:
        x = torch.randn(b, frames, 17, 2)
        with torch.inference_mode():
            fns: dict[str, Callable[[], Any]] = {name: partial(m, x) for name, m in models.items()}
            times = time_interleaved(fns, rounds)
        for name, ts in times.items():
            report["models"][name][f"latency_ms_b{b}"] = 1000 * statistics.median(ts)
        per_round = [h / m for h, m in zip(times["hot_mixste"], times["mixste"], strict=True)]
        report[f"ratio_b{b}"] = statistics.median(times["hot_mixste"]) / statistics.median(times["mixste"])
        report[f"ratio_per_round_median_b{b}"] = statistics.median(per_round)
    m, h = report["models"]["mixste"], report["models"]["hot_mixste"]
    report["flop_ratio_linear"] = h["gflops_linear"] / m["gflops_linear"]
    report["flop_ratio_total"] = h["gflops_total"] / m["gflops_total"]
    return report


def format_lifter_report(report: dict[str, Any]) -> str:
    """A Markdown table of a `bench_lifter` report."""
    batches = sorted(int(k.split("_b")[1]) for k in report if k.startswith("ratio_b"))
    head = "| model | params (M) | GFLOPs Linear x2 | GFLOPs total |" + "".join(f" median ms b{b} |" for b in batches)
    lines = [head, "|" + "---|" * (4 + len(batches))]
    for name, r in report["models"].items():
        cells = [name, f"{r['params_m']:.2f}", f"{r['gflops_linear']:.1f}", f"{r['gflops_total']:.1f}"]
        cells += [f"{r[f'latency_ms_b{b}']:.0f}" for b in batches]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"FLOP ratio hot/mixste: {report['flop_ratio_linear']:.3f} (Linear), {report['flop_ratio_total']:.3f} (total)"
    )
    for b in batches:
        lines.append(
            f"latency ratio hot/mixste b{b}: {report[f'ratio_b{b}']:.3f} "
            f"(median of per-round ratios {report[f'ratio_per_round_median_b{b}']:.3f})"
        )
    lines.append(f"threads: {report['threads']}, rounds: {report['rounds']}")
    return "\n".join(lines)


class BenchInputError(RuntimeError):
    """A benchmark has nothing to run on: the video given has no readable frame, or no video is given
    and the sample photo is not installed."""


def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo (RGB, 512x512; NASA, public domain): the person the
    benchmarks run on when no video is given."""
    try:
        from skimage import data
    except ImportError as e:
        raise BenchInputError(
            "without --video the benchmark runs on scikit-image's astronaut photo: "
            "pip install 'hotpose[bench]' (or scikit-image), or pass --video"
        ) from e
    img: np.ndarray = data.astronaut()  # type: ignore[no-untyped-call]  # scikit-image leaves it unannotated
    return img


def _pan_frames(n: int) -> list[np.ndarray]:
    """A synthetic clip: a 720p window panning over the astronaut photo."""
    import cv2

    img = cv2.resize(astronaut(), (720, 720))
    canvas = np.pad(img, ((0, 0), (600, 600), (0, 0)), mode="edge")
    return [np.ascontiguousarray(canvas[:, k : k + 1280]) for k in np.linspace(0, 600, n).astype(int)]


def _three_people_frames(n: int) -> list[np.ndarray]:
    """A synthetic 720p clip with three people: three copies of the astronaut (the middle one
    mirrored), 400 px tall, the outer two drifting apart and back (18 px at most)."""
    import cv2

    img = cv2.resize(astronaut(), (400, 400))
    copies = [img, np.ascontiguousarray(img[:, ::-1]), img]
    out = []
    for i in range(n):
        canvas = np.full((720, 1280, 3), 128, np.uint8)
        for k, person in enumerate(copies):
            phase = i % 80
            x = 20 + 420 * k + int(round((k - 1) * 0.45 * min(phase, 80 - phase) / 2))
            canvas[200:600, x : x + 400] = person
        out.append(canvas)
    return out


STAGES: tuple[tuple[str, str], ...] = (
    ("nanodet", "blazepose_full"),
    ("blazepose_face", "blazepose_full"),
    ("nanodet", "blazepose_heavy"),
)


def bench_detector(
    video: Path | None = None,
    frames: int = 60,
    rounds: int = 20,
    threads: int | None = None,
    device: str = "cpu",
    stages: tuple[tuple[str, str], ...] = STAGES,
) -> dict[str, Any]:
    """The 2D stage's latency: each person detector (per image) and keypoint model (per crop) alone
    at batch 1 and 4, and whole stages per frame in tracking mode on 720p clips with one and three
    people (or on `video`); the TFLite interpreter on BlazePose's models as a reference, when installed."""
    from hotpose.models.detector import KEYPOINT_MODELS, PERSON_DETECTORS, create_detector
    from hotpose.models.detector.blazepose import DET_SIZE, LMK_SIZE

    if threads:
        torch.set_num_threads(threads)
    if video is not None:
        from hotpose.models.detector.footage import read_clip

        try:
            clips = {"video": [f for _, f in read_clip(video, stop=frames)]}
        except FileNotFoundError as exc:
            raise BenchInputError(str(exc)) from exc
        if not clips["video"]:
            raise BenchInputError(f"{video}: no frame could be decoded")
    else:
        clips = {"1 person": _pan_frames(frames), "3 people": _three_people_frames(frames)}
    first = next(iter(clips.values()))
    report: dict[str, Any] = {
        "threads": torch.get_num_threads(), "frames": len(first), "device": device,
        "frame_size": list(first[0].shape[:2]), "models": {}, "stages": [],
    }  # fmt: skip

    # models alone: the network call on a batch of 1 and 4 inputs (preprocessing not included)
    fns: dict[str, Callable[[], Any]] = {}
    dets = {name: make(device, None) for name, make in PERSON_DETECTORS.items()}
    kps = {name: make(device, None) for name, make in KEYPOINT_MODELS.items()}
    for name, det in dets.items():
        model = getattr(det, "model")  # noqa: B009
        size = DET_SIZE if name == "blazepose_face" else 416
        for b in (1, 4):
            fns[f"{name} b{b}"] = partial(model, torch.rand(b, 3, size, size, device=device))
    for name, kp in kps.items():
        model = getattr(kp, "model")  # noqa: B009
        for b in (1, 4):
            fns[f"{name} b{b}"] = partial(model, torch.rand(b, 3, LMK_SIZE, LMK_SIZE, device=device))
    try:
        from ai_edge_litert.interpreter import Interpreter

        for key, module, size, lo in (
            ("litert blazepose_face b1", getattr(dets["blazepose_face"], "model"), DET_SIZE, -1.0),  # noqa: B009
            ("litert blazepose_full b1", getattr(kps["blazepose_full"], "model"), LMK_SIZE, 0.0),  # noqa: B009
        ):
            interp = Interpreter(model_path=str(module.path), num_threads=1)
            interp.allocate_tensors()
            idx = interp.get_input_details()[0]["index"]
            arr = np.random.default_rng(0).uniform(lo, 1.0, (1, size, size, 3)).astype(np.float32)

            def run_litert(interp: Any = interp, idx: int = idx, arr: Any = arr) -> None:
                interp.set_tensor(idx, arr)
                interp.invoke()

            fns[key] = run_litert
    except ImportError:
        log.info("ai-edge-litert not installed: no interpreter reference")
    with torch.inference_mode():
        times = time_interleaved(fns, rounds, warmup=2)
    for key, ts in times.items():
        name, _, batch = key.rpartition(" ")
        b = int(batch[1:])
        report["models"].setdefault(name, {})[f"b{b}_ms"] = 1000 * statistics.median(ts)
        report["models"][name][f"b{b}_ms_per_input"] = 1000 * statistics.median(ts) / b

    # whole stages, tracking mode, frame by frame (interleaved between stages)
    for clip_name, clip in clips.items():
        runs = {f"{d}+{k}": create_detector(d, k, device=device) for d, k in stages}
        calls = {name: 0 for name in runs}
        for name, stage in runs.items():
            inner = getattr(stage, "person_detector")  # noqa: B009
            original = inner.detect_batch

            def counted(frames_: list[Any], name: str = name, original: Any = original, calls: Any = calls) -> Any:
                calls[name] += len(frames_)
                return original(frames_)

            inner.detect_batch = counted
        per: dict[str, list[float]] = {name: [] for name in runs}
        found: dict[str, list[int]] = {name: [] for name in runs}
        for i, frame in enumerate(clip):
            for name, stage in runs.items():
                t0 = time.perf_counter()
                people = stage.process(frame, i / 30.0)
                per[name].append(time.perf_counter() - t0)
                found[name].append(len(people))
        for name, ts in per.items():
            report["stages"].append({
                "clip": clip_name, "stage": name, "median_ms": 1000 * statistics.median(ts),
                "p90_ms": 1000 * sorted(ts)[int(0.9 * (len(ts) - 1))], "detector_runs": calls[name],
                "people_median": float(np.median(found[name])),
            })  # fmt: skip
    return report


def format_detector_report(r: dict[str, Any]) -> str:
    lines = [
        f"device {r['device']}, {r['threads']} threads, {r['frames']} frames of "
        f"{r['frame_size'][1]}x{r['frame_size'][0]}",
        "| model alone | batch 1 ms | batch 4 ms (per input) |",
        "|---|---|---|",
    ]
    for name, m in r["models"].items():
        b4 = f"{m['b4_ms']:.1f} ({m['b4_ms_per_input']:.1f})" if "b4_ms" in m else "-"
        lines.append(f"| {name} | {m['b1_ms']:.1f} | {b4} |")
    lines += [
        "",
        "| 2D stage, tracking mode | clip | median ms/frame | p90 | detector runs | people (median) |",
        "|---|---|---|---|---|---|",
    ]
    for s in r["stages"]:
        lines.append(
            f"| {s['stage']} | {s['clip']} | {s['median_ms']:.1f} | {s['p90_ms']:.1f} | "
            f"{s['detector_runs']}/{r['frames']} | {s['people_median']:g} |"
        )
    return "\n".join(lines)
