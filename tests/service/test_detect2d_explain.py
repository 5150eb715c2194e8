"""`hotpose detect2d --keypoints NAME --keypoints-weights FILE [--explain JOINT --render out.png]` with the heatmap
models (random weights saved as the authors' format: the plumbing, not accuracy)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from hotpose.models.detector.base import Person
from hotpose.models.pose2d import create_pose2d
from hotpose.service.cli import main
from hotpose.service.render import draw_dependency


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def _checkpoint(tmp_path: Path, name: str) -> Path:
    torch.manual_seed(0)
    path = tmp_path / f"{name}.pth"
    torch.save(create_pose2d(name, device="cpu").state_dict(), path)
    return path


def test_explain_writes_the_image_and_the_keypoints(
    tmp_path: Path, photo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights, out = _checkpoint(tmp_path, "transpose_r_a3"), tmp_path / "wrist.png"
    argv = ["detect2d", str(photo), "--keypoints", "transpose_r_a3", "--keypoints-weights", str(weights)]
    assert main([*argv, "--explain", "l_wrist", "--render", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["index"] == 0
    image = cv2.imread(str(out))
    assert image is not None and image.shape == (512, 512, 3)


def test_explain_refuses_what_it_cannot_draw(tmp_path: Path, photo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = _checkpoint(tmp_path, "tokenpose_t")
    argv = ["detect2d", str(photo), "--keypoints", "tokenpose_t", "--keypoints-weights", str(weights)]
    assert main([*argv, "--explain", "9", "--render", str(tmp_path / "x.png")]) == 1
    assert "needs a TransPose keypoint model" in capsys.readouterr().err
    assert main([*argv, "--explain", "l_wrist"]) == 1
    assert "pass --render out.png" in capsys.readouterr().err
    assert main([*argv, "--explain", "left_hand", "--render", str(tmp_path / "x.png")]) == 1
    assert "unknown joint 'left_hand'" in capsys.readouterr().err


def test_keypoints_weights_belong_to_the_keypoints_setting(
    tmp_path: Path, photo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOTPOSE_KEYPOINTS", "transpose_r_a3")
    monkeypatch.setenv("HOTPOSE_KEYPOINTS_WEIGHTS", str(_checkpoint(tmp_path, "transpose_r_a3")))
    assert main(["detect2d", str(photo)]) == 0  # the setting's model with the setting's weights
    capsys.readouterr()
    assert main(["detect2d", str(photo), "--keypoints", "tokenpose_t"]) == 1  # another model: its own weights
    assert "tokenpose_t needs its authors' weights" in capsys.readouterr().err


def test_dependency_maps_tint_where_the_keypoint_looks_and_ring_the_keypoint() -> None:
    frame = np.full((120, 160, 3), 100, np.uint8)
    kp = np.zeros((17, 3), np.float32)
    person = Person(1, (0.0, 0.0, 1.0, 1.0), 0.9, kp, "coco17")
    attention = np.zeros((120, 160), np.float32)
    attention[10:40, 100:150] = 0.004
    out = draw_dependency(frame, [person], [(np.array([30.0, 80.0]), attention)])
    assert not np.array_equal(out[25, 125], frame[25, 125])  # tinted
    assert np.array_equal(out[100, 140], frame[100, 140])  # no attention, no tint
    assert not np.array_equal(out[80, 30], frame[80, 30])  # the keypoint's ring
