"""Where a model runs: the one rule every hotpose model and the service follow."""

from __future__ import annotations

import torch

# What callers may pass: a torch device, its name ("cpu", "cuda", "cuda:1"), or None for "pick one".
DeviceLike = str | torch.device | None


def pick_device(device: DeviceLike) -> torch.device:
    """The device asked for, else CUDA when present, else the CPU.

    `None` and `""` (an empty `HOTPOSE_DEVICE`) both mean "pick one".
    """
    if device is None or device == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


__all__ = ["DeviceLike", "pick_device"]
