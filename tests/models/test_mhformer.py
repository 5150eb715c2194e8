from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hotpose.models.checkpoint import CheckpointError, load_strict, read_weights, save_checkpoint
from hotpose.models.kind import CentrePredictor
from hotpose.models.mhformer import MHFormer, MHFormerConfig

# Small configs keep the suite fast; one test per variant runs the paper size. 27 frames take the
# official small-window embedding (with BatchNorm), 45 the plain 1x1 convolution of longer windows.
SMALL = {"dim": 32, "mlp_hidden_dim": 64, "num_heads": 4, "token_num": 9, "layer_index": 1}
VARIANTS = {"mhformer": False, "tpc_mhformer": True}


def small(tpc: bool, frames: int = 27) -> MHFormer:
    model = MHFormer(MHFormerConfig(frames=frames, tpc=tpc, **SMALL)).eval()
    with torch.no_grad():  # the official init leaves the position embeddings at zero
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def key_line(name: str, t: torch.Tensor) -> str:
    shape = "x".join(map(str, t.shape)) or "scalar"
    return f"{name} {shape} {str(t.dtype).removeprefix('torch.')}"


@pytest.mark.parametrize("frames", [27, 45])
@pytest.mark.parametrize("tpc", [False, True])
def test_forward_shape_no_nan(tpc: bool, frames: int) -> None:
    with torch.no_grad():
        y, index = small(tpc, frames).forward_with_index(torch.randn(2, frames, 17, 2))
    t = 9 if tpc else frames
    assert y.shape == (2, t, 17, 3) and index.shape == (2, t)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_paper_size_forward(name: str) -> None:
    model = MHFormer(MHFormerConfig(tpc=VARIANTS[name])).eval()
    cfg = model.config
    assert (cfg.frames, cfg.dim, cfg.mlp_hidden_dim, cfg.token_num, cfg.layer_index) == (351, 512, 1024, 117, 1)
    with torch.inference_mode():
        y = model(torch.randn(1, 351, 17, 2))
    assert y.shape == (1, 117 if VARIANTS[name] else 351, 17, 3) and torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_official_key_names_shapes_and_order(name: str, shared_dir: Path) -> None:
    lines = (shared_dir / "design" / "hot-family-official-keys" / f"{name}.txt").read_text().splitlines()
    official = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    sd = MHFormer(MHFormerConfig(tpc=VARIANTS[name])).state_dict()
    assert [key_line(k, v) for k, v in sd.items()] == official


def test_input_shape_checked() -> None:
    with pytest.raises(ValueError, match=r"expected input \[B, 27, 17, 2\], got \[1, 27, 17, 3\]"):
        small(False)(torch.randn(1, 27, 17, 3))


def test_config_checked() -> None:
    with pytest.raises(ValueError, match="frames 100 is not divisible by mhg_heads 9"):
        MHFormerConfig(frames=100)
    with pytest.raises(ValueError, match="layer_index 2"):
        MHFormerConfig(tpc=True, layer_index=2)


@pytest.mark.parametrize("tpc", [False, True])
def test_checkpoint_round_trip_is_strict_and_exact(tpc: bool, tmp_path: Path) -> None:
    model = small(tpc)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, "tpc_mhformer" if tpc else "mhformer", model.config.to_dict(), model.state_dict())
    sd, header = read_weights(path)
    assert header is not None
    loaded = MHFormer(MHFormerConfig(**header["config"])).eval()
    assert loaded.config == model.config
    load_strict(loaded, sd, str(path))
    x = torch.randn(1, 27, 17, 2)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_renamed_key_fails_naming_it() -> None:
    sd = small(False).state_dict()
    sd["Transformer_hypothesis.CHI_blocks.0.attn_1.query.weight"] = sd.pop(
        "Transformer_hypothesis.CHI_blocks.0.attn_1.linear_q.weight"
    )
    with pytest.raises(
        CheckpointError, match=r"missing keys \(1\): Transformer_hypothesis.CHI_blocks.0.attn_1.linear_q"
    ):
        load_strict(MHFormer(MHFormerConfig(frames=27, **SMALL)), sd, "renamed.pth")


@pytest.mark.parametrize("tpc", [False, True])
def test_deterministic(tpc: bool) -> None:
    model = small(tpc)
    x = torch.randn(2, 27, 17, 2)
    with torch.no_grad():
        y1, i1 = model.forward_with_index(x)
        y2, i2 = model.forward_with_index(x)
    assert torch.equal(y1, y2) and torch.equal(i1, i2)


@pytest.mark.parametrize("motion", ["random", "still"])
def test_tpc_keeps_the_centre_frame_in_time_order(motion: str) -> None:
    # as the official TPC-MHFormer does; "still": all frames equal, every density ties
    x = torch.randn(3, 27, 17, 2) if motion == "random" else torch.randn(3, 1, 17, 2).expand(3, 27, 17, 2)
    with torch.no_grad():
        _, index = small(True).forward_with_index(x)
    assert (index == 13).sum(dim=1).tolist() == [1, 1, 1]
    assert (index.diff(dim=1) > 0).all()


@pytest.mark.parametrize("tpc", [False, True])
def test_predict_centre_is_the_centre_frame_row(tpc: bool) -> None:
    model = small(tpc)
    assert isinstance(model, CentrePredictor) and model.KIND.seq2frame
    x = torch.randn(2, 27, 17, 2)
    with torch.no_grad():
        y, index = model.forward_with_index(x)
        centre = model.predict_centre(x)
    assert centre.shape == (2, 17, 3)
    if not tpc:
        assert torch.equal(centre, y[:, 13])
    for b in range(2):
        assert torch.equal(centre[b], y[b, index[b].tolist().index(13)])
