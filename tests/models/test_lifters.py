"""Every registered lifter: built by name, declaring its kind, lifted through the one lift function,
saved and loaded strictly (the per-model files test each model's own maths)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hotpose.models import LIFTERS, CheckpointError, create_lifter, save_checkpoint
from hotpose.models.evaluate import lift_windows, predict
from hotpose.models.kind import CentrePredictor, LifterKind

# small sizes of each model (its own test file runs the official size)
SMALL: dict[str, dict[str, Any]] = {
    "hot_mixste": {"dim": 16, "depth": 2, "num_heads": 2, "frames": 27, "token_num": 9, "layer_index": 1},
    "mixste": {"dim": 16, "depth": 2, "num_heads": 2, "frames": 27},
    "mlp": {"hidden": 32, "frames": 27},
    "motionbert": {"dim_feat": 16, "dim_rep": 32, "depth": 2, "num_heads": 2, "frames": 27},
    "hot_motionbert": {"dim_feat": 16, "dim_rep": 32, "depth": 2, "num_heads": 2, "frames": 27, "token_num": 9},
    "tpc_mixste": {"dim": 16, "depth": 2, "num_heads": 2, "frames": 27, "token_num": 7, "layer_index": 1},
    "mhformer": {"dim": 32, "mlp_hidden_dim": 64, "frames": 27},
    "tpc_mhformer": {"dim": 32, "mlp_hidden_dim": 64, "frames": 27, "token_num": 9},
}


def test_every_registered_lifter_has_small_sizes_here() -> None:
    assert set(LIFTERS) <= set(SMALL), f"add small sizes for {sorted(set(LIFTERS) - set(SMALL))}"


@pytest.fixture(params=sorted(LIFTERS))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_each_lifter_declares_its_kind_and_lifts_through_lift_windows(name: str) -> None:
    model = create_lifter(name, device="cpu", **SMALL[name])
    kind = model.KIND
    assert isinstance(kind, LifterKind)
    frames = model.config.frames
    w = np.random.default_rng(0).normal(0, 0.3, (3, frames, 17, 3)).astype(np.float32)
    w[..., 2] = 1.0  # x, y, confidence: a lifter declaring 2 channels reads x, y only
    y = lift_windows(model, w, flip=True)
    assert y.shape == ((3, 17, 3) if kind.seq2frame else (3, frames, 17, 3))
    assert np.isfinite(y).all()
    # evaluation data carries no confidence: a 3-channel lifter reads it as 1
    np.testing.assert_allclose(lift_windows(model, w[..., :2], flip=False), lift_windows(model, w, flip=False))
    if kind.seq2frame:
        assert isinstance(model, CentrePredictor)
    # one pose per frame of a sequence, whatever the kind
    seq = predict(model, w[0, :, :, :2].repeat(2, axis=0)[: frames + 5], batch=4)
    assert seq.shape == (frames + 5, 17, 3)


def test_each_lifter_round_trips_a_hotpose_checkpoint_and_an_official_state_dict(name: str, tmp_path: Path) -> None:
    model = create_lifter(name, device="cpu", **SMALL[name])
    path = tmp_path / "w.pt"
    save_checkpoint(path, name, model.config.to_dict(), model.state_dict())
    again = create_lifter(name, weights=path, device="cpu")
    assert again.config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    # an official-format file (a bare state_dict, possibly from DataParallel) at the official size
    official = create_lifter(name, device="cpu")
    torch.save({f"module.{k}": v for k, v in official.state_dict().items()}, tmp_path / "official.pth")
    create_lifter(name, weights=tmp_path / "official.pth", device="cpu")
    # a renamed key is an error that names it
    sd = official.state_dict()
    first = next(iter(sd))
    sd[first + "_renamed"] = sd.pop(first)
    torch.save(sd, tmp_path / "renamed.pth")
    with pytest.raises(CheckpointError, match=first):
        create_lifter(name, weights=tmp_path / "renamed.pth", device="cpu")


def test_a_checkpoint_of_one_lifter_is_refused_by_another(tmp_path: Path) -> None:
    model = create_lifter("motionbert", device="cpu", **SMALL["motionbert"])
    save_checkpoint(tmp_path / "m.pt", "motionbert", model.config.to_dict(), model.state_dict())
    with pytest.raises(CheckpointError, match="motionbert"):
        create_lifter("hot_motionbert", weights=tmp_path / "m.pt", device="cpu")


@pytest.mark.parametrize("name", ["tpc_mixste", "tpc_mhformer"])
def test_the_service_lifts_a_seq2frame_track_as_the_offline_protocol_does(name: str) -> None:
    """A person seen at 30 fps: the service's streaming lifter (clip policy) gives each frame exactly
    what the offline protocol gives it: the centre of its own window, edge-padded at the track's ends."""
    from functools import partial

    from hotpose.models.keypoints import normalize_image
    from hotpose.service.lifting import LiftPolicy, lift_root_relative, lift_sequence

    model = create_lifter(name, device="cpu", **SMALL[name])
    frames = model.config.frames
    rng = np.random.default_rng(1)
    pixels = 300 + np.cumsum(rng.normal(0, 3, (70, 17, 2)), axis=0)  # [T, 17, 2] a wandering pose
    times = np.arange(70) / 30
    policy = LiftPolicy.clip(frames, max_gap_s=3.0)
    served = lift_sequence(partial(lift_root_relative, model), pixels, times, policy, 640, 480, frames, model.KIND)
    x = normalize_image(pixels, 640, 480).astype(np.float32)
    offline = predict(model, x)
    np.testing.assert_allclose(served, offline, atol=1e-5)


def test_lift_root_relative_gives_the_same_in_bounded_batches() -> None:
    from hotpose.service.lifting import lift_root_relative

    model = create_lifter("tpc_mixste", device="cpu", **SMALL["tpc_mixste"])
    w = np.random.default_rng(2).normal(0, 0.3, (5, 27, 17, 2)).astype(np.float32)
    whole = lift_root_relative(model, w, flip=True)
    np.testing.assert_allclose(lift_root_relative(model, w, flip=True, batch=2), whole, atol=1e-6)
