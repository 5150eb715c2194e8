"""Top-down 2D keypoint models of the seed papers: TransPose, TokenPose and UniFormer.

Each maps a person crop [B, 3, H, W] (RGB, ImageNet mean/std; 256x192 or 384x288) to 17 COCO heatmaps
[B, 17, H/4, W/4]. Entry point: `create_pose2d(name, weights=None, device=None, **overrides)`; the
names are `names()` (the `VARIANTS` of transpose.py, tokenpose.py and uniformer.py).

hotpose ships no weights for them: `FAMILIES[...].weights` says where each paper's authors publish
theirs. A checkpoint loads strictly (`hotpose.models.checkpoint`): a plain state_dict or mmcv's
`{"state_dict": ..., "meta": ...}`, `module.` stripped, `torch.load(weights_only=True)`; a missing,
unexpected or mis-shaped key is an error that names it. Each family also names its official test
pipeline (`hotpose.models.pose2d.heatmaps`), which `hotpose.models.detector.heatmap_pose` runs.

The model modules are imported when the registry is first read (never at import of this package), and
a family whose module is absent is left out of it.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from hotpose.models.checkpoint import CheckpointError, load_strict, read_weights
from hotpose.models.device import DeviceLike, pick_device
from hotpose.models.pose2d.heatmaps import DARKPOSE, MMPOSE, HeatmapPipeline

log = logging.getLogger(__name__)


class Pose2DConfig(Protocol):
    """What every family's config dataclass has."""

    image_size: tuple[int, int]  # (height, width) of the input crop
    joints: int

    @property
    def heatmap_size(self) -> tuple[int, int]: ...


@dataclass(frozen=True)
class Family:
    """One paper's models: the module holding them, its test pipeline and where its authors publish weights."""

    paper: str
    module: str  # holds `VARIANTS: dict[name, config]` and the model class
    model_class: str
    pipeline: HeatmapPipeline
    weights: str  # where the authors publish their checkpoints (for messages and docs)
    licence: str


FAMILIES: dict[str, Family] = {
    "transpose": Family(
        paper="TransPose (Yang et al., ICCV 2021)",
        module="hotpose.models.pose2d.transpose",
        model_class="TransPose",
        pipeline=DARKPOSE,
        weights="the GitHub releases of yangsenius/TransPose: https://github.com/yangsenius/TransPose/releases",
        licence="MIT",
    ),
    "tokenpose": Family(
        paper="TokenPose (Li et al., ICCV 2021)",
        module="hotpose.models.pose2d.tokenpose",
        model_class="TokenPose",
        pipeline=DARKPOSE,
        weights="the Google Drive and Baidu Pan links in the README of leeyegy/TokenPose: "
        "https://github.com/leeyegy/TokenPose#readme",
        licence="no licence file in the repository; its code carries HRNet's MIT headers",
    ),
    "uniformer": Family(
        paper="UniFormer (Li et al., ICLR 2022)",
        module="hotpose.models.pose2d.uniformer",
        model_class="UniFormerPose",
        pipeline=MMPOSE,
        weights="the Google Drive links (Model column) in Sense-X/UniFormer's pose_estimation/README.md: "
        "https://github.com/Sense-X/UniFormer/tree/main/pose_estimation#model-zoo",
        licence="Apache-2.0",
    ),
}

_TP = "https://github.com/yangsenius/TransPose/releases/download/Hub/"
_UF = "https://drive.google.com/file/d/{}/view"
# The checkpoint of each name where its authors link one file (their READMEs' model zoos; TokenPose's
# README links shared folders only).
WEIGHT_FILES: dict[str, str] = {
    "transpose_r_a3": _TP + "tp_r_256x192_enc3_d256_h1024_mh8.pth",
    "transpose_r_a4": _TP + "tp_r_256x192_enc4_d256_h1024_mh8.pth",
    "transpose_h_s": _TP + "tp_h_32_256x192_enc4_d64_h128_mh1.pth",
    "transpose_h_a4": _TP + "tp_h_48_256x192_enc4_d96_h192_mh1.pth",
    "transpose_h_a6": _TP + "tp_h_48_256x192_enc6_d96_h192_mh1.pth",
    "uniformer_s_256x192": _UF.format("162R0JuTpf3gpLe1IK6oxRoQK7JSj4ylx"),
    "uniformer_s_384x288": _UF.format("163vuFkpcgVOthC05jCwjGzo78Nr0eikW"),
    "uniformer_b_256x192": _UF.format("15tzJaRyEzyWp2mQhpjDbBzuGoyCaJJ-2"),
    "uniformer_b_384x288": _UF.format("15qtUaOR_C7-vooheJE75mhA9oJQt3gSx"),
}


@dataclass(frozen=True)
class Pose2DSpec:
    """A registered name: its family, model class and config."""

    name: str
    family: str
    model_cls: type[nn.Module]
    config: Any  # the family's config dataclass (a `Pose2DConfig`)

    @property
    def pipeline(self) -> HeatmapPipeline:
        return FAMILIES[self.family].pipeline

    def build(self, **overrides: Any) -> nn.Module:
        known = {f.name for f in dataclasses.fields(self.config)}
        if set(overrides) - known:
            raise TypeError(
                f"unknown config fields {sorted(set(overrides) - known)} for {self.name}; known: {sorted(known)}"
            )
        return self.model_cls(dataclasses.replace(self.config, **overrides))


@functools.cache
def registry() -> dict[str, Pose2DSpec]:
    """Every name of the families whose module is present -> its spec (imports the model modules once)."""
    specs: dict[str, Pose2DSpec] = {}
    for family, fam in FAMILIES.items():
        try:
            module = importlib.import_module(fam.module)
        except ModuleNotFoundError as exc:
            if exc.name != fam.module:
                raise
            log.warning("%s is not installed: its models are not registered", fam.module)
            continue
        model_cls = getattr(module, fam.model_class)
        for name, config in module.VARIANTS.items():
            specs[name] = Pose2DSpec(name, family, model_cls, config)
    return specs


def names() -> list[str]:
    """The registered names, sorted."""
    return sorted(registry())


def spec(name: str) -> Pose2DSpec:
    specs = registry()
    if name not in specs:
        raise KeyError(f"unknown 2D pose model {name!r}; known: {', '.join(sorted(specs))}")
    return specs[name]


def family_of(name: str) -> str:
    """The family a name belongs to, from its prefix (no model import)."""
    family = name.split("_", 1)[0]
    if family not in FAMILIES:
        raise KeyError(f"{name!r} is not a 2D pose model name (transpose_*, tokenpose_*, uniformer_*)")
    return family


def weights_source(name: str) -> str:
    """Where the authors publish the weights of `name`, as a sentence fragment."""
    fam = FAMILIES[family_of(name)]
    if name in WEIGHT_FILES:
        return f"{WEIGHT_FILES[name]} ({fam.weights.split(':', 1)[0]})"
    return fam.weights


def create_pose2d(
    name: str, weights: str | Path | None = None, device: DeviceLike = None, **overrides: Any
) -> nn.Module:
    """Build the model `name` (config fields in `overrides` win), load `weights` strictly if given, and
    return it in eval mode on `device` (None: CUDA when present).

    Without weights the model is randomly initialised: for tests and benchmarks only, never for
    keypoints (`hotpose.models.detector.heatmap_pose` refuses it).
    """
    s = spec(name)
    model = s.build(**overrides)
    if weights is not None:
        sd, header = read_weights(weights)
        if header is not None:
            raise CheckpointError(
                f"{weights} is a hotpose lifter checkpoint ({header.get('name')!r}), not weights for {name}"
            )
        hint = f"is it the authors' {name} checkpoint? they publish them at {weights_source(name)}"
        load_strict(model, sd, str(weights), hint=hint)
    return model.to(pick_device(device)).eval()


__all__ = [
    "FAMILIES",
    "Family",
    "Pose2DConfig",
    "Pose2DSpec",
    "WEIGHT_FILES",
    "create_pose2d",
    "family_of",
    "names",
    "registry",
    "spec",
    "weights_source",
]
