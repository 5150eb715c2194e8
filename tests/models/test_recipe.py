from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

import hotpose.models.recipe
from hotpose.models.checkpoint import read_weights, save_checkpoint
from hotpose.models.recipe import RECIPES_DIR, RecipeError, load_recipe, plan, run_recipe
from hotpose.models.train import FLAT_FIELDS, TrainConfig
from tests.models.test_train import TINY, _mocap_file

SHIPPED = sorted(RECIPES_DIR.glob("*.toml"))
WEIGHTS = Path(hotpose.models.recipe.__file__).resolve().parent / "weights"

# Two tiny phases, the second from the first, on the synthetic mocap of the training tests.
TWO_PHASES = f"""
[[phase]]
name = "first"
overrides = {{ {", ".join(f"{k} = {v}" for k, v in TINY.items())} }}
steps = 2
batch = 2
warmup = 1
val_every = 100

[[phase]]
name = "second"
init = "first"
steps = 2
batch = 2
warmup = 1
lr = 5e-4
seed = 1
val_every = 100
"""


def _recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    return path


@pytest.fixture
def trained(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The phases `train` was called for (it still trains)."""
    calls: list[str] = []
    real = hotpose.models.recipe.train

    def counting(cfg: TrainConfig, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
        calls.append(cfg.run.out.stem)
        return real(cfg, on_step)

    monkeypatch.setattr(hotpose.models.recipe, "train", counting)
    return calls


def test_a_two_phase_recipe_runs_in_order_and_the_second_starts_from_the_first(
    tmp_path: Path, trained: list[str]
) -> None:
    data = _mocap_file(tmp_path / "m.npz")
    out = tmp_path / "run"
    steps: list[tuple[str, int, int]] = []
    result = run_recipe(_recipe(tmp_path, TWO_PHASES), out, data, on_step=lambda *a: steps.append(a))
    assert trained == ["first", "second"] and result.trained == ["first", "second"] and result.skipped == []
    # one report per training step of each phase, with the phase's step count (a progress bar's total)
    assert [s[0] for s in steps] == sorted(s[0] for s in steps) and {s[0] for s in steps} == {"first", "second"}
    for phase in ("first", "second"):
        mine = [(i, total) for p, i, total in steps if p == phase]
        assert [i for i, _ in mine] == list(range(mine[0][1]))  # every step once, of the phase's total
    assert result.out == out / "second.pt"
    assert set(result.metrics) == {"gt2d", "noisy2d", "frames_evaluated"}
    _, header = read_weights(out / "second.pt")
    stored = header["meta"]["train_config"]
    assert stored["init"] == str(out / "first.pt") and stored["lr"] == 5e-4 and stored["seed"] == 1
    assert header["config"]["dim"] == TINY["dim"]  # the size came with the init


def test_a_second_run_skips_finished_phases_and_reruns_from_the_first_unfinished(
    tmp_path: Path, trained: list[str]
) -> None:
    data = _mocap_file(tmp_path / "m.npz")
    out = tmp_path / "run"
    recipe = _recipe(tmp_path, TWO_PHASES)
    run_recipe(recipe, out, data)
    first_mtime = (out / "first.pt").stat().st_mtime_ns
    trained.clear()
    again = run_recipe(recipe, out, data)
    assert trained == [] and again.skipped == ["first", "second"] and again.trained == []
    assert set(again.metrics) == {"gt2d", "noisy2d", "frames_evaluated"}  # read from the finished file

    # an interrupted phase leaves a quick-validation snapshot (no final metrics): that phase runs again
    sd, header = read_weights(out / "second.pt")
    meta = {k: v for k, v in header["meta"].items() if k != "val_metrics"}
    save_checkpoint(out / "second.pt", header["name"], header["config"], sd, meta=meta)
    resumed = run_recipe(recipe, out, data)
    assert trained == ["second"] and resumed.skipped == ["first"]
    assert (out / "first.pt").stat().st_mtime_ns == first_mtime

    # a missing earlier phase: it and every phase after it run again
    trained.clear()
    (out / "first.pt").unlink()
    run_recipe(recipe, out, data)
    assert trained == ["first", "second"]


def test_a_finished_phase_trained_with_other_settings_is_an_error(tmp_path: Path, trained: list[str]) -> None:
    data = _mocap_file(tmp_path / "m.npz")
    out = tmp_path / "run"
    run_recipe(_recipe(tmp_path, TWO_PHASES), out, data)
    trained.clear()
    changed = _recipe(tmp_path, TWO_PHASES.replace("lr = 5e-4", "lr = 6e-4"))
    with pytest.raises(
        RecipeError, match=r"second\.pt was trained with other settings.*lr 0\.0005 \(recipe: 0\.0006\)"
    ):
        run_recipe(changed, out, data)
    assert trained == []


def test_an_averaging_phase_and_a_reference_to_the_last_weights_of_an_averaged_run(
    tmp_path: Path, trained: list[str]
) -> None:
    data = _mocap_file(tmp_path / "m.npz")
    out = tmp_path / "run"
    text = TWO_PHASES.replace('name = "first"', 'name = "first"\nema = 0.9\nlr = 1e-2').replace(
        'init = "first"', 'init = "first:raw"'
    )
    text += '\n[[phase]]\nname = "mean"\naverage = ["first", "second"]\n'
    result = run_recipe(_recipe(tmp_path, text), out, data)
    assert trained == ["first", "second"] and result.out == out / "mean.pt" and result.metrics == {}
    _, header = read_weights(out / "second.pt")
    assert header["meta"]["train_config"]["init"] == str(out / "first_raw.pt")
    a, _ = read_weights(out / "first.pt")
    b, _ = read_weights(out / "second.pt")
    mean, mean_header = read_weights(out / "mean.pt")
    assert mean_header["meta"] == {"averaged_from": ["first", "second"]}
    for key, value in mean.items():
        if value.is_floating_point():
            expected = ((a[key].float() + b[key].float()) / 2).half()
            assert value.dtype == torch.float16 and torch.equal(value, expected), key
    trained.clear()
    assert run_recipe(_recipe(tmp_path, text), out, data).skipped == ["first", "second", "mean"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[phase]]\nname = 'a'\nswing = 0.5\n", r"phase 'a': unknown key 'swing' \(did you mean 'swing_p'\?\)"),
        ("[[phase]]\nname = 'a'\nsteps = 'many'\n", r"phase 'a': key 'steps' must be int, got 'many'"),
        ("[[phase]]\nname = 'a'\nfocal = [500.0]\n", r"phase 'a': key 'focal' must be"),
        ("[[phase]]\nname = 'a'\nout = 'x.pt'\n", r"phase 'a': key 'out' is not set per phase"),
        ("[[phase]]\nname = 'a'\ndata = 'x.npz'\n", r"phase 'a': key 'data' is not set per phase"),
        ("[[phase]]\nname = 'a'\ninit = 'b'\n", r"phase 'a': key 'init': no phase 'b' before it"),
        (
            "[[phase]]\nname = 'a'\ninit = 'b'\n[[phase]]\nname = 'b'\n",
            r"phase 'a': key 'init': no phase 'b' before it",
        ),
        ("[[phase]]\nname = 'a'\n[[phase]]\nname = 'b'\ninit = 'a:raw'\n", r"phase 'b'.*'a' keeps no separate last"),
        ("[[phase]]\nname = 'a'\n[[phase]]\nname = 'b'\nwarm_start = 'a:last'\n", r"after ':' only 'raw'"),
        ("[[phase]]\nname = 'a'\n[[phase]]\nname = 'a'\n", r"phase 'a' is defined twice"),
        ("[[phase]]\nname = 'a'\nmodel = 'mixstee'\n", r"phase 'a': key 'model': unknown lifter 'mixstee'"),
        (
            "[[phase]]\nname = 'a'\noverrides = { width = 64 }\n",
            r"phase 'a': key 'overrides'.* no config field 'width'",
        ),
        ("[[phase]]\nname = 'a'\nwiden = true\n", r"phase 'a': key 'widen' needs 'init'"),
        (
            "[[phase]]\nname = 'a'\n[[phase]]\nname = 'b'\nmodel = 'mixste'\ninit = 'a'\n",
            r"phase 'b': key 'init': it trains 'mixste' but 'a' is a 'hot_mixste'",
        ),
        ("[[phase]]\nname = 'a'\n[[phase]]\nname = 'm'\naverage = ['a']\n", r"phase 'm': key 'average' must list two"),
        (
            "[[phase]]\nname = 'a'\n[[phase]]\nname = 'm'\naverage = ['a', 'a']\nlr = 1e-3\n",
            r"phase 'm': an averaging phase takes only .*not 'lr'",
        ),
        ("[[phase]]\nname = 'a b'\n", r"phase #1: 'name' must be letters"),
        ("[[phase]]\nname = 'a_raw'\n", r"not ending in _raw"),
        ("data = 'm.npz'\n", r"no phases"),
        ("epochs = 3\n[[phase]]\nname = 'a'\n", r"unknown top-level key 'epochs'"),
    ],
)
def test_recipe_errors_name_the_phase_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        load_recipe(_recipe(tmp_path, text))


def test_a_missing_or_wrong_data_file_is_an_error_before_any_training(tmp_path: Path, trained: list[str]) -> None:
    recipe = _recipe(tmp_path, TWO_PHASES)
    with pytest.raises(RecipeError, match=r"data file not found: .*nowhere\.npz"):
        run_recipe(recipe, tmp_path / "run", tmp_path / "nowhere.npz")
    with pytest.raises(RecipeError, match=r"no data file: set 'data' in the recipe or pass --data"):
        run_recipe(recipe, tmp_path / "run")
    data = _mocap_file(tmp_path / "m.npz")
    pinned = _recipe(tmp_path, f'data_sha256 = "{"0" * 64}"\n' + TWO_PHASES)
    with pytest.raises(RecipeError, match=r"is not the recipe's data \(its sha256 is [0-9a-f]{64}"):
        run_recipe(pinned, tmp_path / "run", data)
    assert trained == [] and not (tmp_path / "run").exists()


def test_the_recipe_names_its_data_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _mocap_file(tmp_path / "m.npz")
    monkeypatch.chdir(tmp_path)
    steps = plan(load_recipe(_recipe(tmp_path, 'data = "m.npz"\n' + TWO_PHASES)), Path("run"))
    assert [s.config.run.data for s in steps if s.config] == [Path("m.npz")] * 2


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_a_shipped_recipe_parses_and_its_keys_are_train_config_fields(path: Path, tmp_path: Path) -> None:
    recipe = load_recipe(path.stem)  # found by name too
    assert recipe.source == str(path) and recipe.data is not None and recipe.data_sha256 is not None
    for phase in recipe.phases:
        assert set(phase.settings) <= set(FLAT_FIELDS) - {"data", "out", "init", "warm_start"}, phase.name
    data = _mocap_file(tmp_path / "m.npz")  # a stand-in file: the shipped data is not needed to plan
    steps = plan(replace(recipe, data_sha256=None), tmp_path / "run", data)
    assert len(steps) == len(recipe.phases)
    assert all(s.config is not None or s.phase.average for s in steps)


@pytest.mark.parametrize(
    ("recipe", "weights"), [("hot_mixste_cmu", "hot_mixste_cmu.pt"), ("mixste_cmu", "mixste_cmu.pt")]
)
def test_a_shipped_recipe_ends_with_the_settings_its_shipped_weights_were_trained_with(
    recipe: str, weights: str, tmp_path: Path
) -> None:
    """The last phase against the `train_config` the shipped checkpoint stores (flat, as every
    checkpoint does; older ones lack later fields). They differ only where the recipe differs by
    design: its own paths, and a step count (`stop_after`) for the recorded run's time limit."""
    _, header = read_weights(WEIGHTS / weights)
    shipped = TrainConfig.from_flat(header["meta"]["train_config"])
    data = _mocap_file(tmp_path / "m.npz")
    last = plan(replace(load_recipe(recipe), data_sha256=None), tmp_path / "run", data)[-1].config
    assert last is not None
    assert last.augment == shipped.augment
    assert replace(last.optim, stop_after=0) == shipped.optim
    assert last.optim.stop_after in (0, header["meta"]["steps_done"])
    assert replace(last.lifter, init=None) == replace(shipped.lifter, init=None)
    assert (last.run.seed, last.run.threads, last.run.half) == (shipped.run.seed, shipped.run.threads, shipped.run.half)


def test_the_command_line_runs_a_recipe_and_refuses_training_flags_beside_it(
    tmp_path: Path, trained: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from hotpose.service.cli import main

    data = _mocap_file(tmp_path / "m.npz")
    recipe = str(_recipe(tmp_path, TWO_PHASES))
    base = ["train-lifter", "--recipe", recipe, "--out", str(tmp_path / "run"), "--data", str(data)]
    assert main([*base, "--steps", "5"]) == 2
    assert "the recipe sets steps" in capsys.readouterr().err and trained == []
    assert main([*base, "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["out"] == str(tmp_path / "run" / "second.pt") and report["trained"] == ["first", "second"]
    assert main(["train-lifter", "--recipe", "no_such_recipe", "--out", str(tmp_path)]) == 2
    assert "recipe not found: no_such_recipe" in capsys.readouterr().err
