"""Evaluating a lifter under the fixed protocol of `hotpose.models.data` (`hotpose eval-lifter`).

Every frame of every clip, 4 cameras, non-overlapping windows of the model's length
with edge padding, flip augmentation, two input conditions. Figures in millimetres.

`stride` (not part of the protocol; every published figure uses the default) lifts
overlapping windows every `stride` frames instead and gives each frame the mean of the
windows over it, as the service lifts clips (`LiftPolicy.clip`: every frames // 3).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hotpose.models import Lifter
from hotpose.models.data import EvalView, windows
from hotpose.models.keypoints import flip_augment
from hotpose.models.kind import CentrePredictor
from hotpose.models.metrics import mpjpe, mpjve, p_mpjpe

GROUP_OTHER = "other"  # `evaluate`'s `by_group`: the clips that no named group matches


@torch.no_grad()
def lift_windows(model: Lifter, w: np.ndarray, flip: bool = True, batch: int = 8) -> np.ndarray:
    """Windows [N, F, 17, C] -> 3D, `batch` at a time, with test-time flip or not: [N, F, 17, 3] from a
    seq2seq lifter, [N, 17, 3] (the centre frame's pose) from a seq2frame one (`model.KIND`).
    C: x, y and optionally the 2D confidence; the lifter takes the `LifterKind.channels` it declares
    (extra trailing channels dropped, a missing confidence taken as 1)."""
    device = next(model.parameters()).device
    kind = model.KIND
    fn: Callable[[Tensor], Tensor] = model
    if kind.seq2frame:
        if not isinstance(model, CentrePredictor):
            raise TypeError(f"{type(model).__name__} declares seq2frame output but has no predict_centre")
        fn = model.predict_centre
    if w.shape[-1] < kind.channels:  # 2D without confidences (evaluation data): every joint fully confident
        w = np.concatenate([w, np.ones((*w.shape[:-1], kind.channels - w.shape[-1]), w.dtype)], axis=-1)
    outs = []
    for i in range(0, len(w), batch):
        xb = torch.from_numpy(np.ascontiguousarray(w[i : i + batch, ..., : kind.channels], dtype=np.float32))
        xb = xb.to(device)
        outs.append((flip_augment(fn, xb) if flip else fn(xb)).float().cpu().numpy())
    return np.concatenate(outs)


@torch.no_grad()
def predict(model: Lifter, x: np.ndarray, batch: int = 8, flip: bool = True, stride: int | None = None) -> np.ndarray:
    """Normalised 2D [T, 17, 2] of one sequence -> 3D [T, 17, 3], window by window.

    `stride` < the window: overlapping windows starting every `stride` frames (edge-padded at both
    ends, so every frame lies in frames / stride of them when that divides), averaged per frame."""
    frames = model.config.frames

    def lift(w: np.ndarray) -> np.ndarray:
        return lift_windows(model, w, flip, batch)

    if model.KIND.seq2frame:
        # every frame its own window, centred on it and edge-padded at both ends (the official protocol
        # of seq2frame models); `stride` does not apply
        t = len(x)
        offsets = np.arange(frames) - model.KIND.centre(frames)  # [F]
        parts = []
        for s in range(0, t, 256):  # 256 windows at a time bounds the memory, not the result
            idx = np.clip(np.arange(s, min(s + 256, t))[:, None] + offsets, 0, t - 1)  # [n, F]
            parts.append(lift(x[idx]))  # [n, 17, 3]
        y = np.concatenate(parts)
    elif stride is None or stride >= frames:
        w, t = windows(x, frames)
        y = lift(w).reshape(-1, 17, 3)[:t]
    else:
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        t = len(x)
        starts = np.arange(stride - frames, t, stride)  # [N] first frame of each window
        idx = starts[:, None] + np.arange(frames)  # [N, F] frame of each window position
        ys = lift(x[np.clip(idx, 0, t - 1)])  # [N, F, 17, 3]
        inside = (idx >= 0) & (idx < t)
        y = np.zeros((t, 17, 3))
        np.add.at(y, idx[inside], ys[inside])
        y /= np.bincount(idx[inside], minlength=t)[:, None, None]
    root_relative: np.ndarray = y - y[:, :1]  # as the targets (the model's pelvis output is not used)
    return root_relative


def evaluate(
    model: Lifter,
    views: list[EvalView],
    flip: bool = True,
    stride: int | None = None,
    lift_sequence: Callable[[np.ndarray], np.ndarray] | None = None,
    clip_groups: Mapping[str, Sequence[str]] | None = None,
    by_clip: bool = False,
    on_view: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """MPJPE, P-MPJPE and MPJVE (mm) per input condition, averaged over all frames of all views;
    with several skeleton families or subjects in the data, also MPJPE per family (`by_rig`) and
    per subject (`by_subject`).

    `clip_groups` (name -> clip-name glob patterns): also MPJPE per group of clips (`by_group`),
    each clip in the first group with a matching pattern, clips matching none in `"other"`.
    `by_clip`: also MPJPE per clip (`by_clip`).

    `lift_sequence` (not the protocol): lifts one view's normalised 2D [T, 17, 2] to 3D [T, 17, 3]
    some other way (the service's streaming lifter: `hotpose eval-lifter --service`), instead of
    `predict` with `flip` and `stride`.

    `on_view` is called after each view of each input condition (2 x len(views) calls: a progress bar's)."""
    was_training = model.training
    model.eval()
    out: dict[str, Any] = {}
    keys: dict[str, Callable[[EvalView], str]] = {"by_rig": lambda v: v.rig, "by_subject": lambda v: v.subject}
    always: set[str] = set()  # groupings reported even with one group (asked for by name)
    if clip_groups is not None:
        check_clip_groups(clip_groups)
        keys["by_group"] = lambda v: clip_group(v.clip, clip_groups)
        always.add("by_group")
    if by_clip:
        keys["by_clip"] = lambda v: v.clip
        always.add("by_clip")
    groups = {key: sorted({group_of(v) for v in views}) for key, group_of in keys.items()}
    try:
        for cond in ("gt2d", "noisy2d"):
            errs: dict[str, list[np.ndarray]] = {"mpjpe": [], "p_mpjpe": [], "mpjve": []}
            per: dict[str, dict[str, list[np.ndarray]]] = {k: {g: [] for g in v} for k, v in groups.items()}
            for v in views:
                if lift_sequence is None:
                    pred = predict(model, v.inputs[cond], flip=flip, stride=stride)
                else:
                    pred = lift_sequence(v.inputs[cond])
                    pred = pred - pred[:, :1]
                if on_view is not None:
                    on_view()
                errs["mpjpe"].append(mpjpe(pred, v.target))
                errs["p_mpjpe"].append(p_mpjpe(pred, v.target))
                errs["mpjve"].append(mpjve(pred, v.target))
                for key, group_of in keys.items():
                    per[key][group_of(v)].append(errs["mpjpe"][-1])
            out[cond] = {f"{k}_mm": round(1000 * float(np.concatenate(e).mean()), 2) for k, e in errs.items()}
            for key, found in per.items():
                if len(found) > 1 or key in always:
                    out[cond][key] = {
                        g: {"mpjpe_mm": round(1000 * float(np.concatenate(e).mean()), 2), "frames": sum(map(len, e))}
                        for g, e in found.items()
                    }
        out["frames_evaluated"] = int(sum(len(v.target) for v in views))
    finally:
        model.train(was_training)
    return out


def check_clip_groups(clip_groups: Mapping[str, Sequence[str]]) -> None:
    """Raises ValueError when a group takes the name kept for the clips no group matches."""
    if GROUP_OTHER in clip_groups:
        raise ValueError(f"clip group name {GROUP_OTHER!r} is reserved for the clips no group matches")


def clip_group(clip: str, clip_groups: Mapping[str, Sequence[str]]) -> str:
    """The first group with a glob pattern matching the clip name (case-sensitive), else `"other"`."""
    for name, patterns in clip_groups.items():
        if any(fnmatchcase(clip, pattern) for pattern in patterns):
            return name
    return GROUP_OTHER
