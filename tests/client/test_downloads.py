"""The server's result downloads (JSON, NPZ, CSV, BVH) agree on each person's root and the camera.

Written to hold before and after the server sends `root_3d` and `camera`: only agreement between
the formats is asserted, never the values the server solves.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from hotpose_client import PoseClient, PoseSequence
from hotpose_client.bvh import bvh_to_camera, fill_root_gaps, read_bvh


def test_downloads_agree_on_root_and_camera(
    in_process: Callable[..., PoseClient], astronaut_clip: Path, tmp_path: Path
) -> None:
    with in_process() as client:
        job_id = client.submit_clip(astronaut_clip)
        client.wait(job_id)
        seq = client.result(job_id)
        npz = PoseSequence.from_npz(client.download(job_id, tmp_path / "r.npz"))
        csv = PoseSequence.from_csv(client.download(job_id, tmp_path / "r.csv"), fps=seq.fps)
        bvh = read_bvh(client.download(job_id, tmp_path / "r.bvh"))
    root = seq.root_trajectory()
    assert root.shape == (len(seq), 3)
    assert npz.camera == seq.camera  # both None from a server that does not send one
    np.testing.assert_allclose(npz.root_trajectory(), root, atol=1e-5)  # float32; NaN where null, in both
    shown = [i for i, f in enumerate(seq.frames) if f.people]  # a CSV has no rows for frames without people
    np.testing.assert_array_equal(csv.root_trajectory(), root[shown])
    placed = seq.joints_3d(frame="camera")
    np.testing.assert_allclose(placed, seq.joints_3d() + root[:, None])
    hips = bvh_to_camera(bvh.motion[:, :3])  # the server's BVH carries the same path, gaps filled
    if np.isnan(root).all():
        assert np.abs(hips).max() == 0
    else:
        seen = ~np.isnan(seq.joints_3d()).any(axis=(1, 2))
        np.testing.assert_allclose(hips[seen], fill_root_gaps(root, seq.times)[seen], atol=1e-6)
