from __future__ import annotations

import numpy as np
import pytest
import torch

from hotpose.models.detector.tflite import TFLiteModule
from hotpose.models.detector.topdown import TopDown

litert = pytest.importorskip("ai_edge_litert.interpreter")


def _reference(module: TFLiteModule, x_nhwc: np.ndarray) -> list[np.ndarray]:
    interp = litert.Interpreter(model_path=str(module.path), num_threads=1)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x_nhwc)
    interp.invoke()
    by_index = {d["index"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}
    return [by_index[i] for i in module.output_ids]


def _ours(module: TFLiteModule, x_nhwc: np.ndarray) -> list[np.ndarray]:
    with torch.inference_mode():
        outs = module(torch.from_numpy(x_nhwc).permute(0, 3, 1, 2))
    return [(o.permute(0, 2, 3, 1) if o.ndim == 4 else o).numpy() for o in outs]


def test_detector_matches_interpreter(blazepose: TopDown, astronaut: np.ndarray) -> None:
    import cv2

    x = (cv2.resize(astronaut, (224, 224)).astype(np.float32) / 127.5 - 1.0)[None]
    ref = _reference(blazepose.person_detector.model, x)
    got = _ours(blazepose.person_detector.model, x)
    for r, g in zip(ref, got, strict=True):
        assert r.shape == g.shape
        # raw outputs within 1e-2 relative to their scale
        assert np.abs(r - g).max() <= 1e-2 * max(np.abs(r).max(), 1.0)


def test_landmarks_match_interpreter(blazepose: TopDown, astronaut: np.ndarray) -> None:
    import cv2

    rng = np.random.default_rng(0)
    photo = cv2.resize(astronaut, (256, 256)).astype(np.float32) / 255.0
    x = np.stack([photo, rng.uniform(0, 1, (256, 256, 3)).astype(np.float32)])  # a batch of two
    for b in range(2):
        ref = _reference(blazepose.keypoint_model.model, x[b : b + 1])
        got = _ours(blazepose.keypoint_model.model, x)
        landmarks_ref, landmarks_got = ref[0].reshape(39, 5), got[0][b].reshape(39, 5)
        # landmark x, y, z in crop pixels within 1e-2 px
        assert np.abs(landmarks_ref[:, :3] - landmarks_got[:, :3]).max() < 1e-2
        assert np.abs(ref[1] - got[1][b]).max() < 1e-4  # pose flag
        assert np.abs(ref[3] - got[3][b]).max() < 1e-2  # heatmaps
        assert np.abs(ref[4] - got[4][b]).max() < 1e-4  # world landmarks, metres


def test_ops_of_both_models(blazepose: TopDown) -> None:
    det, lmk = blazepose.person_detector.model.op_counts, blazepose.keypoint_model.model.op_counts
    assert det["DENSIFY"] == 38 and det["DEPTH_TO_SPACE"] == 3
    assert lmk["MAX_POOL_2D"] == 2 and lmk["LOGISTIC"] == 1


def test_heavy_landmarks_match_interpreter(astronaut: np.ndarray) -> None:
    """The heavy landmark model (from @mediapipe/pose) runs through the same executor, exactly."""
    import cv2

    from hotpose.models.detector.blazepose import BlazePoseLandmarks, BlazePoseLandmarksConfig

    heavy = BlazePoseLandmarks(BlazePoseLandmarksConfig(variant="heavy"), device="cpu").model
    x = (cv2.resize(astronaut, (256, 256)).astype(np.float32) / 255.0)[None]
    ref, got = _reference(heavy, x), _ours(heavy, x)
    assert np.abs(ref[0].reshape(39, 5)[:, :3] - got[0].reshape(39, 5)[:, :3]).max() < 2e-2  # crop pixels
    assert np.abs(ref[1] - got[1]).max() < 1e-4  # pose flag
    assert np.abs(ref[4] - got[4]).max() < 1e-4  # world landmarks, metres
    assert heavy.op_counts["CONV_2D"] == 116 and heavy.op_counts["MAX_POOL_2D"] == 5


def test_depth_to_space_uses_tensorflow_channel_order(blazepose: TopDown) -> None:
    op = next(o for o in blazepose.person_detector.model._ops if o.name == "DEPTH_TO_SPACE")
    n, c, h, w, b = 1, 3, 2, 2, 2
    x = torch.arange(n * c * b * b * h * w, dtype=torch.float32).view(n, c * b * b, h, w)
    y = op.run(x)
    # TF: out[h*b+i, w*b+j, c] = in[h, w, (i*b + j)*C + c]
    nhwc = x.permute(0, 2, 3, 1).numpy()
    expect = np.zeros((n, h * b, w * b, c), dtype=np.float32)
    for hh in range(h):
        for ww in range(w):
            for i in range(b):
                for j in range(b):
                    expect[0, hh * b + i, ww * b + j] = nhwc[0, hh, ww, (i * b + j) * c : (i * b + j + 1) * c]
    assert np.array_equal(y.permute(0, 2, 3, 1).numpy(), expect)
    assert not torch.equal(y, torch.nn.functional.pixel_shuffle(x, b))  # the trap: a different order
