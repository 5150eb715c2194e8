"""The distribution: one import package `hotpose`, lint and types clean (`make lint` runs the same)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.typecheck import ROOT, run_mypy


@pytest.mark.slow
def test_the_wheel_installs_one_hotpose_package(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q"]
    build = subprocess.run([*args, "-w", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("hotpose-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"hotpose"}
    for folder, package in (("models", "hotpose/models"), ("service", "hotpose/service")):
        sources = {p.relative_to(ROOT / folder).as_posix() for p in (ROOT / folder).rglob("*.py")}
        packed = {n[len(package) + 1 :] for n in names if n.startswith(package + "/") and n.endswith(".py")}
        assert sources == packed, f"{folder}/ modules missing from the wheel: {sorted(sources - packed)}"
    assert "hotpose/models/weights/hot_mixste_cmu.pt" in names and "hotpose/service/static/index.html" in names
    recipes = {f"hotpose/models/recipes/{p.name}" for p in (ROOT / "models" / "recipes").glob("*.toml")}
    assert recipes and recipes <= set(names)  # `train-lifter --recipe NAME` from an installed package
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [
        line for line in zipfile.ZipFile(wheel).read(meta).decode().splitlines() if line.startswith("Requires-Dist")
    ]
    assert "Requires-Dist: hotpose-client==0.1.0" in requires
    assert any(r.startswith("Requires-Dist: torch") and "<2.14" in r for r in requires)


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    for args in (["check"], ["format", "--check"]):
        out = subprocess.run(
            [ruff, *args, "models", "service", "client", "tests"], cwd=ROOT, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stdout[-4000:]


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    out = run_mypy(cache_dir=ROOT / ".mypy_cache")
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
