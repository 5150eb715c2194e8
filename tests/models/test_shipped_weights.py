"""The lifter weights that ship in models/weights: they load strictly and lift real mocap."""

from __future__ import annotations

from pathlib import Path

from models import create_lifter, default_weights
from models.checkpoint import read_weights
from models.data import eval_views, load_clips, split_by_subject
from models.evaluate import evaluate

# Measured on these 3 validation clips: 137.8 mm (GT 2D) and 141.2 mm (noisy); the whole split:
# 117.9 / 120.8 mm. The bound leaves room for BLAS differences, not for a broken model (an
# untrained one is above 1000 mm).
MPJPE_BOUND_MM = 160.0


def test_shipped_mixste_weights_load_and_lift_held_out_subjects(shared_dir: Path) -> None:
    path = default_weights("mixste")
    assert path is not None and path.stat().st_size < 25 * (1 << 20)
    _, header = read_weights(path)
    assert header["meta"]["val_subjects"] == ["cmu005", "cmu007", "cmu013", "cmu131"]
    model = create_lifter("mixste", weights=path, device="cpu")
    clips = load_clips(shared_dir / "mocap" / "cmu_h36m17_30fps.npz")
    _, val = split_by_subject(clips)
    metrics = evaluate(model, eval_views(val[:3]))
    assert metrics["gt2d"]["mpjpe_mm"] < MPJPE_BOUND_MM
    assert metrics["noisy2d"]["mpjpe_mm"] < MPJPE_BOUND_MM + 10


def test_no_hot_mixste_weights_ship_until_one_trains() -> None:
    # models/weights/README.md: our HoT-MixSTE stayed at the mean-pose plateau; none is shipped.
    assert default_weights("hot_mixste") is None
