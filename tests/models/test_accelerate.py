"""The CPU inference path of HoT-MixSTE / MixSTE (models/accelerate.py) gives the module path's
outputs and keeps the same frames; anything it can't serve falls back to the module path."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from unittest import mock

import pytest
import torch

from hotpose.models import accelerate, create_lifter, resolve_weights
from hotpose.models.hot import HoTMixSTE

SMALL = {"dim": 32, "depth": 4, "num_heads": 4, "frames": 27, "token_num": 9, "layer_index": 2}


def small(name: str) -> HoTMixSTE:
    cfg = dict(SMALL)
    if name == "mixste":
        cfg.pop("token_num")
        cfg.pop("layer_index")
    model = create_lifter(name, device="cpu", **cfg)
    with torch.no_grad():  # the official init leaves embeddings at zero: give every parameter a say
        g = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    assert isinstance(model, HoTMixSTE)
    return model


def run_both(model: HoTMixSTE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """(module path, fast path) outputs and the frames the Token Pruning Cluster kept in each."""
    kept: list[torch.Tensor] = []
    tpc = getattr(model, "token_pruning", None)
    record: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    if tpc is not None:  # wrap forward, not a hook: a hook would turn the fast path off

        def keep(x: torch.Tensor, forward: Callable[[torch.Tensor], torch.Tensor] = tpc.forward) -> torch.Tensor:
            kept.append(forward(x))
            return kept[-1]

        record = mock.patch.object(tpc, "forward", side_effect=keep)
    with record, torch.inference_mode():
        with mock.patch.object(accelerate, "MKLDNN_LINEAR", False):
            assert not accelerate.fast_path_ok(model, x)
            ref = model(x)
        assert accelerate.fast_path_ok(model, x) == accelerate.MKLDNN_LINEAR
        fast = model(x)
    return ref, fast, kept


@pytest.mark.skipif(not accelerate.MKLDNN_LINEAR, reason="oneDNN Linear not in this torch build")
@pytest.mark.parametrize("name", ["hot_mixste", "mixste"])
@pytest.mark.parametrize("batch", [1, 3])
def test_fast_path_equals_module_path(name: str, batch: int) -> None:
    model = small(name)
    x = torch.randn(batch, 27, 17, 2, generator=torch.Generator().manual_seed(batch))
    ref, fast, kept = run_both(model, x)
    assert fast.shape == ref.shape == (batch, 27, 17, 3)
    assert (fast - ref).abs().max() < 1e-5
    if name == "hot_mixste":
        assert len(kept) == 2 and torch.equal(kept[0], kept[1])


@pytest.mark.skipif(not accelerate.MKLDNN_LINEAR, reason="oneDNN Linear not in this torch build")
@pytest.mark.parametrize("batch", [1, 4])
def test_fast_path_equals_module_path_for_the_shipped_lifter(batch: int) -> None:
    weights = resolve_weights("hot_mixste", None)
    if weights is None:
        pytest.skip("shipped weights not installed")
    model = create_lifter("hot_mixste", weights=weights, device="cpu")
    assert isinstance(model, HoTMixSTE)
    x = torch.randn(batch, 243, 17, 2, generator=torch.Generator().manual_seed(0)) * 0.3
    ref, fast, kept = run_both(model, x)
    assert (fast - ref).abs().max() < 1e-5
    assert len(kept) == 2 and torch.equal(kept[0], kept[1])


def test_fast_path_only_where_it_is_safe() -> None:
    model = small("hot_mixste")
    x = torch.randn(1, 27, 17, 2)
    with torch.no_grad():
        assert accelerate.fast_path_ok(model, x) == accelerate.MKLDNN_LINEAR
        assert not accelerate.fast_path_ok(model, x.double())
        model.train()
        assert not accelerate.fast_path_ok(model, x)  # training: module path (drop path, hooks)
        model.eval()
        handle = model.cross_attention.register_forward_hook(lambda *a: None)
        assert not accelerate.fast_path_ok(model, x)  # hooks see the module calls
        handle.remove()
    assert not accelerate.fast_path_ok(model, x)  # autograd on: module path
    y = model(x)
    assert y.requires_grad
