from __future__ import annotations

from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings


def test_health_and_info() -> None:
    app = create_app(Settings(device="cpu"))
    with TestClient(app) as client:
        assert client.get("/livez").json() == {"status": "alive"}
        assert client.get("/healthz").status_code == 200
        info = client.get("/v1/info").json()
        assert info["device"] == "cpu"
        assert info["lifter"]["name"] == "hot_mixste" and info["lifter"]["frames"] == 243
        assert info["joint_names"][0] == "pelvis" and len(info["skeleton_edges"]) == 16


def test_not_ready_before_lifespan() -> None:
    client = TestClient(create_app(Settings(device="cpu")))  # no context manager: lifespan not run
    assert client.get("/healthz").status_code == 503
    assert client.get("/livez").status_code == 200


def test_startup_fails_clearly_without_trained_weights() -> None:
    import pytest

    from service.app import StartupError

    app = create_app(Settings(device="cpu", lifter="mixste"))  # no weights ship for plain MixSTE
    with pytest.raises(StartupError, match="HOTPOSE_LIFTER_WEIGHTS"), TestClient(app):
        pass
