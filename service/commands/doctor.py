"""`hotpose doctor`: what this installation has and lacks, each finding with the fix.

Checks run in order and never raise: the weights (each file present and its sha256 as pinned), torch
and the device (CUDA visible or not, and why), the data directory writable, the port free, and the
optional parts (Chromium for the browser tests, Ray, PostgreSQL). Exit status 1 when something the
server needs is missing ("fail"), else 0; "warn" marks what only some uses need.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import platform
import shutil
import socket
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from hotpose.service.commands.base import Subparsers
from hotpose.service.settings import Settings

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    fix: str = ""


def add_parsers(sub: Subparsers) -> None:
    d = sub.add_parser("doctor", help="check weights, torch and device, data directory, port, optional parts")
    d.add_argument("--json", action="store_true", help="one JSON object per finding, one per line")
    d.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    findings = run_checks(Settings())
    if args.json:
        for f in findings:
            print(json.dumps(asdict(f)))
    else:
        width = max(len(f.check) for f in findings)
        for f in findings:
            print(f"[{f.status:>4}] {f.check:<{width}}  {f.detail}")
            if f.fix:
                print(f"       {'':<{width}}  fix: {f.fix}")
        fails = sum(f.status == "fail" for f in findings)
        warns = sum(f.status == "warn" for f in findings)
        print(f"{len(findings)} checks: {fails} failed, {warns} warnings")
    return 1 if any(f.status == "fail" for f in findings) else 0


def run_checks(s: Settings) -> list[Finding]:
    checks: list[Callable[[Settings], list[Finding]]] = [
        _python, _torch_device, _weights_2d, _lifter_weights, _keypoint_weights, _data_dir, _stores, _port,
        _optional,
    ]  # fmt: skip
    out: list[Finding] = []
    for check in checks:
        try:
            out += check(s)
        except Exception as e:  # noqa: BLE001  (a check that breaks is a finding, never a crash of the doctor)
            out.append(Finding(check.__name__.strip("_"), "fail", f"the check raised {type(e).__name__}: {e}"))
    return out


def _python(s: Settings) -> list[Finding]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        hp = version("hotpose")
    except PackageNotFoundError:
        hp = "not installed as a distribution (running from a checkout?)"
    return [Finding("python", "ok", f"Python {platform.python_version()}, hotpose {hp}")]


def _torch_device(s: Settings) -> list[Finding]:
    import torch

    threads = torch.get_num_threads()
    found = [Finding("torch", "ok", f"torch {torch.__version__}, {threads} CPU threads (HOTPOSE_THREADS to change)")]
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        found.append(Finding("cuda", "ok", f"CUDA {torch.version.cuda}: {names}"))
    elif torch.version.cuda is None:
        found.append(
            Finding(
                "cuda",
                "warn",
                "this torch is a CPU-only build: models run on the CPU",
                "for a GPU, install a CUDA build of torch 2.13 (pip install torch==2.13.0 from PyTorch's CUDA index)",
            )
        )
    else:
        why = os.environ.get("CUDA_VISIBLE_DEVICES")
        reason = (
            f"CUDA_VISIBLE_DEVICES={why!r} hides every device"
            if why is not None and why.strip() in ("", "-1")
            else "no NVIDIA device or driver is visible to this process"
        )
        found.append(
            Finding(
                "cuda",
                "warn",
                f"torch has CUDA {torch.version.cuda} but no device: {reason}; models run on the CPU",
                "check `nvidia-smi`, the driver, and (in a container) the GPU runtime flags",
            )
        )
    wanted = s.device
    if wanted not in (None, "", "auto", "cpu") and str(wanted).startswith("cuda") and not torch.cuda.is_available():
        found.append(Finding("device", "fail", f"HOTPOSE_DEVICE={wanted} but CUDA is not available", "unset it"))
    return found


def _weights_2d(s: Settings) -> list[Finding]:
    from hotpose.models.detector.weights import NPM_SOURCES, WeightsError, blazepose_paths, npm_paths

    found: list[Finding] = []
    sources: list[tuple[str, Callable[[], dict[str, Path]]]] = [("blazepose", lambda: blazepose_paths(s.home))]
    sources += [(name, lambda name=name: npm_paths(name, s.home)) for name in NPM_SOURCES]  # type: ignore[misc]
    for name, paths in sources:
        try:
            files = paths()
        except WeightsError as e:
            status: Status = "warn" if name == "three" else "fail"  # the page's 3D view only
            found.append(Finding(f"weights {name}", status, str(e).split(":")[0], "hotpose fetch-weights"))
            continue
        found.append(Finding(f"weights {name}", "ok", f"{len(files)} files, sha256 as pinned"))
    return found


def _lifter_weights(s: Settings) -> list[Finding]:
    from hotpose.models import LIFTERS, CheckpointError, resolve_weights

    spec = LIFTERS.get(s.lifter)
    if spec is None:
        return [Finding("lifter", "fail", f"HOTPOSE_LIFTER={s.lifter!r} is unknown", f"one of {', '.join(LIFTERS)}")]
    try:
        w = resolve_weights(s.lifter, s.lifter_weights)
    except CheckpointError as e:
        return [Finding("lifter", "fail", str(e), "set HOTPOSE_LIFTER_WEIGHTS to an existing file")]
    if w is None:
        where = f" (the authors publish them: {spec.published})" if spec.published else ""
        return [
            Finding(
                "lifter",
                "warn",
                f"{s.lifter}: no weights, the server serves 2D only",
                f"HOTPOSE_LIFTER_WEIGHTS=path{where}",
            )
        ]
    return [Finding("lifter", "ok", f"{s.lifter}: {w.name}")]


def _keypoint_weights(s: Settings) -> list[Finding]:
    """A heatmap keypoint model (TransPose, TokenPose, UniFormer) needs its authors' checkpoint, as
    `hotpose serve` checks before it starts; the other keypoint models take no weights file."""
    from hotpose.models.detector import HEATMAP_KEYPOINT_MODELS
    from hotpose.models.detector.heatmap_pose import require_weights
    from hotpose.models.detector.weights import WeightsError

    if s.keypoints not in HEATMAP_KEYPOINT_MODELS:
        if s.keypoints_weights is not None:
            return [
                Finding(
                    "keypoints",
                    "fail",
                    f"HOTPOSE_KEYPOINTS_WEIGHTS is set but {s.keypoints} takes no weights file",
                    "unset it, or set HOTPOSE_KEYPOINTS to a heatmap model (docs/pose2d.md)",
                )
            ]
        return []
    try:
        path = require_weights(s.keypoints, s.keypoints_weights)
    except WeightsError as e:
        return [Finding("keypoints", "fail", f"{s.keypoints}: no usable weights", str(e))]
    return [Finding("keypoints", "ok", f"{s.keypoints}: {path.name}")]


def _data_dir(s: Settings) -> list[Finding]:
    d = Path(s.data_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=d, prefix=".doctor-"):
            pass
    except OSError as e:
        return [Finding("data dir", "fail", f"{d} is not writable: {e.strerror}", "HOTPOSE_DATA_DIR=a writable folder")]
    free = shutil.disk_usage(d).free / 1e9
    status: Status = "ok" if free >= 1.0 else "warn"
    return [Finding("data dir", status, f"{d} writable, {free:.1f} GB free", "" if free >= 1.0 else "free space")]


def _stores(s: Settings) -> list[Finding]:
    """The job store and the result store the settings name, opened as the server opens them."""
    from hotpose.service.stores import open_job_store, open_result_store

    found = []
    for name, setting, value, opener in (
        ("job store", "HOTPOSE_JOB_DB", s.job_db, open_job_store),
        ("result store", "HOTPOSE_RESULTS", s.results, open_result_store),
    ):
        try:
            store = opener(value, s.data_dir)
        except ImportError as e:
            extra = "postgres" if name == "job store" else "s3"
            found.append(Finding(name, "fail", f"{setting}: {e}", f"pip install 'hotpose[{extra}]'"))
            continue
        except (OSError, RuntimeError, ValueError, sqlite3.Error) as e:  # unreachable, refused, a bad URL
            found.append(Finding(name, "fail", str(e), f"check {setting} and that the server is running"))
            continue
        found.append(Finding(name, "ok", store.url))
        store.close()
    return found


def _port(s: Settings) -> list[Finding]:
    with socket.socket(socket.AF_INET6 if ":" in s.host else socket.AF_INET) as sock:
        try:
            sock.bind((s.host, s.port))
        except OSError as e:
            return [
                Finding(
                    "port",
                    "warn",
                    f"{s.host}:{s.port} is taken ({e.strerror}): is a server already running?",
                    "HOTPOSE_PORT=another port, or `hotpose serve --port N`",
                )
            ]
    return [Finding("port", "ok", f"{s.host}:{s.port} is free")]


def _optional(s: Settings) -> list[Finding]:
    found: list[Finding] = []
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    found.append(
        Finding("chromium", "ok", chromium)
        if chromium
        else Finding("chromium", "warn", "not found: the web page's browser tests skip", "apt-get install chromium")
    )
    if importlib.util.find_spec("ray") is not None:
        found.append(Finding("ray", "ok", "importable"))
    else:
        found.append(Finding("ray", "warn", "not installed: no Ray Serve deployment", "pip install 'ray[serve]'"))
    pg = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    found.append(
        Finding("postgresql", "ok", pg)
        if pg
        else Finding(
            "postgresql", "warn", "server binaries not found: PostgreSQL tests skip", "apt-get install postgresql"
        )
    )
    return found
