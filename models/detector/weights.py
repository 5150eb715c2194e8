"""Obtain the BlazePose TFLite files from the mediapipe wheel on PyPI.

The two Apache-2.0 models ship inside `mediapipe==0.10.21`. hotpose never
imports mediapipe: `fetch_blazepose` runs `pip download --no-deps` for that
one wheel, extracts the two files into the weights cache (`HOTPOSE_HOME`,
default `~/.cache/hotpose`), and checks their sha256. Nothing is fetched at
run time; a missing file is an error that says to run `hotpose fetch-weights`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

MEDIAPIPE_VERSION = "0.10.21"
# name in the cache -> (path inside the wheel, sha256)
BLAZEPOSE_FILES: dict[str, tuple[str, str]] = {
    "pose_detection.tflite": (
        "mediapipe/modules/pose_detection/pose_detection.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    ),
    "pose_landmark_full.tflite": (
        "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    ),
}


class WeightsError(RuntimeError):
    """Weights that are missing, corrupt, or could not be fetched."""


def hotpose_home() -> Path:
    return Path(os.environ.get("HOTPOSE_HOME", "~/.cache/hotpose")).expanduser()


def blazepose_dir(home: Path | None = None) -> Path:
    return (home or hotpose_home()) / "blazepose"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def blazepose_paths(home: Path | None = None) -> dict[str, Path]:
    """The verified cached files, or WeightsError naming what is missing and how to get it."""
    d = blazepose_dir(home)
    out = {}
    for name, (_, digest) in BLAZEPOSE_FILES.items():
        p = d / name
        if not p.is_file():
            raise WeightsError(f"BlazePose weights {p} are missing: run `hotpose fetch-weights` (needs PyPI access)")
        if sha256(p) != digest:
            raise WeightsError(
                f"{p} has the wrong sha256 (corrupt or replaced): delete it and run `hotpose fetch-weights`"
            )
        out[name] = p
    return out


def _download_wheel(dest: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64",
        "-d", str(dest), f"mediapipe=={MEDIAPIPE_VERSION}",
    ]  # fmt: skip
    log.info("downloading mediapipe==%s (wheel only, no dependencies) from the package index", MEDIAPIPE_VERSION)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("mediapipe-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise WeightsError(
            f"could not download mediapipe=={MEDIAPIPE_VERSION} from the package index (offline?): "
            + " | ".join(tail)
            + " -- or set HOTPOSE_MEDIAPIPE_WHEEL to a local copy of the wheel"
        )
    return wheels[0]


def fetch_blazepose(home: Path | None = None, wheel: Path | None = None, force: bool = False) -> dict[str, Path]:
    """Make sure the two BlazePose files are in the cache, verified. Returns their paths."""
    d = blazepose_dir(home)
    if not force:
        try:
            return blazepose_paths(home)
        except WeightsError:
            pass
    d.mkdir(parents=True, exist_ok=True)
    env_wheel = os.environ.get("HOTPOSE_MEDIAPIPE_WHEEL")
    wheel = wheel or (Path(env_wheel) if env_wheel else None)
    with tempfile.TemporaryDirectory(prefix="hotpose-wheel-") as tmp:
        src = wheel if wheel is not None else _download_wheel(Path(tmp))
        try:
            zf = zipfile.ZipFile(src)
        except (OSError, zipfile.BadZipFile) as exc:
            raise WeightsError(f"{src} is not a readable wheel: {exc}") from exc
        with zf:
            for name, (member, digest) in BLAZEPOSE_FILES.items():
                try:
                    data = zf.read(member)
                except KeyError as exc:
                    raise WeightsError(f"{src} has no {member}: is it mediapipe=={MEDIAPIPE_VERSION}?") from exc
                got = hashlib.sha256(data).hexdigest()
                if got != digest:
                    raise WeightsError(f"{member} in {src} has sha256 {got}, expected {digest}")
                tmp_file = d / (name + ".tmp")
                tmp_file.write_bytes(data)
                tmp_file.replace(d / name)
                log.info("wrote %s (sha256 verified)", d / name)
    return blazepose_paths(home)
