"""hotpose models: the 3D lifters (the 2D stage is `hotpose.models.detector`).

Entry points: `create_lifter(name, weights=None, device=None, **overrides)`, and
`resolve_weights(name, weights)` for the file it should load.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

from torch import Tensor

from hotpose.models.checkpoint import CheckpointError, load_strict, read_weights, save_checkpoint
from hotpose.models.device import DeviceLike, pick_device
from hotpose.models.hot import HoTMixSTE, LifterConfig
from hotpose.models.kind import LifterKind
from hotpose.models.mhformer import MHFormer, MHFormerConfig
from hotpose.models.mlp_lifter import MLPConfig, MLPLifter
from hotpose.models.motionbert import MotionBERT, MotionBERTConfig
from hotpose.models.tpc_mixste import TPCMixSTE, TPCMixSTEConfig

# Every registered lifter exposes .config (with .frames, .joints and .to_dict()) and .KIND (`LifterKind`:
# seq2seq or seq2frame, 2 or 3 input channels), from which callers derive how to lift with it.
Lifter = HoTMixSTE | MLPLifter | MotionBERT | TPCMixSTE | MHFormer

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


ConfigT = TypeVar("ConfigT", LifterConfig, MLPConfig, MotionBERTConfig, TPCMixSTEConfig, MHFormerConfig)


@dataclass(frozen=True)
class LifterSpec(Generic[ConfigT]):
    config_cls: type[ConfigT]
    model_cls: Callable[[ConfigT], Lifter]
    fixed: dict[str, Any]  # config fields the name implies
    default_weights: str | None = None  # file in models/weights shipped with the project
    published: str = ""  # where the authors publish weights for it (error messages, docs)
    # sizes an official state_dict (which carries no config) implies; None: the config's defaults are
    # the official sizes
    infer_config: Callable[[dict[str, Tensor]], dict[str, Any]] | None = None

    def build(self, **config: Any) -> Lifter:
        unknown = set(config) - {f.name for f in fields(self.config_cls)}
        if unknown:
            known = sorted(f.name for f in fields(self.config_cls))
            raise TypeError(f"unknown config fields {sorted(unknown)}; known: {known}")
        return self.model_cls(self.config_cls(**{**config, **self.fixed}))


def _infer_official_config(sd: dict[str, Tensor]) -> dict[str, Any]:
    """Sizes an official state_dict implies (the rest keeps the defaults)."""
    cfg: dict[str, Any] = {}
    if "Spatial_patch_to_embedding.weight" in sd:
        cfg["dim"] = sd["Spatial_patch_to_embedding.weight"].shape[0]
    if "Spatial_pos_embed" in sd:
        cfg["joints"] = sd["Spatial_pos_embed"].shape[1]
    if "Temporal_pos_embed" in sd:
        cfg["frames"] = sd["Temporal_pos_embed"].shape[1]
    if "STEblocks.0.mlp.fc1.weight" in sd:
        cfg["mlp_hidden_dim"] = sd["STEblocks.0.mlp.fc1.weight"].shape[0]
    blocks = {int(k.split(".")[1]) for k in sd if k.startswith("STEblocks.")}
    if blocks:
        cfg["depth"] = max(blocks) + 1
    if "pos_embed_token" in sd:
        cfg["token_num"] = sd["pos_embed_token"].shape[1]
    return cfg


def _infer_tpc_mixste(sd: dict[str, Tensor]) -> dict[str, Any]:
    """MixSTE's sizes (token_num and layer_index leave no trace in the weights: the defaults are the official)."""
    return {k: v for k, v in _infer_official_config(sd).items() if k != "token_num"}


def _infer_motionbert(sd: dict[str, Tensor]) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    if "temp_embed" in sd:
        cfg["frames"] = sd["temp_embed"].shape[1]
    if "pos_embed" in sd:
        cfg["joints"] = sd["pos_embed"].shape[1]
    if "joints_embed.weight" in sd:
        cfg["dim_feat"] = sd["joints_embed.weight"].shape[0]
    if "pos_embed_token" in sd:
        cfg["token_num"] = sd["pos_embed_token"].shape[1]
    return cfg


def _infer_mhformer(sd: dict[str, Tensor]) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    if "norm_1.weight" in sd:
        cfg["frames"] = sd["norm_1.weight"].shape[0]
    for key in ("embedding_1.weight", "embedding_1.0.weight"):
        if key in sd:
            cfg["dim"] = sd[key].shape[0]
    if "Transformer_hypothesis.SHR_blocks.0.mlp.fc1.weight" in sd:
        cfg["mlp_hidden_dim"] = sd["Transformer_hypothesis.SHR_blocks.0.mlp.fc1.weight"].shape[0]
    return cfg


HOT_REPO = "github.com/NationalGAILab/HoT (README: pretrained models)"

# Named variants.
LIFTERS: dict[
    str,
    LifterSpec[LifterConfig]
    | LifterSpec[MLPConfig]
    | LifterSpec[MotionBERTConfig]
    | LifterSpec[TPCMixSTEConfig]
    | LifterSpec[MHFormerConfig],
] = {
    "hot_mixste": LifterSpec(
        LifterConfig, HoTMixSTE, {"hot": True}, "hot_mixste_cmu.pt", HOT_REPO, _infer_official_config
    ),
    "mixste": LifterSpec(LifterConfig, HoTMixSTE, {"hot": False}, "mixste_cmu.pt", HOT_REPO, _infer_official_config),
    "mlp": LifterSpec(MLPConfig, MLPLifter, {}),
    "motionbert": LifterSpec(MotionBERTConfig, MotionBERT, {"hot": False}, None, HOT_REPO, _infer_motionbert),
    "hot_motionbert": LifterSpec(MotionBERTConfig, MotionBERT, {"hot": True}, None, HOT_REPO, _infer_motionbert),
    # seq2frame: the pose of the window's centre frame
    "tpc_mixste": LifterSpec(TPCMixSTEConfig, TPCMixSTE, {}, None, HOT_REPO, _infer_tpc_mixste),
    "mhformer": LifterSpec(MHFormerConfig, MHFormer, {"tpc": False}, None, HOT_REPO, _infer_mhformer),
    "tpc_mhformer": LifterSpec(MHFormerConfig, MHFormer, {"tpc": True}, None, HOT_REPO, _infer_mhformer),
}


def default_weights(name: str) -> Path | None:
    """The weights hotpose ships for this lifter, if any (trained on CMU mocap, see models/weights)."""
    spec = LIFTERS[name]
    if spec.default_weights is None:
        return None
    path = WEIGHTS_DIR / spec.default_weights
    return path if path.is_file() else None


def resolve_weights(name: str, weights: Path | None) -> Path | None:
    """The lifter weights to load: `weights` when given, else the ones hotpose ships for `name`
    (`default_weights`), else None (an untrained model: the caller decides whether that is an error).

    Raises CheckpointError (as `create_lifter` does for a missing file) when `weights` is given but
    is not a file, KeyError for an unknown `name`.
    """
    if name not in LIFTERS:
        raise KeyError(f"unknown lifter {name!r}; known: {', '.join(sorted(LIFTERS))}")
    if weights is not None:
        if not weights.is_file():
            raise CheckpointError(f"weights file not found for lifter {name!r}: {weights}")
        return weights
    return default_weights(name)


def create_lifter(
    name: str = "hot_mixste",
    weights: str | Path | None = None,
    device: DeviceLike = None,
    **overrides: Any,
) -> Lifter:
    """Build a lifter by name, optionally load weights strictly, return it in eval mode.

    `weights` is an official state_dict `.pth` (sizes are read from its
    shapes) or a hotpose checkpoint (its saved config rebuilds the model; the
    name must agree). `overrides` are `LifterConfig` fields and win over both.
    The model maps [B, frames, 17, C] screen-normalised 2D (C = `model.KIND.channels`: x, y, and for
    MotionBERT the keypoint confidence) to root-relative 3D: [B, frames, 17, 3] for seq2seq lifters;
    seq2frame ones return their official output (the kept or all frames) from `forward` and the
    centre frame's pose [B, 17, 3] from `predict_centre`.
    """
    if name not in LIFTERS:
        raise KeyError(f"unknown lifter {name!r}; known: {', '.join(sorted(LIFTERS))}")
    spec = LIFTERS[name]

    sd: dict[str, Tensor] | None = None
    config: dict[str, Any] = {}
    if weights is not None:
        sd, header = read_weights(weights)
        if header is None:
            config = spec.infer_config(sd) if spec.infer_config is not None else {}
        else:
            if header.get("name") != name:
                raise CheckpointError(f"{weights} holds a {header.get('name')!r} lifter, not {name!r}")
            config = {k: v for k, v in header["config"].items() if k not in spec.fixed}
    config.update(overrides)

    model = spec.build(**config)
    if sd is not None:
        load_strict(model, sd, str(weights))
    return model.to(pick_device(device)).eval()


__all__ = [
    "LIFTERS",
    "WEIGHTS_DIR",
    "LifterKind",
    "CheckpointError",
    "HoTMixSTE",
    "Lifter",
    "LifterConfig",
    "create_lifter",
    "default_weights",
    "pick_device",
    "resolve_weights",
    "save_checkpoint",
]
