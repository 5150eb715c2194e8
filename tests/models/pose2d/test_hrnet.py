from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hotpose.models.pose2d.hrnet import HRNet, HRNetConfig


def official_keys(shared_dir: Path, name: str, prefix: str) -> list[tuple[str, str]]:
    path = shared_dir / "design" / "seed2d-official-keys" / f"{name}.txt"
    rows = [line.split() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return [(r[0].removeprefix(prefix), r[1]) for r in rows if r[0].startswith(prefix)]


@pytest.mark.parametrize(("name", "width"), [("tokenpose_b", 32), ("tokenpose_l_d24", 48)])
def test_keys_equal_tokenpose_pre_feature(shared_dir: Path, name: str, width: int) -> None:
    state = HRNet(HRNetConfig(width=width)).state_dict()
    mine = [(k, "x".join(map(str, v.shape)) or "scalar") for k, v in state.items()]
    assert mine == official_keys(shared_dir, name, "pre_feature.")


@pytest.mark.parametrize("stages", [2, 3, 4])
def test_forward_returns_the_highest_resolution_branch(stages: int) -> None:
    m = HRNet(HRNetConfig(width=8, stages=stages, blocks=1)).eval()
    with torch.no_grad():
        y = m(torch.randn(1, 3, 64, 32))
    assert y.shape == (1, 8, 16, 8)
    assert torch.isfinite(y).all()


def test_last_module_fuses_into_branch_zero_only() -> None:
    m = HRNet(HRNetConfig(width=8))
    fuse = m.stage3[-1].fuse_layers
    assert fuse is not None and len(fuse) == 1
    assert all(len(row) == 3 for row in m.stage3[0].fuse_layers)


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="stages"):
        HRNetConfig(stages=5)
