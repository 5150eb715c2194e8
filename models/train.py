"""Training a lifter on motion capture (`hotpose train-lifter`).

Windows are drawn from the training subjects (clips weighted by length),
augmented (speed resampling, bone-length scaling, mirroring, random cameras
and focal lengths, detector-like 2D noise; `hotpose.models.data.Augment`), and the
model is fit with the MixSTE/HoT losses: joint-weighted MPJPE + 0.5 x
temporal consistency + 2 x mean velocity error, AdamW with linear warm-up and
cosine decay. Checkpoints carry the config, the data hash and the
validation metrics, so a checkpoint rebuilds its own model.

A run is configured by `TrainConfig`, four groups: `RunSettings` (data, output, seed, device),
`LifterSetup` (which model and how it starts), `Optimisation` (steps, learning-rate schedule) and
`Augmentation` (how training windows are varied). Several runs chained, each starting from the
one before, are a recipe (`hotpose.models.recipe`).
"""

from __future__ import annotations

import copy
import difflib
import logging
import math
import time
import types
import typing
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hotpose.models import Lifter, create_lifter, save_checkpoint
from hotpose.models.data import (
    Augment,
    Clip,
    DetectorNoise,
    EvalView,
    data_hash,
    eval_views,
    load_clips,
    rig_proportions,
    split_by_subject,
    training_sample,
)
from hotpose.models.evaluate import evaluate
from hotpose.models.hot import HoTMixSTE

log = logging.getLogger(__name__)

# Per-joint weights of the weighted MPJPE (MixSTE / HoT): extremities count more.
JOINT_WEIGHTS = torch.tensor([1, 1, 2.5, 2.5, 1, 2.5, 2.5, 1, 1, 1, 1.5, 1.5, 4, 4, 1.5, 4, 4], dtype=torch.float32)


EMBED_PARAMS = {"x_token", "pos_embed_token", "Temporal_pos_embed", "Spatial_pos_embed"}


@dataclass(frozen=True)
class RunSettings:
    """Where the data comes from, where the result goes, and how the run uses the machine."""

    data: Path  # mocap npz (the format of shared/mocap)
    out: Path  # the checkpoint to write
    seed: int = 0
    device: str = "cpu"  # "cuda" to train on a GPU
    amp: bool = False  # bfloat16 autocast for the forward pass (on a GPU; the weights stay float32)
    threads: int | None = None
    # Processes that draw training windows (0: in the training process, one stream of `seed`;
    # N: worker i draws from seed (seed, i), so a GPU is not left waiting on numpy)
    workers: int = 0
    val_every: int = 250  # steps between quick validations (8 clips), each also saving `out`
    val_clips: int = 0  # recorded only: validation uses 8 clips during training and all at the end
    time_limit_min: float = 0.0  # stop (and save) after this many minutes; 0: no limit
    half: bool = True  # store the final weights as float16


@dataclass(frozen=True)
class LifterSetup:
    """Which lifter is trained and how it starts."""

    model: str = "hot_mixste"
    overrides: dict[str, Any] = field(default_factory=dict)  # lifter config fields, e.g. dim
    init: Path | None = None  # continue from this checkpoint (its config; `overrides` must be empty)
    # Start a HoT-MixSTE from a trained MixSTE of the same size: every shared tensor is copied and
    # only HoT's own (pos_embed_token, x_token, cross_attention.*) start fresh (zero queries).
    warm_start: Path | None = None
    # Double the width of the `init` model before training (`widen`: dim, heads and MLP doubled,
    # the output unchanged), to give a trained model more capacity without starting over.
    widen: bool = False
    # Start HoT's zero-initialised time tensors (Temporal_pos_embed, pos_embed_token, x_token) from
    # sinusoidal time codes instead of zeros; see `init_time_codes`.
    time_init: bool = True
    # HoT only: weight of an auxiliary loss that guides the Token Recovering Attention to attend to
    # kept tokens near each query's frame (cross-entropy to a Gaussian over time, sigma = frames /
    # token_num), fading linearly to 0 at `recovery_guide_until` of the steps. See `RecoveryGuide`.
    recovery_guide: float = 0.1
    recovery_guide_until: float = 0.5


@dataclass(frozen=True)
class Optimisation:
    """AdamW over `steps` batches of `batch` windows: linear warm-up, then cosine decay to 2% of `lr`."""

    steps: int = 2000
    batch: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 100
    # The zero-initialised tokens (HoT's recovery queries and token positions, the position
    # embeddings) learn this many times faster, without weight decay: with Adam a zero-initialised
    # parameter moves about lr per step, and until HoT's queries differ every recovered frame of a
    # window gets the same output (measured: a plateau near the mean pose for 500+ steps at 1x).
    embed_lr_mult: float = 20.0
    # Decay of an exponential moving average of the weights (`WeightAverage`); 0: off. When on,
    # validation and the file at `out` use the average, and the last step's own weights are saved
    # next to it (`raw_path`) and validated too, so the two are compared in the same run.
    ema: float = 0.0
    # Stop (and save) after this many steps while the schedule still runs over `steps`; 0: run them
    # all. What `time_limit_min` does by the clock, by a count that repeats on any machine.
    stop_after: int = 0


@dataclass(frozen=True)
class Augmentation:
    """How the training windows are drawn and varied (`WindowSampler`, `Augment`)."""

    rig_balance: float = 0.5  # see `clip_weights`
    retarget_p: float = 0.0  # fraction of windows retargeted to a blend of families (`Augment`)
    swing_p: float = 0.0  # fraction of windows given new poses by `swing_limbs` (`Augment`)
    pad_p: float = 0.0  # fraction of windows that may run off a clip's ends, edge-padded (`Augment`)
    aim_p: float = 0.0  # fraction of windows seen by a camera turned off the subject (`Augment`)
    # ranges of the training cameras' focal length (px in a 1000 px image) and distance (m) (`Augment`)
    focal: tuple[float, float] = Augment.focal
    distance: tuple[float, float] = Augment.distance


# The groups of a TrainConfig, by attribute name.
GROUPS: dict[str, type[RunSettings] | type[LifterSetup] | type[Optimisation] | type[Augmentation]] = {
    "run": RunSettings,
    "lifter": LifterSetup,
    "optim": Optimisation,
    "augment": Augmentation,
}
# Flat field name (`lr`, the CLI's and the checkpoints' name) -> the group that holds it.
FLAT_FIELDS: dict[str, str] = {f.name: group for group, cls in GROUPS.items() for f in fields(cls)}


@dataclass(frozen=True, init=False)
class TrainConfig:
    """One training run: four groups of settings.

    Also built and read by the flat field names (`TrainConfig(data=..., out=..., lr=3e-4)`,
    `cfg.lr`, `dataclasses.replace(cfg, device="cuda")`), which is how the command line and the
    checkpoints name them: a flat keyword replaces that field in its group, and a flat attribute
    reads it from its group. Checkpoints store the flat dict (`flat_dict`); `from_flat` reads it back.
    """

    run: RunSettings
    lifter: LifterSetup
    optim: Optimisation
    augment: Augmentation

    def __init__(
        self,
        data: Path | None = None,
        out: Path | None = None,
        *,
        run: RunSettings | None = None,
        lifter: LifterSetup | None = None,
        optim: Optimisation | None = None,
        augment: Augmentation | None = None,
        **flat: Any,
    ) -> None:
        if data is not None:
            flat["data"] = data
        if out is not None:
            flat["out"] = out
        for key in flat:
            if key not in FLAT_FIELDS:
                raise TypeError(f"TrainConfig has no field {key!r}{_did_you_mean(key)}")
        given = {"run": run, "lifter": lifter, "optim": optim, "augment": augment}
        for name, cls in GROUPS.items():
            mine = {k: v for k, v in flat.items() if FLAT_FIELDS[k] == name}
            base = given[name]
            group = cls(**mine) if base is None else replace(base, **mine) if mine else base
            object.__setattr__(self, name, group)

    def __getattr__(self, name: str) -> Any:
        """A flat field (`cfg.lr`) read from its group (`cfg.optim.lr`)."""
        group = FLAT_FIELDS.get(name)
        if group is None:
            raise AttributeError(f"TrainConfig has no attribute {name!r}")
        return getattr(getattr(self, group), name)

    def flat_dict(self) -> dict[str, Any]:
        """The flat fields, paths as text: the `train_config` a checkpoint's metadata stores."""
        out: dict[str, Any] = {}
        for group in GROUPS:
            for key, value in asdict(getattr(self, group)).items():
                out[key] = str(value) if isinstance(value, Path) else value
        return out

    @classmethod
    def from_flat(cls, values: Mapping[str, Any]) -> TrainConfig:
        """A config from flat fields as text formats hold them (paths as strings, pairs as lists,
        whole numbers for floats): a recipe phase, or the `train_config` of a checkpoint's metadata
        (older checkpoints lack later fields, which keep their defaults).

        Raises ValueError naming the key: an unknown field, a value of the wrong type, no data / out.
        """
        typed: dict[str, Any] = {}
        for key, value in values.items():
            if key not in FLAT_FIELDS:
                raise ValueError(f"unknown key {key!r}{_did_you_mean(key)}")
            hint = typing.get_type_hints(GROUPS[FLAT_FIELDS[key]])[key]
            typed[key] = _coerce(key, value, hint)
        for key in ("data", "out"):
            if key not in typed:
                raise ValueError(f"missing key {key!r}")
        return cls(**typed)


def _did_you_mean(key: str) -> str:
    close = difflib.get_close_matches(key, list(FLAT_FIELDS), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """`value` as the field type `hint` (Path, bool, int, float, str, tuple, dict, X | None)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))
        return _coerce(key, value, inner)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if hint is Path and isinstance(value, str | Path):
        return Path(value)
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and number and float(value).is_integer():
        return int(value)
    if hint is float and number:
        return float(value)
    if hint is str and isinstance(value, str):
        return value
    if origin is tuple and isinstance(value, list | tuple) and len(value) == len(args):
        return tuple(_coerce(key, v, a) for v, a in zip(value, args, strict=True))
    if origin is dict and isinstance(value, Mapping):
        return dict(value)
    want = getattr(hint, "__name__", str(hint))
    raise ValueError(f"key {key!r} must be {want}, got {value!r}")


def lifter_loss(pred: Tensor, gt: Tensor) -> tuple[Tensor, dict[str, float]]:
    """Weighted MPJPE + 0.5 temporal consistency + 2 mean velocity error; pred, gt [B, T, J, 3]."""
    w = JOINT_WEIGHTS.to(pred.device)
    wmpjpe = (torch.linalg.vector_norm(pred - gt, dim=-1) * w).mean()
    dp = pred[:, 1:] - pred[:, :-1]
    dg = gt[:, 1:] - gt[:, :-1]
    tc = (dp.pow(2).sum(-1) * w).mean()
    mpjve = torch.linalg.vector_norm(dp - dg, dim=-1).mean()
    loss = wmpjpe + 0.5 * tc + 2.0 * mpjve
    return loss, {"wmpjpe": wmpjpe.item(), "tc": tc.item(), "mpjve": mpjve.item()}


def clip_weights(clips: list[Any], rig_balance: float = 1.0) -> np.ndarray:
    """Sampling probability per clip: each skeleton family (`Clip.rig`) gets a share proportional
    to its frame count to the power `rig_balance` (1: plain frame counts; 0.5: a family with a
    quarter of the frames gets half the share of the big one), and within a family clips count by
    length. The families place joints differently (the shared CMU file: shoulders 0.23 m apart on
    one, 0.37 m on another), so one dominant family would make the model learn its definitions."""
    lengths = np.array([len(c.joints) for c in clips], dtype=np.float64)
    rigs = [getattr(c, "rig", "") for c in clips]
    per_rig = {r: sum(n for n, q in zip(lengths, rigs, strict=True) if q == r) for r in set(rigs)}
    share = {r: n**rig_balance for r, n in per_rig.items()}
    total = sum(share.values())
    p = np.array([n / per_rig[r] * share[r] / total for n, r in zip(lengths, rigs, strict=True)])
    weights: np.ndarray = p / p.sum()
    return weights


class WindowSampler:
    def __init__(
        self,
        clips: list[Any],
        frames: int,
        seed: int | list[int],
        aug: Augment | None = None,
        noise: DetectorNoise | None = None,
        rig_balance: float = 1.0,
    ) -> None:
        self.clips = clips
        self.p = clip_weights(clips, rig_balance)
        self.frames = frames
        self.rng = np.random.default_rng(seed)
        self.aug = aug or Augment()
        self.noise = noise or DetectorNoise()
        self.proportions = list(rig_proportions(clips).values()) if self.aug.retarget_p > 0 else None

    def batch(self, n: int) -> tuple[Tensor, Tensor]:
        xs, ys = [], []
        for i in self.rng.choice(len(self.clips), size=n, p=self.p):
            x, y = training_sample(self.clips[i], self.frames, self.rng, self.aug, self.noise, self.proportions)
            xs.append(x)
            ys.append(y)
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


class _WindowStream(torch.utils.data.IterableDataset[tuple[Tensor, Tensor]]):
    """Endless training batches for a DataLoader; each worker draws from its own seed."""

    def __init__(self, clips: list[Any], frames: int, cfg: TrainConfig, aug: Augment) -> None:
        self.clips, self.frames, self.cfg, self.aug = clips, frames, cfg, aug

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        info = torch.utils.data.get_worker_info()
        seed = [self.cfg.run.seed, info.id if info is not None else 0]
        sampler = WindowSampler(self.clips, self.frames, seed, aug=self.aug, rig_balance=self.cfg.augment.rig_balance)
        while True:
            yield sampler.batch(self.cfg.optim.batch)


def window_batches(
    clips: list[Any], frames: int, cfg: TrainConfig, aug: Augment
) -> Generator[tuple[Tensor, Tensor], None, None]:
    """Training batches (2D [B, T, 17, 2], 3D [B, T, 17, 3]), drawn in this process from `cfg.run.seed`
    (`workers` 0, the stream every earlier training command used) or by `workers` processes."""
    if cfg.run.workers <= 0:
        sampler = WindowSampler(clips, frames, cfg.run.seed, aug=aug, rig_balance=cfg.augment.rig_balance)
        while True:
            yield sampler.batch(cfg.optim.batch)
    loader = torch.utils.data.DataLoader(
        _WindowStream(clips, frames, cfg, aug),
        batch_size=None,
        num_workers=cfg.run.workers,
        pin_memory=cfg.run.device.startswith("cuda"),
        prefetch_factor=4,
        persistent_workers=True,
    )
    yield from loader


def train(cfg: TrainConfig, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train, validate and save `cfg.run.out`; returns the final validation metrics. `on_step(step)` is
    called after every optimiser step (a progress bar's).

    The steps below run in this order because the order of random draws is part of the result:
    the seed is set first, the model's fresh weights are drawn next, the windows last, so a fixed
    seed gives the same weights.
    """
    run = cfg.run
    if run.threads:
        torch.set_num_threads(run.threads)
    torch.manual_seed(run.seed)
    train_clips, val_clips = load_split(run.data)
    device = torch.device(run.device)
    model = build_lifter(cfg.lifter, device)
    guide = RecoveryGuide(model) if cfg.lifter.recovery_guide > 0 and hasattr(model, "cross_attention") else None
    batches = window_batches(train_clips, model.config.frames, cfg, augment_for(cfg.augment))
    opt = make_optimizer(model, cfg.optim)
    views_all = eval_views(val_clips)
    views_quick = eval_views(val_clips[:: max(len(val_clips) // 8, 1)][:8])
    meta: dict[str, Any] = {
        "train_config": cfg.flat_dict(),
        "data_sha256": data_hash(run.data),
        "val_subjects": sorted({c.subject for c in val_clips}),
        "history": [],
    }
    average = WeightAverage(model, cfg.optim.ema) if cfg.optim.ema > 0 else None
    t0 = time.time()
    steps_done = fit(cfg, model, opt, batches, guide, average, views_quick, meta, device, on_step)
    batches.close()  # stops the workers, if any
    meta["steps_done"] = steps_done
    meta["train_seconds"] = round(time.time() - t0)
    return finish(cfg, model, average, views_all, meta)


def load_split(data: Path) -> tuple[list[Clip], list[Clip]]:
    """The clips of `data`, split into training and validation subjects (`split_by_subject`)."""
    clips = load_clips(data)
    train_clips, val_clips = split_by_subject(clips)
    log.info(
        "train: %d clips, %d frames; validation: %d clips, %d frames (subjects %s)",
        len(train_clips),
        sum(len(c.joints) for c in train_clips),
        len(val_clips),
        sum(len(c.joints) for c in val_clips),
        sorted({c.subject for c in val_clips}),
    )
    return train_clips, val_clips


def build_lifter(setup: LifterSetup, device: torch.device) -> Lifter:
    """The model to train, in training mode: fresh, or from `init` (then widened if `widen`), or
    warm-started from a MixSTE; fresh time tensors get sinusoidal codes (`time_init`)."""
    model = create_lifter(setup.model, weights=setup.init, device=device, **setup.overrides).train()
    if setup.init is not None:
        log.info("continuing from %s", setup.init)
    if setup.widen:
        if setup.init is None:
            raise ValueError("widen needs a checkpoint to start from (init)")
        model = widen(model).train()
        log.info("widened to dim %d, %d heads", model.config.dim, model.config.num_heads)
    if setup.warm_start is not None:
        fresh = warm_start(model, setup.warm_start)
        log.info("warm start from %s; fresh tensors: %s", setup.warm_start, fresh)
    if setup.time_init and setup.init is None:
        started = init_time_codes(model)
        if started:
            log.info("time codes: %s", started)
    return model


def augment_for(settings: Augmentation) -> Augment:
    """The window augmentation of these settings (the rest of `Augment` at its defaults)."""
    return Augment(
        retarget_p=settings.retarget_p,
        swing_p=settings.swing_p,
        pad_p=settings.pad_p,
        aim_p=settings.aim_p,
        focal=settings.focal,
        distance=settings.distance,
    )


def make_optimizer(model: Lifter, optim: Optimisation) -> torch.optim.AdamW:
    """AdamW in two groups: the zero-initialised tokens and position embeddings (`EMBED_PARAMS`) at
    `embed_lr_mult` times the learning rate without weight decay, and the rest. Each group's
    "mult" scales the learning rate `fit` sets per step."""
    embed: list[torch.nn.Parameter] = []
    other: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        (embed if name in EMBED_PARAMS else other).append(p)
    return torch.optim.AdamW([
        {"params": other, "mult": 1.0, "weight_decay": optim.weight_decay},
        {"params": embed, "mult": optim.embed_lr_mult, "weight_decay": 0.0},
    ], lr=optim.lr)  # fmt: skip


def learning_rate(step: int, optim: Optimisation) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to 2% of `lr` at `steps`."""
    if step < optim.warmup:
        return optim.lr * (step + 1) / optim.warmup
    progress = (step - optim.warmup) / max(optim.steps - optim.warmup, 1)
    return float(optim.lr * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * min(progress, 1.0)))))


def guide_weight(step: int, setup: LifterSetup, steps: int) -> float:
    """The recovery guide's loss weight at `step`: `recovery_guide`, falling linearly to 0 at
    `recovery_guide_until` of the planned `steps`."""
    return setup.recovery_guide * max(0.0, 1.0 - step / max(setup.recovery_guide_until * steps, 1.0))


def training_step(
    model: Lifter,
    opt: torch.optim.Optimizer,
    batch: tuple[Tensor, Tensor],
    guide: RecoveryGuide | None,
    weight: float,
    amp: bool,
) -> tuple[Tensor, dict[str, float]]:
    """One optimiser step on a batch (2D [B, T, J, 2], 3D [B, T, J, 3]) already on the model's
    device: forward (bfloat16 autocast if `amp`), the lifter loss plus `weight` x the recovery
    guide's, backward, gradients clipped to norm 1. Returns the loss and its parts."""
    x, y = batch
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        pred = model(x)
        aux = guide.loss() if guide is not None and weight > 0 else None
    loss, parts = lifter_loss(pred.float(), y)
    if aux is not None:
        parts["guide"] = aux.item()
        loss = loss + weight * aux.float()
    opt.zero_grad(set_to_none=True)
    torch.autograd.backward(loss)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss, parts


def fit(
    cfg: TrainConfig,
    model: Lifter,
    opt: torch.optim.Optimizer,
    batches: Iterator[tuple[Tensor, Tensor]],
    guide: RecoveryGuide | None,
    average: WeightAverage | None,
    views_quick: list[EvalView],
    meta: dict[str, Any],
    device: torch.device,
    on_step: Callable[[int], None] | None = None,
) -> int:
    """The step loop: sets each group's learning rate, steps, updates the average, logs every 25
    steps, validates on `views_quick` and saves `out` every `val_every` steps (into meta's
    history), and stops early at `stop_after` steps or `time_limit_min`. Returns the steps done."""
    optim, run = cfg.optim, cfg.run
    t0 = time.time()
    step = 0
    for step in range(optim.steps):
        for g in opt.param_groups:
            g["lr"] = learning_rate(step, optim) * g["mult"]
        batch = next(batches)
        x, y = (t.to(device, non_blocking=True) for t in batch)
        weight = guide_weight(step, cfg.lifter, optim.steps)
        loss, parts = training_step(model, opt, (x, y), guide, weight, run.amp)
        if average is not None:
            average.update(model)
        if on_step is not None:
            on_step(step)
        if step % 25 == 0:
            log.info(
                "step %d loss %.4f wmpjpe %.1f mm mpjve %.1f mm guide %.3f lr %.2e (%.0f s)",
                step,
                loss.item(),
                1000 * parts["wmpjpe"],
                1000 * parts["mpjve"],
                parts.get("guide", 0.0),
                learning_rate(step, optim),
                time.time() - t0,
            )
        last = step == optim.steps - 1
        over_time = run.time_limit_min > 0 and time.time() - t0 > 60 * run.time_limit_min
        stop = over_time or 0 < optim.stop_after <= step + 1
        if (step + 1) % run.val_every == 0 and not last and not stop:
            shown = average.model() if average is not None else model
            metrics = evaluate(shown, views_quick)
            model.train()
            meta["history"].append({"step": step + 1, "seconds": round(time.time() - t0), **metrics})
            log.info("step %d quick validation %s", step + 1, metrics)
            _save(cfg, shown, meta, half=False)
        if stop:
            log.info("%s after %d steps", "time limit reached" if over_time else "stopped (stop_after)", step + 1)
            break
    return step + 1


def finish(
    cfg: TrainConfig,
    model: Lifter,
    average: WeightAverage | None,
    views_all: list[EvalView],
    meta: dict[str, Any],
) -> dict[str, Any]:
    """Validate on every validation view and save `out` (with `ema`: the average there, and the
    last step's own weights, validated too, at `raw_path(out)`). Returns the metrics of `out`."""
    if average is not None:
        raw = evaluate(model, views_all)
        meta["val_metrics_raw"] = raw
        log.info("final validation of the last step's own weights %s", raw)
        _save(cfg, model, meta, half=cfg.run.half, path=raw_path(cfg.run.out))
        model = average.model()
    metrics = evaluate(model, views_all)
    meta["val_metrics"] = metrics
    log.info("final validation %s", metrics)
    _save(cfg, model, meta, half=cfg.run.half)
    return metrics


def raw_path(out: Path) -> Path:
    """Where `train` keeps the last step's own weights when it ships their average (`ema`)."""
    return out.with_name(f"{out.stem}_raw{out.suffix}")


class WeightAverage:
    """Exponential moving average of a model's weights, for a smoother result than the last step.

    Why: a batch is 8 windows, so each step's gradient is noisy (the logged training loss swings
    by 20% from step to step) and the last step's weights carry that noise. The average over the
    last ~1 / (1 - decay) steps does not. The decay starts at 0.1 and ramps up to its value
    (`(1 + n) / (10 + n)` after n updates), so the first steps are not outweighed by the start.
    """

    def __init__(self, model: Lifter, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"average decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.copy = copy.deepcopy(model).eval()
        for p in self.copy.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: Lifter) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        mine = self.copy.state_dict()
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                mine[key].lerp_(value, 1.0 - d)
            else:
                mine[key].copy_(value)
        self.updates += 1

    def model(self) -> Lifter:
        """The averaged model (eval mode; shares nothing with the trained one)."""
        return self.copy


class RecoveryGuide:
    """Auxiliary loss that teaches HoT's Token Recovering Attention to recover frame t from the
    kept tokens near t.

    Why: the recovery queries are shared by every window, so they can only pick tokens by time,
    and the trunk's features only carry time if something asks for it. Measured on our CPU
    budget: with the plain losses the recovery attention stayed uniform (entropy = log 81, the
    attended time 60 frames from the query's on average, i.e. chance) and the model sat at the
    mean-pose plateau. This loss (cross-entropy of each query's attention, averaged over heads,
    to a Gaussian over the kept frames' times) gives the attention and the trunk that reason from
    step 0; it fades out so the final model is trained by the paper's losses alone. Training
    only: the model, its forward pass and its checkpoint are unchanged.
    """

    def __init__(self, model: Lifter) -> None:
        hot: Any = model  # a HoTMixSTE with config.hot (hooks cross_attention and token_pruning)
        self.model = hot
        self.sigma = hot.config.frames / hot.config.token_num
        self.inputs: tuple[Tensor, Tensor] | None = None
        self.kept: Tensor | None = None
        hot.cross_attention.register_forward_hook(self._keep_inputs)
        hot.token_pruning.register_forward_hook(self._keep_index)

    def _keep_inputs(self, module: torch.nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        self.inputs = (args[0], args[1])

    def _keep_index(self, module: torch.nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        self.kept = out  # [B, t] kept frames of the last forward pass

    def loss(self) -> Tensor:
        if self.inputs is None or self.kept is None:
            raise RuntimeError("RecoveryGuide.loss() before a forward pass")
        query, key = self.inputs
        attn = self.model.cross_attention
        n, lk, c = key.shape
        h = attn.num_heads
        q = attn.linear_q(query).view(-1, query.shape[1], h, c // h).transpose(1, 2)  # [1, H, T, D]
        k = attn.linear_k(key).view(n, lk, h, c // h).transpose(1, 2)  # [N, H, t, D]
        logp = torch.log_softmax(q @ k.transpose(-1, -2) / math.sqrt(c // h), dim=-1)  # [N, H, T, t]
        kept = self.kept  # [B, t]
        b = kept.shape[0]
        times = kept.float().repeat_interleave(n // b, dim=0)  # [N, t], rows in (batch, joint) order
        frames = torch.arange(q.shape[2], dtype=torch.float32, device=key.device)
        target = torch.softmax(-((times[:, None, :] - frames[None, :, None]) ** 2) / (2 * self.sigma**2), -1)
        return -(target[:, None] * logp).sum(-1).mean()  # [N, 1, T, t] x [N, H, T, t]


def time_code(positions: Tensor, dim: int) -> Tensor:
    """Sinusoidal codes [N, dim] of (fractional) frame positions [N], periods 2 to ~2000 frames."""
    freqs = torch.exp(-math.log(1000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # [dim/2]
    angle = positions.float()[:, None] * freqs[None, :]
    code = torch.zeros(len(positions), dim)
    code[:, 0::2] = torch.sin(angle)
    code[:, 1::2] = torch.cos(angle[:, : dim // 2])
    return code


@torch.no_grad()
def init_time_codes(model: Lifter, amplitude: float = 0.5) -> list[str]:
    """Fill the still-zero time tensors with sinusoidal codes of the frame each one stands for.

    With everything zero, HoT's recovery is at a saddle: the queries (`x_token`) are equal, so
    every recovered frame gets the same mix of kept tokens and the gradient that would tell them
    apart is zero too (measured: a plateau at the mean pose for the whole CPU budget). Codes of
    time break it from step 0: query t starts as the code of frame t, and kept token k (of
    `token_num`, in time order) as the code of the middle of the k-th span. The architecture and
    the checkpoint format are unchanged; only the starting point differs. Returns the names set."""
    cfg: Any = model.config
    if not hasattr(cfg, "dim"):
        return []  # not a transformer (the per-frame MLP)
    dim, frames = cfg.dim, cfg.frames
    t = torch.arange(frames)
    targets = {"Temporal_pos_embed": t, "x_token": t}
    if getattr(cfg, "hot", False):
        targets["pos_embed_token"] = (torch.arange(cfg.token_num) + 0.5) * frames / cfg.token_num
    done = []
    params = dict(model.named_parameters())
    for name, pos in targets.items():
        p = params.get(name)
        if p is not None and not p.any():
            p.copy_(amplitude * time_code(pos, dim)[None])
            done.append(name)
    return done


HOT_ONLY = ("pos_embed_token", "x_token", "cross_attention.")


def warm_start(model: Lifter, path: Path) -> list[str]:
    """Copy a MixSTE checkpoint into a HoT-MixSTE of the same size; returns the keys left fresh.

    Strict otherwise: a shared key that is missing or differs in shape is an error.
    """
    from hotpose.models.checkpoint import CheckpointError, read_weights

    sd, _ = read_weights(path)
    own = model.state_dict()
    fresh = [k for k in own if k not in sd]
    bad = [k for k in fresh if not k.startswith(HOT_ONLY)]
    extra = [k for k in sd if k not in own]
    shapes = [k for k in sd if k in own and sd[k].shape != own[k].shape]
    if bad or extra or shapes:
        raise CheckpointError(f"{path}: cannot warm-start: missing {bad}, unexpected {extra}, shape mismatch {shapes}")
    model.load_state_dict({**own, **{k: v.float() for k, v in sd.items()}})
    return fresh


def widen(model: Lifter, noise: float = 0.1, seed: int = 0) -> HoTMixSTE:
    """A lifter twice as wide that computes the same function (Net2Net-style growth).

    Every channel of the residual stream and of the MLPs is duplicated, and the attention heads
    with it (`num_heads` doubles, the head size stays, so the softmax scale is unchanged): copies
    of the same input channel carry the same activation, LayerNorm sees the same mean and
    variance, and a Linear that reads duplicated channels gets each column split into two halves
    W/2 + E and W/2 - E, whose sum is W. E (`noise` x the weight's std, Gaussian, fixed `seed`)
    makes the copies differ in what they learn from the first step; the output is unchanged up to
    float rounding. Used to grow a trained small model instead of training a wide one from scratch.
    """
    if not isinstance(model, HoTMixSTE):
        raise ValueError(f"widen grows a (HoT-)MixSTE, not a {type(model).__name__}")
    cfg = model.config
    wide_cfg = replace(cfg, dim=2 * cfg.dim, num_heads=2 * cfg.num_heads, mlp_hidden_dim=2 * cfg.mlp_hidden_dim)
    gen = torch.Generator().manual_seed(seed)

    def split_inputs(w: Tensor) -> Tensor:  # [out, in] -> [out, 2 * in]
        e = noise * w.std() * torch.randn(w.shape, generator=gen)
        return torch.cat([w / 2 + e, w / 2 - e], dim=1)

    state: dict[str, Tensor] = {}
    for key, w in model.state_dict().items():
        w = w.detach().float().cpu()  # the split noise comes from a CPU generator
        if key.endswith("attn.qkv.weight") or key.endswith("attn.qkv.bias"):
            # rows are (q, k, v) x heads x head size: duplicate the heads within each of q, k, v
            w = torch.cat([torch.cat([part, part]) for part in w.chunk(3)])
            if w.ndim == 2:
                w = split_inputs(w)
        elif w.ndim == 3:  # position embeddings and tokens [1, N, C]
            w = torch.cat([w, w], dim=-1)
        elif w.ndim == 2:  # Linear [out, in]
            if not key.startswith("head."):  # the 3D output stays 3 wide
                w = torch.cat([w, w])
            if key != "Spatial_patch_to_embedding.weight":  # the 2D input stays 2 wide
                w = split_inputs(w)
        elif not key.startswith("head.1."):  # biases and LayerNorm affine [C]
            w = torch.cat([w, w])
        state[key] = w
    wide = HoTMixSTE(wide_cfg)
    wide.load_state_dict(state, strict=True)
    return wide.to(next(model.parameters()).device)


def _save(cfg: TrainConfig, model: Lifter, meta: dict[str, Any], half: bool, path: Path | None = None) -> None:
    config = model.config.to_dict()
    save_checkpoint(path or cfg.run.out, cfg.lifter.model, config, model.state_dict(), meta=meta, half=half)
