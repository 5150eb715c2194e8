"""Saving and strictly loading model weights (the lifters and the 2D heatmap models).

Three formats are read:
- hotpose checkpoints: a dict `{"format": FORMAT, "name", "config", "state_dict", "meta"}`
  written by `save_checkpoint`; the config travels with the weights, so the
  file rebuilds its own model.
- official releases as a plain `torch.save(model.state_dict())` (HoT / MixSTE, TransPose,
  TokenPose), possibly saved from `nn.DataParallel` (keys prefixed with `module.`);
- mmpose / mmcv training checkpoints (UniFormer): `{"state_dict": ..., "meta": ...}`, perhaps with
  an `"optimizer"` entry, which is ignored.

Loading always uses `torch.load(weights_only=True)` and `strict=True`: a key
that is missing, unexpected or of the wrong shape is an error that names it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

FORMAT = "hotpose-lifter/1"


class CheckpointError(RuntimeError):
    """A weights file that cannot be loaded into the requested model."""


def save_checkpoint(
    path: str | Path,
    name: str,
    config: Mapping[str, Any],
    state_dict: Mapping[str, Tensor],
    meta: Mapping[str, Any] | None = None,
    half: bool = False,
) -> None:
    """Write a hotpose checkpoint; `half` stores floating tensors as float16."""
    sd = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu() for k, v in state_dict.items()}
    payload = {"format": FORMAT, "name": name, "config": dict(config), "state_dict": sd, "meta": dict(meta or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def read_weights(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any] | None]:
    """Return (state_dict, hotpose header or None for an official state_dict)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(f"cannot read weights {path}: {exc}") from exc
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state_dict")
    if obj.get("format") == FORMAT:
        header = {k: v for k, v in obj.items() if k != "state_dict"}
        return _strip_prefix(dict(obj["state_dict"])), header
    inner = obj.get("state_dict")
    if isinstance(inner, Mapping) and all(isinstance(v, Tensor) for v in inner.values()):
        # mmcv's wrapper: the weights under "state_dict", the run's meta (and optimizer) beside them
        return _strip_prefix(dict(inner)), None
    if not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path} is neither a hotpose checkpoint, a plain state_dict nor a {{'state_dict': ...}} wrapper "
            f"(top-level keys: {sorted(obj)[:8]})"
        )
    return _strip_prefix(dict(obj)), None


def _strip_prefix(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module.") :]: v for k, v in sd.items()}
    return sd


LIFTER_HINT = "check the model name and config overrides (dim, frames, token_num, depth ...)"


def load_strict(model: nn.Module, state_dict: Mapping[str, Tensor], source: str, hint: str = LIFTER_HINT) -> None:
    """Load with strict=True after checking names and shapes ourselves for a clear message;
    `hint` ends the message (what to check)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state_dict))
        if state_dict[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        lines = [f"weights {source} do not match the model:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing[:20])}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
        if mismatched:
            lines.append(f"  shape mismatches ({len(mismatched)}): {'; '.join(mismatched[:20])}")
        lines.append(f"  {hint}")
        raise CheckpointError("\n".join(lines))
    cast = {k: v.to(own[k].dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
    model.load_state_dict(cast, strict=True)
    log.info("loaded %d tensors from %s", len(cast), source)
