"""`hotpose bench pose2d`: the seed papers' 2D models beside BlazePose's landmark model.

Per model: parameters, multiply-adds per crop, and the median latency per crop of the network call at
batch 1 and 8 (no cropping, no decoding, no flip test: the flip test doubles it). The models carry
random weights: speed does not depend on them. Timed interleaved (one call of each model per round),
medians from the same run; the machine is shared, so nothing here is asserted.

Multiply-adds are counted by `torch.utils.flop_counter` over the convolutions, matrix products and
attention (the papers' "GFLOPs" are such counts; tools differ in what else they include).
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from hotpose.models.bench import time_interleaved
from hotpose.models.pose2d import create_pose2d, names, registry, spec

log = logging.getLogger(__name__)

BATCHES = (1, 8)
BLAZEPOSE = "blazepose_full"


def _attention_flops(q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """FLOPs of CPU scaled-dot-product attention (QK^T and AV), which the flop counter leaves out."""
    b, h, lq, d = (int(n) for n in q)
    lk, dv = int(k[2]), int(v[3])
    return 2 * b * h * lq * lk * d + 2 * b * h * lq * lk * dv


def count_macs(model: nn.Module, x: Tensor) -> float:
    """Multiply-adds of one forward of `model` on `x`."""
    cpu_sdpa = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    with FlopCounterMode(display=False, custom_mapping={cpu_sdpa: _attention_flops}) as counter, torch.inference_mode():
        model(x)
    return float(counter.get_total_flops()) / 2


def _blazepose(device: str) -> tuple[nn.Module, Tensor] | None:
    """BlazePose's full landmark model (our TFLite executor) and its input, if its weights are cached."""
    from hotpose.models.detector import KEYPOINT_MODELS
    from hotpose.models.detector.blazepose import LMK_SIZE
    from hotpose.models.detector.weights import WeightsError

    try:
        landmarks = KEYPOINT_MODELS[BLAZEPOSE](device, None)
    except WeightsError as exc:
        log.warning("no %s beside the heatmap models: %s", BLAZEPOSE, exc)
        return None
    model: nn.Module = getattr(landmarks, "model")  # noqa: B009
    return model, torch.rand(1, 3, LMK_SIZE, LMK_SIZE, device=device)


def bench_pose2d(
    only: list[str] | None = None,
    rounds: int = 3,
    threads: int | None = None,
    device: str = "cpu",
    batches: tuple[int, ...] = BATCHES,
    blazepose: bool = True,
    on_round: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Params, multiply-adds per crop and median ms per crop at each batch size of the named models
    (default all of `hotpose.models.pose2d.names()`), and of BlazePose's landmark model when cached."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    chosen = only or list(registry())  # the families in FAMILIES order, each in its VARIANTS order
    unknown = sorted(set(chosen) - set(names()))
    if unknown:
        raise KeyError(f"unknown 2D pose models {unknown}; known: {', '.join(names())}")
    inputs: dict[str, tuple[nn.Module, Tensor]] = {}
    for name in chosen:
        model = create_pose2d(name, device=device)
        h, w = spec(name).config.image_size
        inputs[name] = (model, torch.randn(1, 3, h, w, device=device))
    if blazepose:
        found = _blazepose(device)
        if found is not None:
            inputs[BLAZEPOSE] = found
    report: dict[str, Any] = {
        "device": device, "threads": torch.get_num_threads(), "rounds": rounds, "batches": list(batches), "models": {},
    }  # fmt: skip
    for name, (model, x) in inputs.items():
        report["models"][name] = {
            "input": list(x.shape[2:]),
            "params_m": sum(t.numel() for t in model.state_dict().values() if t.is_floating_point()) / 1e6
            if name == BLAZEPOSE
            else sum(p.numel() for p in model.parameters()) / 1e6,
            "gmacs": count_macs(model, x) / 1e9,
        }
    for b in batches:
        fns: dict[str, Callable[[], Any]] = {
            name: partial(model, x.expand(b, -1, -1, -1).contiguous()) for name, (model, x) in inputs.items()
        }
        with torch.inference_mode():
            times = time_interleaved(fns, rounds, on_round=on_round)
        for name, ts in times.items():
            report["models"][name][f"ms_per_crop_b{b}"] = 1000 * statistics.median(ts) / b
    return report


def format_pose2d_report(r: dict[str, Any]) -> str:
    """A Markdown table of a `bench_pose2d` report."""
    batches = r["batches"]
    head = "| model | input | params (M) | GMACs per crop |" + "".join(f" ms per crop, batch {b} |" for b in batches)
    lines = [head, "|" + "---|" * (4 + len(batches))]
    for name, m in r["models"].items():
        cells = [name, "x".join(str(v) for v in m["input"]), f"{m['params_m']:.2f}", f"{m['gmacs']:.2f}"]
        cells += [f"{m[f'ms_per_crop_b{b}']:.0f}" for b in batches]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"device {r['device']}, {r['threads']} threads, median of {r['rounds']} interleaved rounds; the network "
        "call only (the flip test doubles it); BlazePose: its TFLite model run by hotpose's executor"
    )
    return "\n".join(lines)
