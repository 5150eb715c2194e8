from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parents[2] / "client"


def test_client_imports_without_torch() -> None:
    code = (
        "import sys, hotpose_client; from hotpose_client import PoseClient, AsyncPoseClient, PoseSequence; "
        "assert 'torch' not in sys.modules, 'torch was imported'; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


@pytest.mark.slow
def test_client_installs_in_a_venv_without_torch(tmp_path: Path) -> None:
    """pip install ./client into a fresh venv (dependencies from PyPI or pip's cache): no torch comes along."""
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    py = env / "bin" / "python"
    pip = subprocess.run(
        [py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(CLIENT)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    if pip.returncode != 0 and "Could not find a version" in pip.stderr + pip.stdout:
        pytest.skip(f"no package index reachable: {pip.stderr[-300:]}")
    assert pip.returncode == 0, pip.stderr[-2000:]
    code = (
        "import importlib.util, sys, hotpose_client, hotpose_client.cli\n"
        "assert importlib.util.find_spec('torch') is None, 'torch is installed'\n"
        "assert 'torch' not in sys.modules\n"
        "print(hotpose_client.__version__)"
    )
    out = subprocess.run([py, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0.1.0"
    cli = subprocess.run([env / "bin" / "hotpose-client", "--help"], capture_output=True, text=True, check=True)
    assert "clip" in cli.stdout and "webcam" in cli.stdout
