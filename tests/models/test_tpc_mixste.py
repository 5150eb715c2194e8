from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hotpose.models.checkpoint import CheckpointError, load_strict, read_weights, save_checkpoint
from hotpose.models.kind import CentrePredictor
from hotpose.models.token_pruning import token_pruning_cluster
from hotpose.models.tpc_mixste import TPCMixSTE, TPCMixSTEConfig

# A small config keeps the suite fast; one test runs the paper-size model.
SMALL = TPCMixSTEConfig(dim=32, depth=4, num_heads=4, frames=27, token_num=9, layer_index=2)
CENTRE = 13


def small() -> TPCMixSTE:
    model = TPCMixSTE(SMALL).eval()
    with torch.no_grad():  # the official init leaves the embeddings at zero: give every parameter a say
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def key_line(name: str, t: torch.Tensor) -> str:
    shape = "x".join(map(str, t.shape)) or "scalar"
    return f"{name} {shape} {str(t.dtype).removeprefix('torch.')}"


def test_forward_shape_no_nan() -> None:
    with torch.no_grad():
        y, index = small().forward_with_index(torch.randn(2, 27, 17, 2))
    assert y.shape == (2, 9, 17, 3) and index.shape == (2, 9)
    assert torch.isfinite(y).all()


def test_paper_size_forward() -> None:
    model = TPCMixSTE(TPCMixSTEConfig()).eval()
    cfg = model.config
    assert (cfg.dim, cfg.mlp_hidden_dim, cfg.frames, cfg.token_num, cfg.layer_index) == (512, 1024, 243, 61, 7)
    with torch.inference_mode():
        y = model(torch.randn(1, 243, 17, 2))
    assert y.shape == (1, 61, 17, 3) and torch.isfinite(y).all()


def test_official_key_names_shapes_and_order(shared_dir: Path) -> None:
    lines = (shared_dir / "design" / "hot-family-official-keys" / "tpc_mixste.txt").read_text().splitlines()
    official = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    sd = TPCMixSTE(TPCMixSTEConfig()).state_dict()
    assert [key_line(k, v) for k, v in sd.items()] == official


def test_input_shape_checked() -> None:
    with pytest.raises(ValueError, match=r"expected input \[B, 27, 17, 2\], got \[1, 26, 17, 2\]"):
        small()(torch.randn(1, 26, 17, 2))


def test_config_checked() -> None:
    with pytest.raises(ValueError, match="token_num 28"):
        TPCMixSTEConfig(frames=27, token_num=28)
    with pytest.raises(ValueError, match="layer_index 8"):
        TPCMixSTEConfig(layer_index=8)


def test_checkpoint_round_trip_is_strict_and_exact(tmp_path: Path) -> None:
    model = small()
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, "tpc_mixste", model.config.to_dict(), model.state_dict())
    sd, header = read_weights(path)
    assert header is not None
    loaded = TPCMixSTE(TPCMixSTEConfig(**header["config"])).eval()
    assert loaded.config == model.config
    load_strict(loaded, sd, str(path))
    x = torch.randn(1, 27, 17, 2)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_renamed_key_fails_naming_it() -> None:
    sd = small().state_dict()
    sd["STEblocks.0.attn.qkv_weight"] = sd.pop("STEblocks.0.attn.qkv.weight")
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): STEblocks.0.attn.qkv.weight"):
        load_strict(TPCMixSTE(SMALL), sd, "renamed.pth")


def test_deterministic() -> None:
    model = small()
    x = torch.randn(2, 27, 17, 2)
    with torch.no_grad():
        y1, i1 = model.forward_with_index(x)
        y2, i2 = model.forward_with_index(x)
    assert torch.equal(y1, y2) and torch.equal(i1, i2)


@pytest.mark.parametrize("motion", ["random", "still"])
def test_tpc_keeps_the_centre_frame_in_time_order(motion: str) -> None:
    # "still": every frame equal, so every density ties and the tie rule alone decides
    x = torch.randn(3, 27, 17, 2) if motion == "random" else torch.randn(3, 1, 17, 2).expand(3, 27, 17, 2)
    model = small()
    seen: list[torch.Tensor] = []
    model.token_pruning.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    with torch.no_grad():
        _, index = model.forward_with_index(x)
    assert (index == CENTRE).sum(dim=1).tolist() == [1, 1, 1]
    assert (index.diff(dim=1) > 0).all()  # strictly increasing: time order, no frame twice
    # exactly the shared TPC with the centre frame kept, on the tokens after block layer_index - 1
    assert torch.equal(index, token_pruning_cluster(seen[0], 9, 2, keep=CENTRE))


def test_predict_centre_is_the_centre_frame_row() -> None:
    model = small()
    assert isinstance(model, CentrePredictor) and model.KIND.seq2frame
    x = torch.randn(2, 27, 17, 2)
    with torch.no_grad():
        y, index = model.forward_with_index(x)
        centre = model.predict_centre(x)
    assert centre.shape == (2, 17, 3)
    for b in range(2):
        row = index[b].tolist().index(CENTRE)
        assert torch.equal(centre[b], y[b, row])
