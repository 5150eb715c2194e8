from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hotpose.models import create_lifter
from hotpose.models.bench import BenchInputError, count_flops, time_interleaved


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
    from hotpose.models.bench import bench_lifter, format_lifter_report

    report = bench_lifter(dim=32, frames=27, token_num=9, layer_index=1, batches=(1,), rounds=1, num_heads=4)
    assert report["config"]["num_heads"] == 4
    assert set(report["models"]) == {"mixste", "hot_mixste"}
    assert report["flop_ratio_total"] < 1.0 and report["models"]["hot_mixste"]["latency_ms_b1"] > 0
    assert "latency ratio hot/mixste b1" in format_lifter_report(report)
    with pytest.raises(ValueError, match="num_heads 5"):  # the heads reach the models
        bench_lifter(dim=32, frames=27, token_num=9, layer_index=1, batches=(1,), rounds=1, num_heads=5)


def test_bench_detector_on_an_unreadable_video_says_so(tmp_path: Path) -> None:
    from hotpose.models.bench import bench_detector

    path = tmp_path / "broken.mp4"
    path.write_bytes(b"not a video")
    with pytest.raises(BenchInputError, match="broken.mp4"):
        bench_detector(video=path, frames=2, rounds=1)


@pytest.mark.slow
def test_bench_detector_runs_on_a_video_file(tmp_path: Path) -> None:
    """`hotpose bench detector --video`: the frames come from the file (decoded with OpenCV, RGB)."""
    import cv2
    from skimage import data

    from hotpose.models.bench import bench_detector

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30, (512, 512))
    for _ in range(3):
        writer.write(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    writer.release()
    report = bench_detector(video=path, frames=2, rounds=1, stages=(("nanodet", "blazepose_full"),))
    assert report["frames"] == 2 and report["frame_size"] == [512, 512]
    assert [s["clip"] for s in report["stages"]] == ["video"]
    assert report["models"]["nanodet"]["b1_ms"] > 0


def test_bench_lifters_reports_every_name_asked_for_and_the_pruned_host_ratios() -> None:
    from hotpose.models.bench import bench_lifters, format_lifters_report

    report = bench_lifters(("mlp", "motionbert", "hot_motionbert"), batches=(1,), rounds=1)
    assert list(report["models"]) == ["mlp", "motionbert", "hot_motionbert"]
    mb, hot = report["models"]["motionbert"], report["models"]["hot_motionbert"]
    assert mb["channels"] == 3 and mb["kind"] == "seq2seq"
    assert mb["gflops_per_output_frame"] == pytest.approx(mb["gflops_total"] / 243)
    ratio = report["ratios"]["hot_motionbert/motionbert"]
    assert ratio["flops_per_window"] == pytest.approx(hot["gflops_total"] / mb["gflops_total"])
    assert ratio["flops_per_window"] < 0.75 and ratio["latency_b1"] > 0
    assert "| hot_motionbert/motionbert |" in format_lifters_report(report)
    with pytest.raises(KeyError, match="nope"):
        bench_lifters(("nope",))
