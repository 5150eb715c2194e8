"""MotionBERT (DSTformer) and HoT-MotionBERT: shapes, official state_dicts, strict loading, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hotpose.models.checkpoint import CheckpointError, load_strict, read_weights
from hotpose.models.motionbert import DSTAttention, MotionBERT, MotionBERTConfig

# Small configs keep the suite fast; one test runs the official sizes.
SMALL = {"dim_feat": 32, "dim_rep": 16, "depth": 3, "num_heads": 4, "mlp_ratio": 2, "frames": 27, "token_num": 9}
VARIANTS = {"motionbert": False, "hot_motionbert": True}


def small(hot: bool, **kw: object) -> MotionBERT:
    model = MotionBERT(MotionBERTConfig(hot=hot, **{**SMALL, **kw}))
    return model.eval()


def randomize(model: torch.nn.Module) -> None:
    # The official init leaves the fusion weights, pruning embedding and recovery queries constant;
    # give every parameter values so that each one influences the output.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)


def keypoints(b: int, t: int) -> torch.Tensor:
    x = torch.randn(b, t, 17, 3)
    x[..., 2] = torch.rand(b, t, 17)  # confidence in 0..1
    return x


@pytest.mark.parametrize("hot", [False, True])
def test_forward_shape_no_nan(hot: bool) -> None:
    model = small(hot)
    randomize(model)
    with torch.no_grad():
        y = model(keypoints(2, 27))
    assert y.shape == (2, 27, 17, 3)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("hot", [False, True])
def test_official_size_forward(hot: bool) -> None:
    model = MotionBERT(MotionBERTConfig(hot=hot)).eval()
    with torch.no_grad():
        y = model(keypoints(1, 243))
    assert y.shape == (1, 243, 17, 3)
    assert torch.isfinite(y).all()


def test_input_shape_checked() -> None:
    with pytest.raises(ValueError, match=r"expected input \[B, 27, 17, 3\] \(x, y, confidence\), got \[1, 27, 17, 2\]"):
        small(True)(torch.randn(1, 27, 17, 2))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_official_key_names_shapes_and_order(name: str, shared_dir: Path) -> None:
    lines = (shared_dir / "design" / "hot-family-official-keys" / f"{name}.txt").read_text().splitlines()
    official = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    sd = MotionBERT(MotionBERTConfig(hot=VARIANTS[name])).state_dict()
    ours = [f"{k} {'x'.join(map(str, v.shape))} {str(v.dtype).removeprefix('torch.')}" for k, v in sd.items()]
    assert ours == official


@pytest.mark.parametrize("hot", [False, True])
def test_state_dict_round_trip_is_strict_and_exact(hot: bool, tmp_path: Path) -> None:
    model = small(hot)
    randomize(model)
    path = tmp_path / "official.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)  # as nn.DataParallel saves
    sd, header = read_weights(path)
    assert header is None
    loaded = small(hot)
    load_strict(loaded, sd, str(path))
    x = keypoints(1, 27)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_renamed_key_fails_naming_it() -> None:
    sd = small(True).state_dict()
    sd["ts_attn.0.w"] = sd.pop("ts_attn.0.weight")
    with pytest.raises(CheckpointError) as err:
        load_strict(small(True), sd, "bad.pth")
    msg = str(err.value)
    assert "missing keys (1): ts_attn.0.weight" in msg
    assert "unexpected keys (1): ts_attn.0.w" in msg


def test_hot_inference_is_deterministic_and_keeps_token_num_frames_in_time_order() -> None:
    model = small(True)
    randomize(model)
    kept: list[torch.Tensor] = []
    model.token_pruning.register_forward_hook(lambda module, args, out: kept.append(out))
    x = keypoints(2, 27)
    x[:, 10:20] = x[:, 10:11]  # a still segment: many exact density ties
    with torch.no_grad():
        y1 = model(x)
        y2 = model(x.clone())
    assert torch.equal(y1, y2)
    assert torch.equal(kept[0], kept[1])
    assert kept[0].shape == (2, 9)
    assert (kept[0][:, 1:] > kept[0][:, :-1]).all()  # time order, no duplicates


@pytest.mark.parametrize("hot", [False, True])
def test_confidence_channel_changes_the_pose(hot: bool) -> None:
    model = small(hot)
    randomize(model)
    x = keypoints(1, 27)
    low = x.clone()
    low[..., 2] = 0.0
    with torch.no_grad():
        assert not torch.allclose(model(x), model(low))


def test_fusion_starts_as_an_equal_mix_of_the_streams() -> None:
    # the official initialisation: the softmax weights of the two streams start at 0.5 each
    for fuse in small(False).ts_attn:
        assert isinstance(fuse, torch.nn.Linear)
        assert torch.equal(fuse.weight, torch.zeros_like(fuse.weight))
        assert torch.equal(fuse.bias, torch.full_like(fuse.bias, 0.5))


def test_temporal_attention_is_the_official_regrouping() -> None:
    # The official temporal attention projects qkv on [B*T, J, C] and regroups q, k, v by joint.
    b, t, j, c, h = 2, 5, 17, 16, 4
    attn = DSTAttention(c, h, "temporal")
    x = torch.randn(b, t, j, c)
    with torch.no_grad():
        ours = attn(x)
        qkv = attn.qkv(x.reshape(b * t, j, c)).reshape(b * t, j, 3, h, c // h).permute(2, 0, 3, 1, 4)
        q, k, v = (m.reshape(b, t, h, j, c // h).permute(0, 2, 3, 1, 4) for m in qkv)  # [B, H, J, T, D]
        w = ((q @ k.transpose(-2, -1)) * (c // h) ** -0.5).softmax(dim=-1)
        official = attn.proj((w @ v).permute(0, 3, 2, 1, 4).reshape(b, t, j, c))
    assert torch.allclose(ours, official, atol=1e-6)
