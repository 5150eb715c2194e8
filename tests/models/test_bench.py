from __future__ import annotations

import pytest
import torch

from hotpose.models import create_lifter
from hotpose.models.bench import count_flops, time_interleaved


def test_flops_match_the_paper_convention() -> None:
    # MixSTE-512, 243 frames: 8 layers x (spatial + temporal) x 8*C^2 MACs per token, x2.
    mix = create_lifter("mixste", device="cpu")
    f = count_flops(mix, torch.zeros(1, 243, 17, 2))
    assert f["gflops_linear"] == pytest.approx(277.2, abs=0.1)
    assert f["gflops_total"] == pytest.approx(294.8, abs=0.1)
    hot = create_lifter("hot_mixste", device="cpu")
    h = count_flops(hot, torch.zeros(1, 243, 17, 2))
    # 3 full layers, 5 on 81 frames, recovery with the shared queries projected once
    assert h["gflops_linear"] < 0.6 * f["gflops_linear"]


def test_time_interleaved_calls_round_robin() -> None:
    calls: list[str] = []
    times = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert len(times["a"]) == 3 and all(t >= 0 for t in times["b"])


def test_bench_lifter_builds_both_models_with_the_heads_asked_for() -> None:
    from hotpose.models.bench import bench_lifter

    report = bench_lifter(dim=32, frames=27, token_num=9, layer_index=1, batches=(1,), rounds=1, num_heads=4)
    assert report["config"]["num_heads"] == 4
    assert set(report["models"]) == {"mixste", "hot_mixste"}
    assert report["flop_ratio_total"] < 1.0 and report["models"]["hot_mixste"]["latency_ms_b1"] > 0
    with pytest.raises(ValueError, match="num_heads 5"):  # the heads reach the models
        bench_lifter(dim=32, frames=27, token_num=9, layer_index=1, batches=(1,), rounds=1, num_heads=5)
