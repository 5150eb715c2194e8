from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hotpose.service.cli import main
from hotpose.service.pipeline import PersonPose
from hotpose.service.render import Renderer


def person(track_id: int, with_3d: bool = True) -> PersonPose:
    rng = np.random.default_rng(track_id)
    kp = np.concatenate([rng.uniform(100, 300, (17, 2)), np.ones((17, 1))], axis=1)
    j3 = rng.uniform(-0.5, 0.5, (17, 3)) if with_3d else None
    return PersonPose(track_id, (100, 100, 300, 300), 0.9, kp, j3)


def test_renderer_draws_2d_on_the_frame_and_3d_beside_it() -> None:
    frame = np.zeros((360, 480, 3), np.uint8)
    render = Renderer(360)
    empty = render(frame, [])
    out = render(frame, [person(1), person(2, with_3d=False)])
    assert out.shape == (360, 480 + 360, 3)
    changed = np.abs(out.astype(int) - empty.astype(int)).sum(-1) > 0
    assert changed[100:301, 100:301].sum() > 300  # the 2D skeletons, inside their box
    assert changed[:, :100].sum() == 0 and changed[:, 301:480].sum() < 50  # and nowhere else on the frame
    assert changed[:, 480:].sum() > 300  # the 3D panel shows the lifted person
    only_2d = render(frame, [person(2, with_3d=False)])
    assert np.array_equal(only_2d[:, 480:], empty[:, 480:])  # nobody lifted: the panel stays empty


@pytest.mark.slow
def test_run_renders_the_clip(astronaut_clip: Path, tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "render.mp4"
    rc = main(["run", str(astronaut_clip), "-o", str(tmp_path / "poses.json"), "--lifter", "hot_mixste",
               "--weights", str(tiny_weights), "--device", "cpu", "--render", str(out)])  # fmt: skip
    assert rc == 0
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (512 + 512, 512)
    cap.release()
    poses = json.loads((tmp_path / "poses.json").read_text())  # written frame by frame as they were final
    assert (poses["fps"], poses["width"], poses["height"]) == (10.0, 512, 512) and poses["joint_names"][0] == "pelvis"
    assert poses["skeleton_edges"][0] == [0, 1] and poses["coordinates"]["joints_3d"].startswith("metres")
    assert [f["index"] for f in poses["frames"]] == list(range(30))
    assert sum(len(f["people"]) for f in poses["frames"]) >= 28
    assert list(tmp_path.glob("*.part")) == []


def test_bench_render_runs_with_the_default_2d_stage() -> None:
    from hotpose.service.bench import bench_render

    report = bench_render(rounds=1, frames=4, threads=1)
    assert report["frames"] == 4 and report["lift_fps"] > 0 and report["output_size"].endswith("x720")
