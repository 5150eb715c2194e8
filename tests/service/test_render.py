from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from hotpose.service.cli import main
from hotpose.service.pipeline import PersonPose
from hotpose.service.render import Renderer, _colour

# A person standing, facing the camera: H36M-17, metres, camera axes (y down), pelvis at the origin.
STANDING = np.array([
    [0, 0, 0], [-0.13, 0, 0], [-0.14, 0.45, 0.02], [-0.14, 0.88, 0], [0.13, 0, 0], [0.14, 0.45, 0.02],
    [0.14, 0.88, 0], [0, -0.25, 0], [0, -0.5, 0], [0, -0.6, -0.05], [0, -0.72, 0], [0.18, -0.48, 0],
    [0.22, -0.22, 0], [0.24, 0.02, -0.05], [-0.18, -0.48, 0], [-0.22, -0.22, 0], [-0.24, 0.02, -0.05],
])  # fmt: skip
NEAR, FAR = 2, 10  # track ids with distinct colours: red and blue


def person(track_id: int, with_3d: bool = True) -> PersonPose:
    rng = np.random.default_rng(track_id)
    kp = np.concatenate([rng.uniform(100, 300, (17, 2)), np.ones((17, 1))], axis=1)
    j3 = rng.uniform(-0.5, 0.5, (17, 3)) if with_3d else None
    return PersonPose(track_id, (100, 100, 300, 300), 0.9, kp, j3)


def standing(track_id: int, root: list[float] | None) -> PersonPose:
    p = person(track_id)
    p.joints_3d = STANDING.copy()
    p.root_3d = None if root is None else np.array(root)  # set as an attribute: PersonPose may not declare it
    return p


def colour_mask(panel: np.ndarray, track_id: int) -> np.ndarray:
    """The panel's pixels in a track's colour (its skeleton and id)."""
    mask: np.ndarray = np.abs(panel.astype(int) - np.array(_colour(track_id))).max(-1) < 40
    return mask


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


def test_placed_panel_draws_the_nearer_person_lower_and_larger() -> None:
    frame = np.zeros((360, 480, 3), np.uint8)
    render = Renderer(360)
    empty = render(frame, [])[:, 480:]
    panel = render(frame, [standing(NEAR, [-0.5, 0, 3]), standing(FAR, [0.6, 0, 6])])[:, 480:]
    assert panel.shape == (360, 360, 3)
    near, far = render.drawn[NEAR], render.drawn[FAR]  # [17, 2] panel pixels
    # seen from above and behind the camera: the nearer pelvis is lower in the panel, and left of the
    # other as in the video; perspective draws the nearer person taller
    assert near[0, 1] > far[0, 1] + 20 and near[0, 0] < far[0, 0]
    height = {tid: float(d[:, 1].max() - d[:, 1].min()) for tid, d in render.drawn.items()}
    assert height[NEAR] > 1.1 * height[FAR]
    # and that is what is on the panel, each in their track colour
    for tid in (NEAR, FAR):
        rows, cols = np.nonzero(colour_mask(panel, tid))
        assert len(rows) > 50
        assert rows.max() == pytest.approx(render.drawn[tid][:, 1].max(), abs=6)  # their lowest joint
    near_rows, far_rows = np.nonzero(colour_mask(panel, NEAR))[0], np.nonzero(colour_mask(panel, FAR))[0]
    assert near_rows.max() - near_rows.min() > far_rows.max() - far_rows.min()
    assert np.median(near_rows) > np.median(far_rows)
    assert not colour_mask(empty, NEAR).any()
    assert render.floor_y == pytest.approx(0.88)  # the grid under the feet (ankles 0.88 m below the pelvis)


def test_the_floor_follows_the_lowest_feet_smoothly() -> None:
    frame = np.zeros((120, 160, 3), np.uint8)
    render = Renderer(120, fps=30.0)
    render(frame, [standing(1, [0, 0, 4])])
    assert render.floor_y == pytest.approx(0.88)
    render(frame, [standing(1, [0, 0, 4]), standing(2, [1, 0.5, 5])])  # someone lower (y down) arrives
    assert 0.88 < render.floor_y < 1.0  # moves towards 1.38 m without jumping
    for _ in range(90):  # 3 s
        render(frame, [standing(1, [0, 0, 4]), standing(2, [1, 0.5, 5])])
    assert render.floor_y == pytest.approx(1.38, abs=0.01)
    render(frame, [])  # nobody: the scene stays where it was
    assert render.floor_y == pytest.approx(1.38, abs=0.01)


def test_root_relative_panel_draws_people_alike_whatever_their_depth() -> None:
    frame = np.zeros((360, 480, 3), np.uint8)
    render = Renderer(360, placed=False)
    people = [standing(NEAR, [-0.5, 0, 3]), standing(FAR, [0.6, 0, 6])]
    panel = render(frame, people)[:, 480:]
    near, far = render.drawn[NEAR], render.drawn[FAR]
    assert np.allclose(near - near[0], far - far[0], atol=1)  # the same size: no perspective, no depth
    assert colour_mask(panel, NEAR).sum() > 100 and colour_mask(panel, FAR).sum() > 100
    swapped = render(frame, [standing(NEAR, [0.6, 0, 6]), standing(FAR, [-0.5, 0, 3])])[:, 480:]
    assert np.array_equal(swapped, panel)  # the roots change nothing: side by side in their order
    assert render.floor_y is None  # no scene was fitted


def test_people_without_a_root_are_drawn_root_relative_beside_the_scene() -> None:
    frame = np.zeros((360, 480, 3), np.uint8)
    render = Renderer(360)
    unsolved = standing(FAR, None)
    nan_root = standing(7, [np.nan, np.nan, np.nan])
    p = person(NEAR)  # a person from before roots: no root_3d attribute at all
    old = SimpleNamespace(track_id=NEAR, bbox=p.bbox, keypoints_2d=p.keypoints_2d, joints_3d=STANDING)
    panel = render(frame, [unsolved, nan_root, old])[:, 480:]
    assert set(render.drawn) == {FAR, 7, NEAR}
    for tid in (FAR, 7, NEAR):  # in the boxes along the bottom edge (a quarter of the panel high)
        assert (render.drawn[tid][:, 1] >= 360 - 90 - 1).all()
    mask = colour_mask(panel, FAR)
    assert mask.sum() > 30 and not mask[: 360 - 90].any()
    assert render.floor_y is None  # nobody placed: no floor fitted from them
    panel = render(frame, [standing(1, [0, 0, 4]), unsolved])[:, 480:]  # placed and unplaced together
    assert render.floor_y == pytest.approx(0.88) and render.drawn[1][0, 1] < 360 - 90


@pytest.mark.slow
@pytest.mark.parametrize("panel", [[], ["--root-relative"]], ids=["placed", "root-relative"])
def test_run_renders_the_clip(astronaut_clip: Path, tiny_weights: Path, tmp_path: Path, panel: list[str]) -> None:
    out = tmp_path / "render.mp4"
    rc = main(["run", str(astronaut_clip), "-o", str(tmp_path / "poses.json"), "--lifter", "hot_mixste",
               "--weights", str(tiny_weights), "--device", "cpu", "--render", str(out), *panel])  # fmt: skip
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


def test_the_floor_counts_the_best_seen_people_only() -> None:
    frame = np.zeros((360, 480, 3), np.uint8)
    seen, glimpsed = standing(NEAR, [0.0, 0.0, 3.0]), standing(FAR, [0.5, 2.0, 5.0])  # the second 2 m lower
    glimpsed.keypoints_2d[:, 2] = 0.1  # a head at the frame's edge: its body is a guess
    render = Renderer(360)
    render(frame, [seen, glimpsed])
    assert render.floor_y == pytest.approx(0.88)  # under the well-seen person's feet
    feet_hidden = standing(NEAR, [0.0, 0.0, 3.0])
    feet_hidden.keypoints_2d[[3, 6], 2] = 0.1  # seated, legs hidden: most of the body still seen
    render = Renderer(360)
    render(frame, [feet_hidden, glimpsed])
    assert render.floor_y == pytest.approx(0.88)
    render = Renderer(360)
    render(frame, [glimpsed])  # nobody seen well: the floor goes under whoever is there
    assert render.floor_y == pytest.approx(2.88)
