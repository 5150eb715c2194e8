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


def test_info_says_when_the_lifter_is_untrained() -> None:
    with TestClient(create_app(Settings(device="cpu", lifter="mixste"))) as client:  # no weights ship for it
        info = client.get("/v1/info").json()
    assert info["lifter"]["weights"] is None and info["lifter"]["trained"] is False
