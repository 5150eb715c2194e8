from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from hotpose.models import create_lifter, save_checkpoint
from hotpose.service.settings import Settings

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent")
    return SHARED


TINY = {"dim": 16, "depth": 2, "num_heads": 2, "frames": 27, "token_num": 9, "layer_index": 1}


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small (untrained) HoT-MixSTE checkpoint: the service's plumbing does not need accuracy."""
    model = create_lifter("hot_mixste", device="cpu", **TINY)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_checkpoint(path, "hot_mixste", model.config.to_dict(), model.state_dict())
    return path


def fail_stream_frame(monkeypatch: pytest.MonkeyPatch, at: int) -> None:
    """Make the live streams' frame step raise "CUDA out of memory" at frame index `at` (a model failure)."""
    import hotpose.service.streams

    step = hotpose.service.streams._step

    def failing(pipeline, index, t, data, max_pixels):  # type: ignore[no-untyped-def]
        if index == at:
            raise RuntimeError("CUDA out of memory")
        return step(pipeline, index, t, data, max_pixels)

    monkeypatch.setattr(hotpose.service.streams, "_step", failing)


def astronaut_frames(n: int = 30) -> list[np.ndarray]:
    """RGB frames of the astronaut photo panning sideways (one person)."""
    img = data.astronaut()
    canvas = np.pad(img, ((0, 0), (100, 100), (0, 0)), mode="edge")
    return [np.ascontiguousarray(canvas[:, 5 * i : 5 * i + 512]) for i in range(n)]


@pytest.fixture(scope="session")
def astronaut_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "astronaut.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (512, 512))
    for f in astronaut_frames():
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture
def make_settings(tmp_path: Path, tiny_weights: Path) -> Callable[..., Settings]:
    def make(**kw: object) -> Settings:
        base: dict[str, object] = {
            "device": "cpu",
            "lifter": "hot_mixste",
            "lifter_weights": tiny_weights,
            "data_dir": tmp_path / "data",
        }
        base.update(kw)
        return Settings(**base)  # type: ignore[arg-type]

    return make


@contextmanager
def serve(app: object) -> Iterator[str]:
    """Run an app with uvicorn on a free loopback port (WebSockets and browsers need a real socket); yields its URL."""
    import uvicorn

    from hotpose.service.bench import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 120
    state = getattr(getattr(app, "state", None), "hotpose", None)
    while not (server.started and (state is None or state.ready)) and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "the test server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def modules_imported_by(modules: list[str]) -> list[str]:
    """Every module in `sys.modules` after importing `modules` in a fresh interpreter (this test
    process has everything loaded already)."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    loaded: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return loaded
