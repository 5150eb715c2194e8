"""One rule for where a model runs (`hotpose.models.device.pick_device`)."""

from __future__ import annotations

import pytest
import torch

from hotpose.models import create_lifter
from hotpose.models.device import pick_device


def test_pick_device_takes_what_is_asked_else_cuda_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(torch.device("cuda:1")) == torch.device("cuda:1")  # no CUDA needed to name one
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device(None) == pick_device("") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device(None) == torch.device("cuda")


def test_create_lifter_places_the_model_on_the_picked_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = create_lifter("mlp")
    assert next(model.parameters()).device == torch.device("cpu")
