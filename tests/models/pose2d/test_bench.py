"""`hotpose bench pose2d` reports what it measured (latency itself is never asserted)."""

from __future__ import annotations

import pytest
import torch

from hotpose.models.pose2d.bench import bench_pose2d, count_macs, format_pose2d_report
from hotpose.service.cli import build_parser


def test_the_report_has_params_macs_and_latency_per_crop_for_the_chosen_names() -> None:
    report = bench_pose2d(["transpose_r_a3"], rounds=1, batches=(1, 2), blazepose=False)
    m = report["models"]["transpose_r_a3"]
    assert list(report["models"]) == ["transpose_r_a3"] and m["input"] == [256, 192]
    assert m["params_m"] == pytest.approx(5.20, abs=0.005)
    assert m["gmacs"] > 4 and m["ms_per_crop_b1"] > 0 and m["ms_per_crop_b2"] > 0
    table = format_pose2d_report(report)
    assert "| transpose_r_a3 | 256x192 | 5.20 |" in table and "batch 2" in table
    with pytest.raises(KeyError, match="transpose_h_a7"):
        bench_pose2d(["transpose_h_a7"], rounds=1)


def test_attention_counts_in_the_multiply_adds() -> None:
    class Attend(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.scaled_dot_product_attention(x, x, x)

    assert count_macs(Attend(), torch.randn(1, 2, 10, 4)) == 2 * 2 * 10 * 10 * 4  # QK^T and AV


def test_the_command_takes_names_batches_and_rounds() -> None:
    args = build_parser().parse_args(
        ["bench", "pose2d", "--names", "tokenpose_t", "uniformer_s_256x192", "--rounds", "1"]
    )
    assert args.names == ["tokenpose_t", "uniformer_s_256x192"] and args.batch == [1, 8] and args.rounds == 1
