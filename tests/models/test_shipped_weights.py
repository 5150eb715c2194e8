"""The lifter weights that ship in models/weights: they load strictly and lift real mocap."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotpose.models import CheckpointError, create_lifter, default_weights, resolve_weights
from hotpose.models.checkpoint import read_weights
from hotpose.models.data import eval_views, load_clips, split_by_subject
from hotpose.models.evaluate import evaluate

# Measured on these 3 validation clips (2,844 frames x 4 cameras) by the shipped files; the whole
# split is in models/weights/README.md. The bounds leave room for BLAS differences, not for a
# broken model (an untrained one is above 1000 mm; HoT stuck at its mean-pose plateau ~175 mm).
MEASURED_GT2D_MM = {"hot_mixste": 83.4, "mixste": 111.1}


@pytest.mark.parametrize("name", sorted(MEASURED_GT2D_MM))
def test_shipped_weights_load_and_lift_held_out_subjects(shared_dir: Path, name: str) -> None:
    path = default_weights(name)
    assert path is not None and path.stat().st_size < 25 * (1 << 20)
    _, header = read_weights(path)
    assert header["meta"]["val_subjects"] == ["cmu005", "cmu007", "cmu013", "cmu131"]
    model = create_lifter(name, weights=path, device="cpu")
    clips = load_clips(shared_dir / "mocap" / "cmu_h36m17_30fps.npz")
    _, val = split_by_subject(clips)
    metrics = evaluate(model, eval_views(val[:3]))
    bound = MEASURED_GT2D_MM[name] + 15.0
    assert metrics["gt2d"]["mpjpe_mm"] < bound
    assert metrics["noisy2d"]["mpjpe_mm"] < bound + 10


def test_resolve_weights_takes_the_given_file_else_the_shipped_one(tiny_weights: Path, tmp_path: Path) -> None:
    assert resolve_weights("hot_mixste", tiny_weights) == tiny_weights
    assert resolve_weights("hot_mixste", None) == default_weights("hot_mixste") is not None
    assert resolve_weights("mlp", None) is None  # nothing shipped: the caller decides
    with pytest.raises(CheckpointError, match="missing.pt"):
        resolve_weights("hot_mixste", tmp_path / "missing.pt")
    with pytest.raises(KeyError, match="unknown lifter 'nope'"):
        resolve_weights("nope", None)
