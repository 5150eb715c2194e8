"""`hotpose doctor`: each finding says what is wrong and how to fix it."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from hotpose.service.cli import main
from hotpose.service.commands.doctor import run_checks
from hotpose.service.settings import Settings


def by_check(findings: list) -> dict:
    return {f.check: f for f in findings}


def test_a_fresh_home_lacks_the_weights_and_says_to_fetch_them(tmp_path: Path) -> None:
    s = Settings(home=tmp_path / "home", data_dir=tmp_path / "data", port=0)
    found = by_check(run_checks(s))
    assert found["weights blazepose"].status == "fail" and found["weights blazepose"].fix == "hotpose fetch-weights"
    assert found["weights three"].status == "warn"  # only the page's 3D view needs it
    assert found["data dir"].status == "ok" and found["port"].status == "ok"
    assert found["lifter"].status == "ok"  # the shipped weights
    assert {"python", "torch", "cuda", "chromium", "ray", "postgresql"} <= set(found)
    assert found["job store"].status == "ok" and found["job store"].detail.endswith("jobs.sqlite3")
    assert found["result store"].status == "ok"


def test_stores_that_cannot_be_reached_fail_naming_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("psycopg")
    pytest.importorskip("boto3")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    s = Settings(data_dir=tmp_path / "data", job_db=f"postgresql://u:secret@127.0.0.1:{closed}/db", results="s3://b/p")
    found = by_check(run_checks(s))
    assert found["job store"].status == "fail" and "HOTPOSE_JOB_DB" in found["job store"].fix
    assert "secret" not in found["job store"].detail  # the password is never printed
    assert found["result store"].status == "fail" and "HOTPOSE_RESULTS" in found["result store"].fix


def test_an_unwritable_data_dir_a_taken_port_and_a_lifter_without_weights(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        s = Settings(data_dir=blocker / "data", host="127.0.0.1", port=port, lifter="tpc_mixste")
        found = by_check(run_checks(s))
    assert found["data dir"].status == "fail" and "HOTPOSE_DATA_DIR" in found["data dir"].fix
    assert found["port"].status == "warn" and str(port) in found["port"].detail
    lifter = found["lifter"]
    assert lifter.status == "warn" and "2D only" in lifter.detail and "NationalGAILab/HoT" in lifter.fix


def test_the_command_exits_1_on_a_failure_and_prints_json_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOTPOSE_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("HOTPOSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HOTPOSE_PORT", "0")
    assert main(["doctor", "--json"]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"check", "status", "detail", "fix"} <= set(lines[0])
    assert any(x["status"] == "fail" and x["check"].startswith("weights") for x in lines)


def test_a_heatmap_keypoint_model_without_weights_fails_saying_where_to_get_them(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "data", port=0, keypoints="transpose_r_a3")
    found = by_check(run_checks(s))["keypoints"]
    assert found.status == "fail" and "HOTPOSE_KEYPOINTS_WEIGHTS" in found.fix and "TransPose" in found.fix
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    stray = by_check(run_checks(Settings(data_dir=tmp_path / "data", port=0, keypoints_weights=weights)))
    assert stray["keypoints"].status == "fail" and "takes no weights" in stray["keypoints"].detail
