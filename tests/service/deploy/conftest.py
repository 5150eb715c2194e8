"""One local Ray cluster per test run with hotpose deployed on it (`hotpose.service.deploy`), and the
single-process server beside it, so the same tests run against both. The cluster lives for the one
module that uses it (test_ray_app.py), so its processes are gone before the rest of the suite runs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hotpose.service.app import create_app
from hotpose.service.bench import free_port
from hotpose.service.settings import Settings
from tests.conftest import serve

# what every replica runs with: a tiny lifter, short leases so a killed worker's job comes back fast
RAY_ENV = {
    "HOTPOSE_DEVICE": "cpu",
    "HOTPOSE_THREADS": "1",
    "HOTPOSE_JOB_LEASE_S": "3",
    "HOTPOSE_JOB_POLL_S": "0.1",
    "HOTPOSE_MAX_STREAMS": "3",
}
# deployment options for a 2-core test machine: two clip workers, so one can take over the other's jobs
RAY_OPTIONS = {
    "Ingress": {"ray_actor_options": {"num_cpus": 0.1}},
    "Detector": {"ray_actor_options": {"num_cpus": 0.2}},
    "Lifter": {"ray_actor_options": {"num_cpus": 0.2}},
    "ClipWorker": {"num_replicas": 2, "ray_actor_options": {"num_cpus": 0.1}},
}


@dataclass
class Server:
    kind: str  # "process" (uvicorn, one process) or "ray" (Ray Serve)
    url: str
    data_dir: Path


@pytest.fixture(scope="module")
def ray_server(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """hotpose on a local Ray cluster (2 CPUs, loopback), its data in a temporary folder."""
    pytest.importorskip("ray.serve", reason="ray[serve] is not installed (pip install 'hotpose[ray]')")
    from hotpose.service.deploy import ray_app, ray_run

    data = tmp_path_factory.mktemp("ray-data")
    env = {**RAY_ENV, "HOTPOSE_LIFTER_WEIGHTS": str(tiny_weights), "HOTPOSE_DATA_DIR": str(data)}
    config = tmp_path_factory.mktemp("ray-config") / "serve.yaml"
    config.write_text(_config_yaml(ray_app.DEPLOYMENTS))
    try:
        url = ray_run.start("127.0.0.1", free_port(), config=config, num_cpus=2, env=env)
        yield Server("ray", url, data)
    finally:
        ray_run.stop()


def _config_yaml(deployments: dict[str, object]) -> str:
    import yaml

    entries = [{"name": name, **RAY_OPTIONS.get(name, {})} for name in deployments]
    return yaml.safe_dump({"applications": [{"name": "hotpose", "deployments": entries}]})


@pytest.fixture(scope="module")
def process_server(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("process-data")
    settings = Settings(device="cpu", lifter="hot_mixste", lifter_weights=tiny_weights, data_dir=data, max_streams=3)
    with serve(create_app(settings)) as url:
        yield Server("process", url, data)


@pytest.fixture(params=["process", "ray"])
def server(request: pytest.FixtureRequest) -> Server:
    """The single-process server and the Ray Serve deployment: the same product behind the same URL scheme."""
    if request.param == "ray":
        return request.getfixturevalue("ray_server")  # type: ignore[no-any-return]
    return request.getfixturevalue("process_server")  # type: ignore[no-any-return]
