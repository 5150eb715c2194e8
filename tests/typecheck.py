"""`mypy --strict` over the import package `hotpose` (models/ and service/) and the SDK.

The repository keeps its folders (models/, service/) while they install as `hotpose.models` and
`hotpose.service`; mypy cannot follow setuptools' editable-install finder, so this lays out a tree
of two symlinks, `hotpose/models` and `hotpose/service`, and checks the packages there.
Run: `python tests/typecheck.py` (exit status: mypy's).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hotpose.models", "hotpose.service", "hotpose_client")


def run_mypy(cache_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "hotpose"
        tree.mkdir()
        (tree / "models").symlink_to(ROOT / "models")
        (tree / "service").symlink_to(ROOT / "service")
        (Path(tmp) / "hotpose_client").symlink_to(ROOT / "client" / "hotpose_client")
        args = [sys.executable, "-m", "mypy", "--strict", "--config-file", str(ROOT / "pyproject.toml")]
        args += ["--cache-dir", str(cache_dir or ROOT / ".mypy_cache")]
        for p in PACKAGES:
            args += ["-p", p]
        return subprocess.run(args, cwd=tmp, capture_output=True, text=True)


if __name__ == "__main__":
    result = run_mypy()
    sys.stdout.write(result.stdout + result.stderr)
    sys.exit(result.returncode)
