from __future__ import annotations

from pathlib import Path

import pytest

from hotpose.service.settings import TABLE_BEGIN, TABLE_END, Settings, settings_markdown, write_settings_table


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


def test_configuration_doc_is_the_settings_table() -> None:
    # docs/configuration.md holds settings_markdown()'s output between two marker comments; the
    # command to regenerate it is in that file
    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    begin, end = TABLE_BEGIN, TABLE_END
    assert doc.count(begin) == 1 and doc.count(end) == 1, "docs/configuration.md lost its marker comments"
    table = doc.split(begin)[1].split(end)[0]
    assert table == settings_markdown(), "docs/configuration.md is stale: regenerate its table (command in the file)"


def test_settings_table_has_every_field_with_a_description() -> None:
    rows = settings_markdown().splitlines()[2:]
    assert [r.split("`")[1] for r in rows] == [f"HOTPOSE_{name.upper()}" for name in Settings.model_fields]
    assert all(f.description for f in Settings.model_fields.values())
    assert "| `HOTPOSE_HOME` | path | `~/.cache/hotpose` |" in settings_markdown()  # not this machine's home


def test_write_settings_table_replaces_only_the_table(tmp_path: Path) -> None:
    doc = tmp_path / "c.md"
    doc.write_text(f"intro\n{TABLE_BEGIN}old\n{TABLE_END}\n\nafter\n")
    write_settings_table(doc)
    assert doc.read_text() == f"intro\n{TABLE_BEGIN}{settings_markdown()}{TABLE_END}\n\nafter\n"
    doc.write_text("no markers\n")
    with pytest.raises(ValueError, match="settings:begin"):
        write_settings_table(doc)


def test_the_model_names_the_settings_list_are_the_registered_ones() -> None:
    """The descriptions of HOTPOSE_LIFTER and HOTPOSE_KEYPOINTS (docs/configuration.md) name every
    registered model and nothing else."""
    import re

    from hotpose.models import LIFTERS
    from hotpose.models.detector import HEATMAP_KEYPOINT_MODELS, KEYPOINT_MODELS

    def named(field: str) -> set[str]:
        return set(re.findall(r"`([a-z0-9_]+)`", Settings.model_fields[field].description or ""))

    assert named("lifter") == set(LIFTERS)
    assert named("keypoints") == set(KEYPOINT_MODELS) | set(HEATMAP_KEYPOINT_MODELS)
