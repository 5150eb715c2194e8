"""The page's three.js: served from the weights cache at /vendor/three/, or a clear 404 and a warning."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hotpose.models.detector.weights import NPM_SOURCES, npm_paths
from hotpose.service.app import create_app
from hotpose.service.routes import info
from hotpose.service.settings import Settings


def test_three_js_is_served_from_the_cache(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    npm_paths("three", settings.home)  # installed by `make install` (hotpose fetch-weights)
    with TestClient(create_app(settings)) as client:
        for name in NPM_SOURCES["three"].files:
            r = client.get(f"/vendor/three/{name}")
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript"), name
        page = client.get("/").text
        assert client.get("/vendor/three/package.json").status_code == 404  # only the pinned files
        assert "/vendor/three/three.module.min.js" in page and "/vendor/three/OrbitControls.js" in page
        assert "/vendor/" not in client.get("/openapi.json").text


def test_without_three_js_a_404_says_what_to_run_and_the_log_warns(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert info.check_three(tmp_path) is False
    assert "3D viewer is off" in caplog.text and "hotpose fetch-weights" in caplog.text
    monkeypatch.setattr(info, "npm_dir", lambda source, home: tmp_path / "three")
    with caplog.at_level(logging.WARNING), TestClient(create_app(make_settings())) as client:
        r = client.get("/vendor/three/three.module.min.js")
    assert r.status_code == 404 and "hotpose fetch-weights" in r.json()["detail"]
    assert str(tmp_path) not in r.json()["detail"]  # no server paths in answers
