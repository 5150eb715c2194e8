from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hotpose.service.app import create_app
from hotpose.service.settings import Settings
from hotpose_client import PoseClient
from tests.conftest import serve


@pytest.fixture
def in_process(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., PoseClient]]:
    """SDK clients against the real app in-process (its lifespan runs: models load and warm up)."""
    apps: dict[str, TestClient] = {}

    def make(api_keys: str = "", **client_kw: object) -> PoseClient:
        if api_keys not in apps:
            apps[api_keys] = TestClient(create_app(make_settings(api_keys=api_keys))).__enter__()
        tc = apps[api_keys]
        return PoseClient(base_url="http://testserver", transport=tc._transport, **client_kw)  # type: ignore[arg-type]

    yield make
    for tc in apps.values():
        tc.__exit__(None, None, None)


@dataclass
class LiveServer:
    url: str
    app: FastAPI


@pytest.fixture(scope="module")
def live_server(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app on a real loopback socket (WebSockets need one), with an API key and 2 stream slots."""
    settings = Settings(
        device="cpu", lifter="hot_mixste", lifter_weights=tiny_weights, data_dir=tmp_path_factory.mktemp("data"),
        api_keys="k1", max_streams=2, live_queue=2,
    )  # fmt: skip
    app = create_app(settings)
    with serve(app) as url:
        yield LiveServer(url, app)
