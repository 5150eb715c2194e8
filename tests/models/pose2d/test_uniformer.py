from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hotpose.models.layers import count_parameters
from hotpose.models.pose2d.uniformer import VARIANTS, UniFormerConfig, UniFormerPose

# Parameter counts of the official models (UniFormer paper / Sense-X model zoo), in millions.
OFFICIAL_PARAMS_M = {
    "uniformer_s_256x192": 25.23,
    "uniformer_b_256x192": 53.46,
    "uniformer_s_384x288": 25.23,
    "uniformer_b_384x288": 53.46,
}


def official_keys(shared_dir: Path, name: str) -> list[tuple[str, str, str]]:
    # The 384x288 models have the 256x192 ones' state dict (same architecture, other crop size).
    path = shared_dir / "design" / "seed2d-official-keys" / f"{name.replace('384x288', '256x192')}.txt"
    rows = [line.split() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return [(r[0], r[1], r[2]) for r in rows]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_forward_shape_no_nan(name: str) -> None:
    model = UniFormerPose(VARIANTS[name]).eval()
    h, w = model.config.image_size
    with torch.no_grad():
        y = model(torch.randn(1, 3, h, w))
    assert y.shape == (1, 17, *model.config.heatmap_size) == (1, 17, h // 4, w // 4)
    assert torch.isfinite(y).all()


def test_heatmap_sizes() -> None:
    assert VARIANTS["uniformer_s_256x192"].heatmap_size == (64, 48)
    assert VARIANTS["uniformer_b_384x288"].heatmap_size == (96, 72)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_parameter_count_is_official(name: str) -> None:
    params = count_parameters(UniFormerPose(VARIANTS[name]))
    assert abs(params / 1e6 - OFFICIAL_PARAMS_M[name]) < 0.005


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_state_dict_matches_official(shared_dir: Path, name: str) -> None:
    state = UniFormerPose(VARIANTS[name]).state_dict()
    ours = [(k, "x".join(map(str, v.shape)) or "scalar", str(v.dtype).removeprefix("torch.")) for k, v in state.items()]
    assert ours == official_keys(shared_dir, name)


def test_rejects_wrong_input_shape() -> None:
    model = UniFormerPose(UniFormerConfig(depths=(1, 1, 1, 1))).eval()
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model(torch.randn(1, 1, 256, 192))
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 250, 192))


def test_config_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        UniFormerConfig(image_size=(250, 192))
    with pytest.raises(ValueError, match="head_dim"):
        UniFormerConfig(head_dim=48)
