from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import pytest
import torch

from hotpose.models.layers import count_parameters
from hotpose.models.pose2d.transpose import VARIANTS, TransPose, TransPoseConfig, sine_position_embedding

# Parameter counts of the official models (TransPose paper, Table 1 and the README), in millions;
# the fixed sine position table is an nn.Parameter in the official code and counts.
OFFICIAL_PARAMS_M = {
    "transpose_r_a3": 5.20,
    "transpose_r_a4": 5.99,
    "transpose_h_s": 8.02,
    "transpose_h_a4": 17.31,
    "transpose_h_a6": 17.46,
}


@cache
def model(name: str) -> TransPose:
    torch.manual_seed(0)
    return TransPose(VARIANTS[name]).eval()


def official_keys(shared_dir: Path, name: str) -> list[tuple[str, str, str]]:
    path = shared_dir / "design" / "seed2d-official-keys" / f"{name}.txt"
    rows = [line.split() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return [(r[0], r[1], r[2]) for r in rows]


def keys_of(m: torch.nn.Module) -> list[tuple[str, str, str]]:
    state = m.state_dict()
    return [(k, "x".join(map(str, v.shape)) or "scalar", str(v.dtype).removeprefix("torch.")) for k, v in state.items()]


def test_variants_are_the_papers_five() -> None:
    assert set(VARIANTS) == set(OFFICIAL_PARAMS_M)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_forward_shape_no_nan(name: str) -> None:
    m = model(name)
    h, w = m.config.image_size
    with torch.no_grad():
        y = m(torch.randn(1, 3, h, w))
    assert y.shape == (1, 17, *m.config.heatmap_size) == (1, 17, 64, 48)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_parameter_count_is_official(name: str) -> None:
    assert count_parameters(model(name)) / 1e6 == pytest.approx(OFFICIAL_PARAMS_M[name], abs=0.005)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_state_dict_equals_official_keys(shared_dir: Path, name: str) -> None:
    assert keys_of(model(name)) == official_keys(shared_dir, name)


# Small crops and widths keep this fast; the official variants' arithmetic is the same code.
SMALL = {
    "resnet": TransPoseConfig(d_model=32, dim_feedforward=64, n_layers=2, n_heads=4, image_size=(64, 48)),
    "hrnet": TransPoseConfig("hrnet", 8, d_model=16, dim_feedforward=32, n_layers=2, n_heads=2, image_size=(64, 48)),
}


@pytest.mark.parametrize("stem", sorted(SMALL))
def test_forward_with_attention(stem: str) -> None:
    m = TransPose(SMALL[stem]).eval()
    h, w = m.config.feature_size
    x = torch.randn(1, 3, *m.config.image_size)
    with torch.no_grad():
        heatmaps, attention = m.forward_with_attention(x)
        expected = m(x)
    assert torch.allclose(heatmaps, expected, atol=1e-5)
    assert attention.shape == (1, h * w, h * w)
    assert (attention >= 0).all()
    assert torch.allclose(attention.sum(-1), torch.ones(1, h * w), atol=1e-5)


def test_pos_embedding_is_loaded_from_the_checkpoint() -> None:
    m = model("transpose_r_a3")
    state = {k: v.clone() for k, v in m.state_dict().items()}
    state["pos_embedding"] = torch.randn_like(state["pos_embedding"])
    fresh = TransPose(VARIANTS["transpose_r_a3"])
    fresh.load_state_dict(state, strict=True)
    assert torch.equal(fresh.pos_embedding, state["pos_embedding"])
    assert not fresh.pos_embedding.requires_grad


def test_sine_position_embedding_layout() -> None:
    h, w, d = 4, 3, 8
    pe = sine_position_embedding(h, w, d)  # [L, 1, d], y half then x half, sin/cos interleaved
    assert pe.shape == (h * w, 1, d)
    row, col = 2, 1
    y = (row + 1) / (h + 1e-6) * 2 * math.pi
    x = (col + 1) / (w + 1e-6) * 2 * math.pi
    freq = [10000 ** (2 * (i // 2) / (d // 2)) for i in range(d // 2)]
    expected = [math.sin(y / freq[0]), math.cos(y / freq[1]), math.sin(y / freq[2]), math.cos(y / freq[3])]
    expected += [math.sin(x / freq[0]), math.cos(x / freq[1]), math.sin(x / freq[2]), math.cos(x / freq[3])]
    assert torch.allclose(pe[row * w + col, 0], torch.tensor(expected), atol=1e-6)


def test_wrong_input_shape_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"\[B, 3, 256, 192\]"):
        model("transpose_r_a3")(torch.randn(1, 3, 384, 288))


def test_config_checks() -> None:
    assert TransPoseConfig().heatmap_size == (64, 48)
    assert VARIANTS["transpose_h_s"].feature_size == (64, 48)
    assert VARIANTS["transpose_r_a3"].feature_size == (32, 24)
    with pytest.raises(ValueError, match="n_heads"):
        TransPoseConfig(d_model=100, n_heads=8)
    with pytest.raises(ValueError, match="multiples of 16"):
        TransPoseConfig(stem="hrnet", image_size=(264, 192))
