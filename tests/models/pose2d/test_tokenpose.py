from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import torch

from hotpose.models.layers import count_parameters
from hotpose.models.pose2d.tokenpose import VARIANTS, TokenPose, TokenPoseConfig, sine_position_embedding

# Parameter counts of the official models (TokenPose paper, Table 1), in millions; the fixed sine
# position table is an nn.Parameter in the official code and counts.
OFFICIAL_PARAMS_M = {
    "tokenpose_t": 5.87,
    "tokenpose_s_v1": 6.67,
    "tokenpose_s_v2": 6.37,
    "tokenpose_b": 13.51,
    "tokenpose_l_d24": 27.53,
}
# tokenpose_l_d24_384x288 has no official key list: its keys are tokenpose_l_d24's, and only the
# tensors that depend on the crop size (patch width 6x4, 16x18 tokens, 96x72 heatmaps) change shape.
L384_SHAPES = {
    "transformer.pos_embedding": "1x288x192",
    "transformer.patch_to_embedding.weight": "192x1152",
    "transformer.mlp_head.1.weight": "6912x576",
    "transformer.mlp_head.1.bias": "6912",
}


@cache
def model(name: str) -> TokenPose:
    torch.manual_seed(0)
    return TokenPose(VARIANTS[name]).eval()


def official_keys(shared_dir: Path, name: str) -> list[tuple[str, str, str]]:
    path = shared_dir / "design" / "seed2d-official-keys" / f"{name}.txt"
    rows = [line.split() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return [(r[0], r[1], r[2]) for r in rows]


def keys_of(m: TokenPose) -> list[tuple[str, str, str]]:
    state = m.state_dict()
    return [(k, "x".join(map(str, v.shape)) or "scalar", str(v.dtype).removeprefix("torch.")) for k, v in state.items()]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_forward_shape_no_nan(name: str) -> None:
    m = model(name)
    h, w = m.config.image_size
    with torch.no_grad():
        y = m(torch.randn(1, 3, h, w))
    assert y.shape == (1, 17, *m.config.heatmap_size) == (1, 17, h // 4, w // 4)
    assert torch.isfinite(y).all()


def test_heatmap_sizes() -> None:
    assert VARIANTS["tokenpose_t"].heatmap_size == (64, 48)
    assert VARIANTS["tokenpose_l_d24_384x288"].heatmap_size == (96, 72)


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS_M))
def test_parameter_count_is_official(name: str) -> None:
    assert abs(count_parameters(model(name)) / 1e6 - OFFICIAL_PARAMS_M[name]) < 0.005


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS_M))
def test_state_dict_matches_official(shared_dir: Path, name: str) -> None:
    assert keys_of(model(name)) == official_keys(shared_dir, name)


def test_384x288_state_dict_is_l_d24_resized(shared_dir: Path) -> None:
    l_d24 = official_keys(shared_dir, "tokenpose_l_d24")
    expected = [(k, L384_SHAPES.get(k, shape), dtype) for k, shape, dtype in l_d24]
    assert keys_of(model("tokenpose_l_d24_384x288")) == expected


def test_sine_table_is_a_loaded_parameter() -> None:
    m = model("tokenpose_b")
    pos = m.body.pos_embedding
    assert not pos.requires_grad
    assert torch.equal(pos, sine_position_embedding(16, 16, 192))
    # a checkpoint's table wins over the one computed at construction
    state = {k: v.clone() for k, v in m.state_dict().items()}
    state["transformer.pos_embedding"] += 1.0
    other = TokenPose(VARIANTS["tokenpose_b"])
    other.load_state_dict(state, strict=True)
    assert torch.equal(other.body.pos_embedding, pos + 1.0)


def test_sine_table_layout() -> None:
    table = sine_position_embedding(2, 3, 8)[0]  # [6, 8]: row-major tokens; 4 row channels, then 4 column
    assert torch.allclose(table[0, :4], table[2, :4]) and not torch.allclose(table[0, :4], table[3, :4])
    assert torch.allclose(table[0, 4:], table[3, 4:]) and not torch.allclose(table[0, 4:], table[1, 4:])
    angle = torch.tensor(2 * torch.pi / 3)  # column 1 of 3, lowest frequency: a (sin, cos) pair
    assert torch.allclose(table[0, 4:6], torch.stack((angle.sin(), angle.cos())), atol=1e-5)


def test_attention_scale_per_variant() -> None:
    # the official S base scales by the full width; T, B and L by the head width
    assert not VARIANTS["tokenpose_s_v1"].scale_by_head_dim and not VARIANTS["tokenpose_s_v2"].scale_by_head_dim
    assert all(VARIANTS[n].scale_by_head_dim for n in ("tokenpose_t", "tokenpose_b", "tokenpose_l_d24"))


def test_rejects_wrong_input_shape() -> None:
    with pytest.raises(ValueError, match=r"\[B, 3, 256, 192\]"):
        model("tokenpose_t")(torch.randn(1, 3, 192, 256))


def test_config_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        TokenPoseConfig(backbone="none", patch_size=(16, 10))
    with pytest.raises(ValueError, match="heads"):
        TokenPoseConfig(backbone="none", patch_size=(16, 12), heads=7)
