from __future__ import annotations

from pathlib import Path

import pytest

from hotpose.service.settings import Settings


def test_home_directories_expand_the_tilde(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # compose files, .env files and systemd units pass "~" through unexpanded
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HOTPOSE_HOME", "~/hp")
    monkeypatch.setenv("HOTPOSE_DATA_DIR", "~/data")
    monkeypatch.setenv("HOTPOSE_LIFTER_WEIGHTS", "~/w.pt")
    s = Settings()
    assert (s.home, s.data_dir, s.lifter_weights) == (tmp_path / "hp", tmp_path / "data", tmp_path / "w.pt")
    monkeypatch.delenv("HOTPOSE_LIFTER_WEIGHTS")
    assert Settings().lifter_weights is None
