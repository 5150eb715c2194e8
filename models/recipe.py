"""Training recipes: a lifter's whole training, phase after phase, as data (`models/recipes/*.toml`).

A recipe is a TOML file with an ordered list of phases; `run_recipe` runs them in that order,
each writing OUT/<phase>.pt, and the last phase's file is the result:

    data = "../shared/mocap/cmu_h36m17_30fps.npz"  # optional; relative to the working directory
    data_sha256 = "e8e14a42..."                    # optional; any other file is refused

    [[phase]]
    name = "first"                # letters, digits, '_' and '-'; the output is OUT/first.pt
    overrides = { dim = 64 }      # any flat TrainConfig field but data / out (hotpose.models.train)
    steps = 1200

    [[phase]]
    name = "second"
    init = "first"                # init / warm_start name an earlier phase, whose output it starts from;
    steps = 1000                  # "NAME:raw" is the last step's own weights of a phase trained with `ema`

    [[phase]]
    name = "mean"
    average = ["first", "second"] # the mean of earlier phases' weights (in float32; saved float16)

Everything is checked before any training starts (`plan`): unknown keys, wrong types, references
to a phase that is not defined before, model names and their config fields, the data file.

Resuming: the phases whose output is already complete (a finished `train`, not a snapshot saved
by a quick validation midway) are skipped, up to the first one that is not; from there on every
phase runs, since each later one starts from it. A phase interrupted midway starts over: `train`
keeps no optimiser state to resume from. A complete output trained with other settings than the
recipe's is an error, not silently reused.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from hotpose.models import LIFTERS, save_checkpoint
from hotpose.models.checkpoint import CheckpointError, read_weights
from hotpose.models.data import data_hash
from hotpose.models.train import LifterSetup, TrainConfig, raw_path, train

log = logging.getLogger(__name__)

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
PHASE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
RECIPE_KEYS = {"data", "data_sha256", "phase"}
AVERAGE_KEYS = {"name", "average", "half"}
REFERENCE_KEYS = ("init", "warm_start")
RUNNER_KEYS = {"data": "the recipe's `data` or --data", "out": "OUT/<phase>.pt"}
# Settings that make a phase's output what it is: a finished output is reused only if they match.
# (The run's machine settings, such as device, threads and val_every, and the paths are left out.)
SAME_RESULT = ("lifter", "optim", "augment")


class RecipeError(ValueError):
    """A recipe that cannot run: the message names the file, the phase and the key."""


@dataclass(frozen=True)
class Phase:
    """One step of a recipe: a `train` run, or the mean of earlier phases' weights (`average`).

    `settings` are flat TrainConfig fields (typed by `TrainConfig.from_flat`), without data, out,
    init and warm_start; `init` and `warm_start` are references to earlier phases ("NAME" or
    "NAME:raw").
    """

    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    init: str | None = None
    warm_start: str | None = None
    average: tuple[str, ...] = ()
    half: bool = True  # an averaging phase: store float16 (as `train` stores its final weights)

    @property
    def is_average(self) -> bool:
        return bool(self.average)

    def references(self) -> list[tuple[str, str]]:
        """(key, reference) of every earlier phase this one reads."""
        refs = [(key, ref) for key, ref in (("init", self.init), ("warm_start", self.warm_start)) if ref]
        return refs + [("average", ref) for ref in self.average]


@dataclass(frozen=True)
class Recipe:
    source: str  # the file, for messages
    phases: tuple[Phase, ...]
    data: Path | None = None
    data_sha256: str | None = None


@dataclass(frozen=True)
class Step:
    """A phase ready to run: its output file and, for a training phase, its full config."""

    phase: Phase
    out: Path
    config: TrainConfig | None  # None: an averaging phase
    inputs: tuple[Path, ...] = ()  # an averaging phase's input files


@dataclass(frozen=True)
class RecipeResult:
    out: Path  # the last phase's file: the recipe's result
    metrics: dict[str, Any]  # its final validation metrics ({} for an averaging phase)
    trained: list[str]  # phases run by this call
    skipped: list[str]  # phases found complete and reused


def find_recipe(name_or_path: str | Path) -> Path:
    """A recipe file: the path itself, or the name of one shipped in models/recipes ("hot_mixste_cmu")."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = RECIPES_DIR / f"{path.name}.toml"
    if path.suffix == "" and path.parent == Path() and shipped.is_file():
        return shipped
    known = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.toml")))
    raise RecipeError(f"recipe not found: {name_or_path} (a TOML file, or a shipped recipe: {known})")


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Read and check a recipe file (everything but the data file, which `plan` checks)."""
    path = find_recipe(name_or_path)
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: not valid TOML: {exc}") from exc
    return parse_recipe(doc, str(path))


def parse_recipe(doc: dict[str, Any], source: str = "<recipe>") -> Recipe:
    """A checked `Recipe` from a parsed TOML document; `source` names it in error messages."""
    unknown = sorted(set(doc) - RECIPE_KEYS)
    if unknown:
        raise RecipeError(f"{source}: unknown top-level key {unknown[0]!r} (known: {', '.join(sorted(RECIPE_KEYS))})")
    tables = doc.get("phase")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise RecipeError(f"{source}: no phases: write each as a [[phase]] table")
    data = doc.get("data")
    if data is not None and not isinstance(data, str):
        raise RecipeError(f"{source}: key 'data' must be a path (text), got {data!r}")
    sha = doc.get("data_sha256")
    if sha is not None and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
        raise RecipeError(f"{source}: key 'data_sha256' must be 64 lowercase hex digits, got {sha!r}")
    phases: list[Phase] = []
    for i, table in enumerate(tables):
        phase = _parse_phase(table, i, source)
        _check_references(phase, phases, source)
        phases.append(phase)
    return Recipe(source, tuple(phases), Path(data) if data else None, sha)


def _parse_phase(table: dict[str, Any], index: int, source: str) -> Phase:
    name = table.get("name")
    if not isinstance(name, str) or not PHASE_NAME.fullmatch(name) or name.endswith("_raw"):
        raise RecipeError(
            f"{source}: phase #{index + 1}: 'name' must be letters, digits, '_' or '-' (not ending in _raw), "
            f"got {name!r}"
        )
    where = f"{source}: phase {name!r}"
    if "average" in table:
        unknown = sorted(set(table) - AVERAGE_KEYS)
        if unknown:
            raise RecipeError(f"{where}: an averaging phase takes only {sorted(AVERAGE_KEYS)}, not {unknown[0]!r}")
        refs = table["average"]
        if not isinstance(refs, list) or len(refs) < 2 or not all(isinstance(r, str) for r in refs):
            raise RecipeError(f"{where}: key 'average' must list two or more earlier phases, got {refs!r}")
        half = table.get("half", True)
        if not isinstance(half, bool):
            raise RecipeError(f"{where}: key 'half' must be true or false, got {half!r}")
        return Phase(name, average=tuple(refs), half=half)
    settings = {k: v for k, v in table.items() if k != "name" and k not in REFERENCE_KEYS}
    for key, where_from in RUNNER_KEYS.items():
        if key in settings:
            raise RecipeError(f"{where}: key {key!r} is not set per phase (it is {where_from})")
    refs = {key: table.get(key) for key in REFERENCE_KEYS}
    for key, ref in refs.items():
        if ref is not None and not isinstance(ref, str):
            raise RecipeError(f"{where}: key {key!r} must name an earlier phase, got {ref!r}")
    try:  # types and names of the settings, checked by the config itself
        typed = TrainConfig.from_flat({"data": "-", "out": "-", **settings})
    except (ValueError, TypeError) as exc:
        raise RecipeError(f"{where}: {exc}") from exc
    flat = typed.flat_dict()
    settings = {k: flat[k] for k in settings}
    model = typed.lifter.model
    if model not in LIFTERS:
        raise RecipeError(f"{where}: key 'model': unknown lifter {model!r} (known: {', '.join(sorted(LIFTERS))})")
    config_fields = {f.name for f in fields(LIFTERS[model].config_cls)}
    for key in typed.lifter.overrides:
        if key not in config_fields:
            raise RecipeError(f"{where}: key 'overrides': {model} has no config field {key!r}")
    if typed.lifter.widen and refs["init"] is None:
        raise RecipeError(f"{where}: key 'widen' needs 'init' (a trained phase to widen)")
    return Phase(name, settings, init=refs["init"], warm_start=refs["warm_start"])


def _check_references(phase: Phase, earlier: list[Phase], source: str) -> None:
    by_name = {p.name: p for p in earlier}
    if phase.name in by_name:
        raise RecipeError(f"{source}: phase {phase.name!r} is defined twice")
    for key, ref in phase.references():
        target, _, part = ref.partition(":")
        where = f"{source}: phase {phase.name!r}: key {key!r}"
        if target not in by_name:
            raise RecipeError(f"{where}: no phase {target!r} before it (phases so far: {', '.join(by_name) or 'none'})")
        if part not in ("", "raw"):
            raise RecipeError(f"{where}: {ref!r}: after ':' only 'raw' (the last step's own weights)")
        if part == "raw" and not by_name[target].settings.get("ema", 0.0):
            raise RecipeError(f"{where}: {ref!r}: phase {target!r} keeps no separate last weights (it has no 'ema')")
    if phase.init:
        mine, theirs = _model(phase, earlier), _model(by_name[phase.init.partition(":")[0]], earlier)
        if mine != theirs:
            raise RecipeError(
                f"{source}: phase {phase.name!r}: key 'init': it trains {mine!r} but {phase.init!r} is a {theirs!r}"
            )
    if phase.is_average:
        models = {_model(by_name[r.partition(":")[0]], earlier) for r in phase.average}
        if len(models) > 1:
            raise RecipeError(f"{source}: phase {phase.name!r}: key 'average': mixes lifters {sorted(models)}")


def _model(phase: Phase, earlier: list[Phase]) -> str:
    """The lifter a phase's output holds (an averaging phase: its first input's)."""
    if phase.is_average:
        by_name = {p.name: p for p in earlier}
        return _model(by_name[phase.average[0].partition(":")[0]], earlier)
    return str(phase.settings.get("model", LifterSetup().model))


def _reference_path(out_dir: Path, ref: str) -> Path:
    name, _, part = ref.partition(":")
    path = out_dir / f"{name}.pt"
    return raw_path(path) if part == "raw" else path


def data_file(recipe: Recipe, data: Path | None = None) -> Path:
    """The mocap file a recipe trains on: `data` when given, else the recipe's; checked to exist
    and, when the recipe names one, to have its sha256."""
    path = data or recipe.data
    if path is None:
        raise RecipeError(f"{recipe.source}: no data file: set 'data' in the recipe or pass --data")
    if not path.is_file():
        raise RecipeError(f"{recipe.source}: data file not found: {path}")
    if recipe.data_sha256 is not None and (sha := data_hash(path)) != recipe.data_sha256:
        raise RecipeError(
            f"{recipe.source}: {path} is not the recipe's data (its sha256 is {sha}, "
            f"the recipe's 'data_sha256' is {recipe.data_sha256})"
        )
    return path


def plan(
    recipe: Recipe,
    out_dir: Path,
    data: Path | None = None,
    device: str | None = None,
    threads: int | None = None,
) -> list[Step]:
    """Every phase as a `Step`, checked, without training anything. `data`, `device` and `threads`,
    when given, replace the recipe's for every phase."""
    data = data_file(recipe, data)
    machine = {k: v for k, v in (("device", device), ("threads", threads)) if v is not None}
    steps = []
    for phase in recipe.phases:
        out = out_dir / f"{phase.name}.pt"
        if phase.is_average:
            inputs = tuple(_reference_path(out_dir, ref) for ref in phase.average)
            steps.append(Step(phase, out, None, inputs))
            continue
        refs = {
            key: _reference_path(out_dir, ref)
            for key, ref in (("init", phase.init), ("warm_start", phase.warm_start))
            if ref
        }
        config = TrainConfig.from_flat({**phase.settings, **machine, **refs, "data": data, "out": out})
        steps.append(Step(phase, out, config))
    return steps


def run_recipe(
    recipe: Recipe | str | Path,
    out_dir: Path,
    data: Path | None = None,
    *,
    device: str | None = None,
    threads: int | None = None,
    on_step: Callable[[str, int, int], None] | None = None,
) -> RecipeResult:
    """Run a recipe's phases in order into `out_dir` (OUT/<phase>.pt each), skipping the finished
    ones at the start (see the module docstring); returns the last phase's file and metrics.
    `on_step(phase, step, steps)` is called after every training step (a progress bar's).

    `recipe` is a `Recipe`, a TOML file or the name of a shipped recipe. Raises RecipeError before
    any training when the recipe, its data or an existing output does not fit.
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    steps = plan(recipe, out_dir, data, device=device, threads=threads)
    sha = data_hash(data_file(recipe, data))
    trained: list[str] = []
    skipped: list[str] = []
    for step in steps:
        if not trained and _complete(step, sha):
            log.info("phase %s: complete in %s, skipped", step.phase.name, step.out)
            skipped.append(step.phase.name)
            continue
        log.info("phase %s: %s", step.phase.name, "averaging" if step.config is None else "training")
        if step.config is None:
            average_weights(step.inputs, step.out, {"averaged_from": list(step.phase.average)}, half=step.phase.half)
        else:
            report = None
            if on_step is not None:
                name, total, fn = step.phase.name, step.config.optim.steps, on_step
                report = lambda i, name=name, total=total, fn=fn: fn(name, i, total)  # noqa: E731
            train(step.config, on_step=report)
        trained.append(step.phase.name)
    _, header = read_weights(steps[-1].out)
    metrics = dict((header or {}).get("meta", {}).get("val_metrics", {}))
    return RecipeResult(steps[-1].out, metrics, trained, skipped)


def _complete(step: Step, sha: str) -> bool:
    """Whether `step.out` is the finished output of this phase (raises RecipeError when it is
    finished but with other settings: the recipe changed since)."""
    if not step.out.is_file():
        return False
    try:
        _, header = read_weights(step.out)
    except CheckpointError:
        return False  # unreadable: run the phase again
    meta = (header or {}).get("meta", {})
    if step.config is None:
        return bool(meta.get("averaged_from") == list(step.phase.average))
    if "val_metrics" not in meta or "train_config" not in meta:
        return False  # a snapshot from a quick validation: the phase was interrupted
    done = TrainConfig.from_flat(meta["train_config"])
    differ = [
        key
        for group in SAME_RESULT
        for key, value in vars(getattr(step.config, group)).items()
        if key not in ("init", "warm_start") and getattr(getattr(done, group), key) != value
    ]
    if done.run.seed != step.config.run.seed:
        differ.append("seed")
    if meta.get("data_sha256") != sha:
        differ.append("data")
    if differ:
        shown = ", ".join(
            f"{k} {getattr(done, k)!r} (recipe: {getattr(step.config, k)!r})" for k in differ if k != "data"
        )
        raise RecipeError(
            f"{step.out} was trained with other settings than phase {step.phase.name!r}"
            f" ({shown or 'other data'}{', other data' if shown and 'data' in differ else ''}): "
            "delete it and the phases after it, or choose another output folder"
        )
    return True


def average_weights(inputs: tuple[Path, ...], out: Path, meta: dict[str, Any], half: bool = True) -> None:
    """Save the mean of checkpoints of one lifter (each tensor's mean in float32) as `out`, with
    the first input's name and config."""
    states, headers = [], []
    for path in inputs:
        try:
            sd, header = read_weights(path)
        except CheckpointError as exc:
            raise RecipeError(f"cannot average {path}: {exc}") from exc
        if header is None:
            raise RecipeError(f"cannot average {path}: not a hotpose checkpoint")
        states.append(sd)
        headers.append(header)
    first = headers[0]
    for path, header, sd in zip(inputs, headers, states, strict=True):
        if header["name"] != first["name"] or header["config"] != first["config"] or set(sd) != set(states[0]):
            raise RecipeError(f"cannot average {path} with {inputs[0]}: a different lifter or config")
    mean: dict[str, torch.Tensor] = {}
    for key, value in states[0].items():
        if value.is_floating_point():
            total = value.float()
            for sd in states[1:]:
                total = total + sd[key].float()
            mean[key] = total / len(states)
        else:
            mean[key] = value
    save_checkpoint(out, first["name"], first["config"], mean, meta=meta, half=half)
