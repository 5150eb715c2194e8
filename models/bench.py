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
from hotpose.models.layers import count_parameters

log = logging.getLogger(__name__)


def count_flops(model: nn.Module, x: Tensor) -> dict[str, float]:
    """FLOPs of one forward, counted by `torch.utils.flop_counter` (2 per multiply-accumulate).

    `gflops_linear`: the matrix products of the Linear layers (addmm / mm; the convention of the
    HoT and MixSTE papers). `gflops_total`: every counted operation: also attention's QK^T and AV
    matmuls (counted with the math attention kernel, whose batched matmuls the counter sees) and
    convolutions. Element-wise operations (norms, activations, softmax) are not counted.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        model(x)
    by_op = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    linear = sum(n for op, n in by_op.items() if op in ("aten.addmm", "aten.mm", "aten.linear"))
    return {"gflops_linear": linear / 1e9, "gflops_total": counter.get_total_flops() / 1e9}


def time_interleaved(
    fns: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1, on_round: Callable[[], None] | None = None
) -> dict[str, list[float]]:
    """Seconds per call for each function, measured round-robin; `on_round()` after each timed round."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
        if on_round is not None:
            on_round()
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
    on_round: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Params, FLOPs per window and interleaved median latency of mixste vs hot_mixste (`on_round()`
    after each timed round: rounds x len(batches) calls)."""
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
            times = time_interleaved(fns, rounds, on_round=on_round)
        for name, ts in times.items():
            report["models"][name][f"latency_ms_b{b}"] = 1000 * statistics.median(ts)
        per_round = [h / m for h, m in zip(times["hot_mixste"], times["mixste"], strict=True)]
        report[f"ratio_b{b}"] = statistics.median(times["hot_mixste"]) / statistics.median(times["mixste"])
        report[f"ratio_per_round_median_b{b}"] = statistics.median(per_round)
    m, h = report["models"]["mixste"], report["models"]["hot_mixste"]
    report["flop_ratio_linear"] = h["gflops_linear"] / m["gflops_linear"]
    report["flop_ratio_total"] = h["gflops_total"] / m["gflops_total"]
    return report


# The HoT paper's comparisons: each pruned model beside its host (`hotpose bench lifter` ratios).
HOST_OF = {"hot_mixste": "mixste", "tpc_mixste": "mixste", "tpc_mhformer": "mhformer", "hot_motionbert": "motionbert"}


def bench_lifters(
    names: tuple[str, ...] | None = None,
    batches: tuple[int, ...] = (1,),
    rounds: int = 5,
    threads: int | None = None,
    on_round: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Every registered lifter (or `names`) at its official size, untrained (latency does not depend
    on the weights): params, GFLOPs per window and per output frame (a seq2frame model pays a whole
    window for each frame), median latency of interleaved rounds (all models in one loop), and the
    pruned / host ratios of `HOST_OF` from the same run."""
    from hotpose.models import LIFTERS

    if threads:
        torch.set_num_threads(threads)
    names = tuple(LIFTERS) if names is None else names
    unknown = [n for n in names if n not in LIFTERS]
    if unknown:
        raise KeyError(f"unknown lifters {unknown}; known: {', '.join(sorted(LIFTERS))}")
    torch.manual_seed(0)
    models = {name: create_lifter(name, device="cpu") for name in names}
    report: dict[str, Any] = {
        "threads": torch.get_num_threads(), "rounds": rounds, "batches": list(batches), "models": {}
    }  # fmt: skip

    def sample(m: Any, b: int) -> Tensor:
        return torch.randn(b, m.config.frames, m.config.joints, m.KIND.channels)  # [B, F, J, C]

    for name, m in models.items():
        frames, kind = m.config.frames, m.KIND
        flops = count_flops(m, sample(m, 1))
        per_frame = flops["gflops_total"] if kind.seq2frame else flops["gflops_total"] / frames
        report["models"][name] = {
            "kind": kind.output, "frames": frames, "channels": kind.channels,
            "params_m": count_parameters(m) / 1e6, **flops, "gflops_per_output_frame": per_frame,
        }  # fmt: skip
    for b in batches:
        with torch.inference_mode():
            fns: dict[str, Callable[[], Any]] = {name: partial(m, sample(m, b)) for name, m in models.items()}
            times = time_interleaved(fns, rounds, on_round=on_round)
        for name, ts in times.items():
            r = report["models"][name]
            r[f"latency_ms_b{b}"] = 1000 * statistics.median(ts)
            outputs = b if r["kind"] == "seq2frame" else b * r["frames"]
            r[f"ms_per_output_frame_b{b}"] = r[f"latency_ms_b{b}"] / outputs
        for pruned, host in HOST_OF.items():
            if pruned in times and host in times:
                ratios = [p / h for p, h in zip(times[pruned], times[host], strict=True)]
                report.setdefault("ratios", {}).setdefault(f"{pruned}/{host}", {})[f"latency_b{b}"] = statistics.median(
                    ratios
                )
    for pruned, host in HOST_OF.items():
        if pruned in models and host in models:
            p, h = report["models"][pruned], report["models"][host]
            entry = report.setdefault("ratios", {}).setdefault(f"{pruned}/{host}", {})
            entry["flops_per_window"] = p["gflops_total"] / h["gflops_total"]
    return report


def format_lifters_report(report: dict[str, Any]) -> str:
    """Markdown tables of a `bench_lifters` report."""
    batches = report["batches"]
    head = "| lifter | kind | frames | params (M) | GFLOPs / window | GFLOPs / output frame |"
    head += "".join(f" median ms / window b{b} |" for b in batches)
    head += "".join(f" ms / output frame b{b} |" for b in batches)
    lines = [head, "|" + "---|" * (6 + 2 * len(batches))]
    for name, r in report["models"].items():
        cells = [name, r["kind"], str(r["frames"]), f"{r['params_m']:.2f}", f"{r['gflops_total']:.1f}"]
        cells.append(f"{r['gflops_per_output_frame']:.2f}")
        cells += [f"{r[f'latency_ms_b{b}']:.0f}" for b in batches]
        cells += [f"{r[f'ms_per_output_frame_b{b}']:.2f}" for b in batches]
        lines.append("| " + " | ".join(cells) + " |")
    if report.get("ratios"):
        lines += ["", "| pruned / host | FLOPs per window |" + "".join(f" latency b{b} |" for b in batches)]
        lines.append("|" + "---|" * (2 + len(batches)))
        for pair, r in report["ratios"].items():
            lat = "".join(f" {r[f'latency_b{b}']:.3f} |" for b in batches)
            lines.append(f"| {pair} | {r['flops_per_window']:.3f} |{lat}")
    lines.append("")
    lines.append(f"threads: {report['threads']}, rounds: {report['rounds']} (latency ratios: per-round medians)")
    return "\n".join(lines)


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
    on_round: Callable[[], None] | None = None,
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
        times = time_interleaved(fns, rounds, warmup=2, on_round=on_round)
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
            if on_round is not None:  # one frame of every stage: a round too (rounds + frames x clips in all)
                on_round()
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
