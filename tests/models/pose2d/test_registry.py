"""`create_pose2d`: every name builds, checkpoints load strictly in both wrappers, and a wrong one fails naming the
key (each model file's own tests check its forward, parameter count and official key list)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from hotpose.models import save_checkpoint
from hotpose.models.checkpoint import CheckpointError
from hotpose.models.pose2d import FAMILIES, create_pose2d, family_of, names, spec, weights_source

SEED_NAMES = {
    "transpose_r_a3", "transpose_r_a4", "transpose_h_s", "transpose_h_a4", "transpose_h_a6",
    "tokenpose_t", "tokenpose_s_v1", "tokenpose_s_v2", "tokenpose_b", "tokenpose_l_d24",
    "uniformer_s_256x192", "uniformer_b_256x192",
}  # fmt: skip
SMALL = "transpose_r_a3"  # the fastest to build and run


def test_every_seed_name_is_registered_with_its_family() -> None:
    assert set(names()) >= SEED_NAMES
    for name in names():
        assert spec(name).family == family_of(name) in FAMILIES


@pytest.mark.parametrize("name", names())
def test_every_name_builds_in_eval_mode_with_the_size_it_names(name: str) -> None:
    model = create_pose2d(name, device="cpu")
    assert not model.training and next(model.parameters()).device.type == "cpu"
    config = getattr(model, "config")  # noqa: B009
    assert config.heatmap_size == (config.image_size[0] // 4, config.image_size[1] // 4)
    assert config.image_size == ((384, 288) if name.endswith("384x288") else (256, 192))
    assert "https://" in weights_source(name)


@pytest.mark.parametrize("name", ["transpose_r_a3", "tokenpose_s_v1", "uniformer_s_256x192"])
def test_one_model_of_each_family_maps_a_crop_to_heatmaps(name: str) -> None:
    torch.manual_seed(0)
    with torch.inference_mode():
        y = create_pose2d(name, device="cpu")(torch.randn(2, 3, 256, 192))
    assert y.shape == (2, 17, 64, 48) and torch.isfinite(y).all()


def test_unknown_names_and_config_fields_are_refused() -> None:
    with pytest.raises(KeyError, match="transpose_h_a6"):
        create_pose2d("transpose_h_a7")
    with pytest.raises(TypeError, match="unknown config fields"):
        create_pose2d(SMALL, no_such_field=1)


def _reference() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    model = create_pose2d(SMALL, device="cpu")
    for p in model.parameters():  # weights unlike a fresh model's, so that a load that did nothing shows
        p.data.add_(0.01 * torch.randn_like(p))
    x = torch.randn(1, 3, 256, 192)
    with torch.inference_mode():
        return model, x, model(x)


@pytest.mark.parametrize("wrapper", ["plain", "mmcv"])
def test_a_saved_checkpoint_loads_strictly_and_gives_the_same_heatmaps(tmp_path: Path, wrapper: str) -> None:
    model, x, y = _reference()
    sd = model.state_dict()
    path = tmp_path / "weights.pth"
    if wrapper == "plain":
        torch.save(sd, path)
    else:  # mmcv's training checkpoint, saved from DataParallel
        torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "meta": {"epoch": 210}}, path)
    loaded = create_pose2d(SMALL, weights=path, device="cpu")
    with torch.inference_mode():
        assert torch.equal(loaded(x), y)
    assert list(loaded.state_dict()) == list(sd)


def _broken(tmp_path: Path, change: str) -> tuple[Path, str]:
    sd = create_pose2d(SMALL, device="cpu").state_dict()
    key = [k for k, v in sd.items() if v.dim() == 2][-1]  # a weight matrix of the head end
    if change == "renamed":
        sd[key.replace("weight", "kernel")] = sd.pop(key)
    elif change == "missing":
        del sd[key]
    else:
        sd[key] = torch.zeros(sd[key].shape[0] + 1, *sd[key].shape[1:])
    path = tmp_path / f"{change}.pth"
    torch.save(sd, path)
    return path, key


@pytest.mark.parametrize("change", ["renamed", "missing", "misshaped"])
def test_a_wrong_checkpoint_fails_naming_the_key_and_the_source(tmp_path: Path, change: str) -> None:
    path, key = _broken(tmp_path, change)
    with pytest.raises(CheckpointError) as info:
        create_pose2d(SMALL, weights=path)
    text = str(info.value)
    assert key in text and str(path) in text and "github.com/yangsenius/TransPose" in text
    heading = {"renamed": "unexpected keys", "missing": "missing keys", "misshaped": "shape mismatches"}[change]
    assert heading in text
    if change == "renamed":
        assert key.replace("weight", "kernel") in text and "missing keys" in text


def test_a_lifter_checkpoint_is_not_taken_for_pose_weights(tmp_path: Path) -> None:
    path = tmp_path / "lifter.pt"
    save_checkpoint(path, "hot_mixste", {"dim": 8}, {"w": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="lifter checkpoint"):
        create_pose2d(SMALL, weights=path)
