"""The TFJS graph executor against the reference runtime (@tensorflow/tfjs + WASM backend in Node)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from hotpose.models.detector.tfjs import TFJSGraphError, TFJSGraphModule
from hotpose.models.detector.weights import default_home, npm_paths

TFJS_VERSION = "4.22.0"
RUNNER = Path(__file__).with_name("tfjs_reference.mjs")


@pytest.fixture(scope="module")
def nanodet_graph() -> TFJSGraphModule:
    return TFJSGraphModule(npm_paths("nanodet")["nanodet.json"]).eval()


@pytest.fixture(scope="module")
def tfjs_runtime() -> Path:
    """A folder whose node_modules hold @tensorflow/tfjs and its WASM backend (npm, pinned, cached)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are missing: the TFJS reference runtime cannot run here")
    root = default_home() / f"tfjs-reference-{TFJS_VERSION}"
    if not (root / "node_modules" / "@tensorflow" / "tfjs-backend-wasm" / "package.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        pkgs = [f"@tensorflow/tfjs@{TFJS_VERSION}", f"@tensorflow/tfjs-backend-wasm@{TFJS_VERSION}"]
        cmd = ["npm", "install", "--prefix", str(root), "--no-audit", "--no-fund", "--ignore-scripts", *pkgs]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.skip(f"could not npm install the TFJS reference runtime (offline?): {proc.stderr.strip()[-300:]}")
    return root


def _reference(runtime: Path, model_json: Path, x: np.ndarray, tmp: Path) -> dict[str, np.ndarray]:
    x.astype("<f4").tofile(tmp / "x.f32")
    shape = ",".join(str(d) for d in x.shape)
    proc = subprocess.run(
        ["node", str(RUNNER), str(model_json), str(tmp / "x.f32"), shape, str(tmp)],
        cwd=runtime, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "backend wasm" in proc.stdout
    meta = json.loads((tmp / "outputs.json").read_text())
    return {name: np.fromfile(tmp / f"{name}.f32", "<f4").reshape(shape_) for name, shape_ in meta.items()}


def _nanodet_input(astronaut: np.ndarray) -> np.ndarray:
    """The astronaut, letterboxed to 416 and normalised as NanoDet's graph expects (BGR, mean/std)."""
    import cv2

    img = cv2.resize(astronaut, (416, 416))[:, :, ::-1].astype(np.float32)
    x = (img - [103.53, 116.28, 123.675]) / [57.375, 57.12, 58.395]
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def test_nanodet_raw_outputs_match_tfjs(
    nanodet_graph: TFJSGraphModule, tfjs_runtime: Path, astronaut: np.ndarray, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    for k, x in enumerate([_nanodet_input(astronaut), rng.uniform(-2, 2, (1, 3, 416, 416)).astype(np.float32)]):
        d = tmp_path / str(k)
        d.mkdir()
        ref = _reference(tfjs_runtime, npm_paths("nanodet")["nanodet.json"], x, d)
        with torch.inference_mode():
            got = dict(zip(nanodet_graph.output_names, nanodet_graph(torch.from_numpy(x)), strict=True))
        assert sorted(ref) == sorted(got)
        for name, r in ref.items():
            g = got[name].numpy()
            assert g.shape == r.shape
            # raw outputs within 1e-3 of their scale (measured: ~1e-6 on scores, ~1e-6 on box bins)
            assert np.abs(g - r).max() <= 1e-3 * max(np.abs(r).max(), 1e-6), name


def test_batch_equals_one_at_a_time(nanodet_graph: TFJSGraphModule) -> None:
    x = torch.from_numpy(np.random.default_rng(1).uniform(-2, 2, (3, 3, 416, 416)).astype(np.float32))
    with torch.inference_mode():
        together = nanodet_graph(x)
        alone = [nanodet_graph(x[i : i + 1]) for i in range(3)]
    for j, out in enumerate(together):
        assert out.shape[0] == 3
        for i in range(3):
            torch.testing.assert_close(out[i : i + 1], alone[i][j], atol=1e-4, rtol=1e-4)


def test_graph_facts(nanodet_graph: TFJSGraphModule) -> None:
    ops = nanodet_graph.op_counts
    assert ops["Conv2D"] == 34 and ops["Transpose"] == 83 and ops["SparseToDense"] == 6
    shapes = [p.shape for p in nanodet_graph.conv_weights.values()]
    assert len(shapes) == 34 and sum(int(np.prod(s)) for s in shapes) > 3_000_000  # NanoDet-g: 3.79 M params
    assert nanodet_graph.output_names == ["Identity"] + [f"Identity_{k}" for k in range(1, 6)]


def _tiny_graph(tmp: Path, op: str) -> Path:
    """A two-node graph model: input -> `op` (float16-quantised weights manifest of one filter)."""
    w = np.ones((1, 1, 3, 2), np.float16)
    (tmp / "w.bin").write_bytes(w.tobytes())
    nodes = [
        {"name": "x", "op": "Placeholder", "attr": {}},
        {"name": "f", "op": "Const", "attr": {}},
        {"name": "y", "op": op, "input": ["x", "f"],
         "attr": {"strides": {"list": {"i": ["1", "1", "1", "1"]}}, "padding": {"s": "VkFMSUQ="}}},
    ]  # fmt: skip
    spec = {
        "format": "graph-model",
        "modelTopology": {"node": nodes},
        "signature": {"outputs": {"y:0": {"name": "y:0"}}},
        "weightsManifest": [{"paths": ["w.bin"], "weights": [
            {"name": "f", "shape": [1, 1, 3, 2], "dtype": "float32",
             "quantization": {"dtype": "float16", "original_dtype": "float32"}},
        ]}],
    }  # fmt: skip
    path = tmp / "model.json"
    path.write_text(json.dumps(spec))
    return path


def test_tiny_graph_runs_and_unsupported_ops_fail_at_load(tmp_path: Path) -> None:
    m = TFJSGraphModule(_tiny_graph(tmp_path, "Conv2D"))
    (y,) = m(torch.ones(2, 4, 4, 3))  # NHWC in, as TensorFlow
    assert y.shape == (2, 4, 4, 2) and torch.allclose(y, torch.full_like(y, 3.0))
    with pytest.raises(TFJSGraphError, match="node y: op Erf is not supported"):
        TFJSGraphModule(_tiny_graph(tmp_path, "Erf"))
    (tmp_path / "w.bin").write_bytes(b"\0" * 3)
    with pytest.raises(TFJSGraphError, match="truncated or mismatched"):
        TFJSGraphModule(tmp_path / "model.json")
