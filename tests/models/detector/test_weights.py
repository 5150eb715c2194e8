from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from models.detector import weights
from models.detector.weights import BLAZEPOSE_FILES, WeightsError, blazepose_paths, fetch_blazepose


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_real_files_extracted_and_verified(tmp_path: Path) -> None:
    real = blazepose_paths()  # installed by `make install` (hotpose fetch-weights)
    wheel = _wheel(tmp_path / "mp.whl", {BLAZEPOSE_FILES[n][0]: p.read_bytes() for n, p in real.items()})
    got = fetch_blazepose(home=tmp_path / "home", wheel=wheel)
    assert sorted(got) == sorted(BLAZEPOSE_FILES)
    assert all(p.parent == tmp_path / "home" / "blazepose" for p in got.values())


def test_sha_mismatch_fails_and_writes_nothing(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "mp.whl", {member: b"not the model" for member, _ in BLAZEPOSE_FILES.values()})
    with pytest.raises(WeightsError, match="sha256"):
        fetch_blazepose(home=tmp_path / "home", wheel=wheel)
    assert not any((tmp_path / "home" / "blazepose").glob("*.tflite"))


def test_wrong_wheel(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="has no mediapipe/modules"):
        fetch_blazepose(home=tmp_path / "h", wheel=_wheel(tmp_path / "x.whl", {"other.txt": b""}))
    bad = tmp_path / "bad.whl"
    bad.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="not a readable wheel"):
        fetch_blazepose(home=tmp_path / "h", wheel=bad)


def test_offline_download_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Failed:
        returncode = 1
        stdout = ""
        stderr = "ERROR: Could not find a version that satisfies the requirement mediapipe==0.10.21"

    monkeypatch.setattr(weights.subprocess, "run", lambda *a, **k: Failed())
    monkeypatch.delenv("HOTPOSE_MEDIAPIPE_WHEEL", raising=False)
    with pytest.raises(WeightsError, match="offline"):
        fetch_blazepose(home=tmp_path / "h")


def test_missing_cache_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="hotpose fetch-weights"):
        blazepose_paths(tmp_path)
