from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hotpose.models import CheckpointError, create_lifter, save_checkpoint
from hotpose.models.token_pruning import dpc_knn_select, token_pruning_cluster

# Small configs keep the suite fast; one test runs the paper-size model.
SMALL = {"dim": 32, "depth": 4, "num_heads": 4, "frames": 27, "token_num": 9, "layer_index": 2}

# this file tests models/hot.py (and the mlp baseline); every registered lifter: test_lifters.py
MIXSTE_FAMILY = ["hot_mixste", "mixste", "mlp"]


def small(name: str, **kw: object) -> torch.nn.Module:
    if name == "mlp":
        return create_lifter("mlp", device="cpu", hidden=64, frames=27, **kw)
    cfg = dict(SMALL)
    if name == "mixste":
        cfg.pop("token_num")
        cfg.pop("layer_index")
    cfg.update(kw)
    return create_lifter(name, device="cpu", **cfg)


def randomize(model: torch.nn.Module) -> None:
    # The official init leaves embeddings and recovery queries at zero; give them values
    # so that every parameter influences the output in the tests below.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)


@pytest.mark.parametrize("name", MIXSTE_FAMILY)
def test_forward_shape_no_nan(name: str) -> None:
    model = small(name)
    x = torch.randn(2, 27, 17, 2)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 27, 17, 3)
    assert torch.isfinite(y).all()
    assert not model.training


@pytest.mark.parametrize("name", ["hot_mixste", "mixste"])
def test_paper_size_forward(name: str) -> None:
    model = create_lifter(name, device="cpu")
    assert model.config.dim == 512 and model.config.mlp_hidden_dim == 1024 and model.config.frames == 243
    with torch.inference_mode():
        y = model(torch.randn(1, 243, 17, 2))
    assert y.shape == (1, 243, 17, 3) and torch.isfinite(y).all()


@pytest.mark.parametrize("name", MIXSTE_FAMILY)
def test_input_shape_checked(name: str) -> None:
    model = small(name)
    with pytest.raises(ValueError, match=r"expected input \[B, 27, 17, 2\]"):
        model(torch.randn(1, 26, 17, 2))


def test_unknown_name_and_field() -> None:
    with pytest.raises(KeyError, match="known"):
        create_lifter("videopose")
    with pytest.raises(TypeError, match="unknown config fields"):
        create_lifter("hot_mixste", channels=3)


@pytest.mark.parametrize("name", MIXSTE_FAMILY)
def test_checkpoint_round_trip_is_strict_and_exact(name: str, tmp_path: Path) -> None:
    model = small(name)
    randomize(model)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, name, model.config.to_dict(), model.state_dict(), meta={"note": "test"})
    loaded = create_lifter(name, weights=path, device="cpu")  # config comes from the file
    assert loaded.config == model.config
    x = torch.randn(1, 27, 17, 2)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_official_state_dict_loads_with_module_prefix(tmp_path: Path) -> None:
    model = small("hot_mixste")
    randomize(model)
    path = tmp_path / "official.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    loaded = create_lifter("hot_mixste", weights=path, device="cpu", num_heads=4, depth=4, layer_index=2)
    assert loaded.config.dim == 32 and loaded.config.token_num == 9 and loaded.config.frames == 27
    x = torch.randn(1, 27, 17, 2)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_renamed_key_fails_loudly(tmp_path: Path) -> None:
    sd = small("hot_mixste").state_dict()
    sd["cross_attention.query.weight"] = sd.pop("cross_attention.linear_q.weight")
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as err:
        create_lifter("hot_mixste", weights=path, device="cpu", num_heads=4, depth=4, layer_index=2)
    msg = str(err.value)
    assert "missing keys (1): cross_attention.linear_q.weight" in msg
    assert "unexpected keys (1): cross_attention.query.weight" in msg


def test_shape_mismatch_named(tmp_path: Path) -> None:
    path = tmp_path / "official.pth"
    torch.save(small("hot_mixste").state_dict(), path)
    with pytest.raises(CheckpointError, match=r"pos_embed_token: file \(1, 9, 32\) vs model \(1, 5, 32\)"):
        create_lifter("hot_mixste", weights=path, device="cpu", num_heads=4, depth=4, layer_index=2, token_num=5)


def test_checkpoint_of_other_family_rejected(tmp_path: Path) -> None:
    model = small("mixste")
    path = tmp_path / "m.pt"
    save_checkpoint(path, "mixste", model.config.to_dict(), model.state_dict())
    with pytest.raises(CheckpointError, match="holds a 'mixste' lifter"):
        create_lifter("hot_mixste", weights=path, device="cpu")


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot read weights"):
        create_lifter("hot_mixste", weights=path, device="cpu")


def test_official_key_names() -> None:
    keys = set(create_lifter("hot_mixste", device="cpu").state_dict())
    for k in (
        "Spatial_patch_to_embedding.weight",
        "Spatial_pos_embed",
        "Temporal_pos_embed",
        "STEblocks.7.attn.qkv.weight",
        "TTEblocks.0.mlp.fc2.bias",
        "pos_embed_token",
        "x_token",
        "cross_attention.linear_q.weight",
        "cross_attention.linear_k.bias",
        "cross_attention.linear_v.weight",
        "cross_attention.proj.weight",
        "Spatial_norm.weight",
        "Temporal_norm.bias",
        "head.0.weight",
        "head.1.bias",
    ):
        assert k in keys, k
    mix = set(create_lifter("mixste", device="cpu").state_dict())
    assert mix == {k for k in keys if not k.startswith(("pos_embed_token", "x_token", "cross_attention"))}


def test_tpc_keeps_token_num_frames_in_time_order() -> None:
    x = torch.randn(3, 243, 17, 16)
    index = token_pruning_cluster(x, 81, 2)
    assert index.shape == (3, 81)
    assert (index[:, 1:] > index[:, :-1]).all()  # strictly increasing: sorted, no duplicates
    assert index.min() >= 0 and index.max() < 243


def test_dpc_knn_tie_break_is_deterministic() -> None:
    # Pairs of identical frames: every density ties with its twin.
    base = torch.randn(1, 20, 8)
    x = base.repeat_interleave(2, dim=1)  # [1, 40, 8]
    first = dpc_knn_select(x, 10, 2)
    for _ in range(5):
        assert torch.equal(dpc_knn_select(x, 10, 2), first)
    # the earlier twin outranks the later one, so only even frames are picked as centres
    assert (first % 2 == 0).all()


def test_pruning_keeps_the_same_frames_under_autocast() -> None:
    # smooth motion: neighbouring frames are close, where bfloat16 distances would reorder them
    t = torch.linspace(0, 6, 243)[None, :, None, None]
    x = torch.sin(t * torch.randn(1, 1, 17, 64) + torch.randn(1, 1, 17, 64)) + 3.0  # [1, 243, 17, 64]
    plain = token_pruning_cluster(x, 81, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(token_pruning_cluster(x, 81, 2), plain)
        assert torch.equal(
            token_pruning_cluster(x.bfloat16(), 81, 2), token_pruning_cluster(x.bfloat16().float(), 81, 2)
        )


def test_deterministic_inference_bit_identical() -> None:
    model = small("hot_mixste")
    randomize(model)
    x = torch.randn(2, 27, 17, 2)
    x[:, 10:20] = x[:, 10:11]  # a still segment: many exact density ties
    with torch.no_grad():
        y1 = model(x)
        y2 = model(x.clone())
    assert torch.equal(y1, y2)


def test_hot_uses_the_kept_frames_only_after_pruning() -> None:
    # Changing frames is seen by the output through the pre-pruning layers; a model
    # whose recovery ignored its input would give the same output for any input.
    model = small("hot_mixste")
    randomize(model)
    x = torch.randn(1, 27, 17, 2)
    with torch.no_grad():
        assert not torch.allclose(model(x), model(x + 0.1))
