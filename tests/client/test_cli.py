from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hotpose_client import PoseSequence, read_bvh
from hotpose_client.cli import main
from tests.client.conftest import LiveServer


def test_clip_to_every_format(
    live_server: LiveServer, astronaut_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--url", live_server.url, "--api-key", "k1", "clip", str(astronaut_clip), "--quiet", "-o"]
    for suffix in (".json", ".npz", ".csv", ".bvh"):
        assert main([*base, str(tmp_path / f"out{suffix}")]) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["frames"] == 30 and len(summary["track_ids"]) == 1
    seq = PoseSequence.from_json(tmp_path / "out.json")
    np.testing.assert_allclose(PoseSequence.from_npz(tmp_path / "out.npz").joints_3d(), seq.joints_3d(), atol=1e-6)
    assert len(read_bvh(tmp_path / "out.bvh").motion) == 30


def test_errors_are_one_line_and_exit_1(
    live_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--url", live_server.url, "--api-key", "k1", "clip", str(tmp_path / "none.mp4"), "-o", "x.json"]) == 1
    assert "no video file" in capsys.readouterr().err
    (tmp_path / "a.mp4").write_bytes(b"x")
    assert main(["--url", live_server.url, "--api-key", "bad", "clip", str(tmp_path / "a.mp4"), "-o", "x.json"]) == 1
    assert "401" in capsys.readouterr().err
    # the connection options work after the command too
    assert main(["clip", str(tmp_path / "a.mp4"), "-o", "x.json", "--url", live_server.url, "--api-key", "bad"]) == 1
    assert "401" in capsys.readouterr().err
    assert main(["--url", live_server.url, "clip", str(tmp_path / "a.mp4"), "-o", "x.gif"]) == 1
    assert "unknown output format" in capsys.readouterr().err


def test_webcam_command_streams_a_camera_source(
    live_server: LiveServer, astronaut_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # OpenCV opens a video path like a camera: the same code path as a laptop camera
    args = ["--url", live_server.url, "--api-key", "k1", "webcam", "--device", str(astronaut_clip), "--frames", "12"]
    assert main(args) == 0
    out = capsys.readouterr()
    frames = [json.loads(line) for line in out.out.strip().splitlines()]
    summary = out.err.strip().splitlines()[-1]
    answered = int(summary.split("answered ")[1].split(",")[0])
    assert summary.startswith("sent 12,") and len(frames) == answered
    assert [f["index"] for f in frames] == sorted(f["index"] for f in frames)
    assert all("latency_ms" in f for f in frames)


def test_a_failed_export_names_the_job_and_result_saves_it_again(
    live_server: LiveServer, astronaut_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--url", live_server.url, "--api-key", "k1"]
    out = tmp_path / "p.bvh"
    assert main([*base, "clip", str(astronaut_clip), "--quiet", "-o", str(out), "--track-id", "99"]) == 1
    err = capsys.readouterr().err
    assert "no person with track_id 99" in err and "hotpose-client result " in err and not out.exists()
    job_id = err.split("hotpose-client result ")[1].split()[0]
    assert main([*base, "result", job_id, "-o", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["job_id"] == job_id and len(read_bvh(out).motion) == summary["frames"] == 30


def test_show_refuses_a_headless_opencv_before_streaming(
    live_server: LiveServer, astronaut_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cv2 = pytest.importorskip("cv2")
    if "NONE" not in cv2.getBuildInformation().split("GUI:")[1].splitlines()[0]:
        pytest.skip("this OpenCV has a GUI")
    args = ["--url", live_server.url, "--api-key", "k1", "webcam", "--device", str(astronaut_clip), "--show"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "needs OpenCV with a GUI" in err and "sent " not in err
