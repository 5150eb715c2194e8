"""The Serve config shipped in service/deploy/ and how `hotpose serve --ray` reads one (no cluster)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hotpose.service.deploy.ray_run import CONFIG, ServeConfigError, read_config

pytestmark = pytest.mark.ray


def test_the_shipped_config_is_a_valid_serve_config_for_every_deployment() -> None:
    serve_schema = pytest.importorskip("ray.serve.schema", reason="ray[serve] is not installed")
    from hotpose.service.deploy import ray_app

    doc = yaml.safe_load(CONFIG.read_text())
    serve_schema.ServeDeploySchema.model_validate(doc)  # what `serve deploy` checks
    options, env = read_config(CONFIG)
    assert set(options) == set(ray_app.DEPLOYMENTS)
    assert doc["applications"][0]["import_path"] == "hotpose.service.deploy.ray_app:app"
    # a WebSocket holds an Ingress request for its life: the Ingress must admit more than the streams
    from hotpose.service.settings import Settings

    assert options["Ingress"]["max_ongoing_requests"] > Settings().max_streams
    assert env["HOTPOSE_THREADS"] == "1"
    for name, opts in options.items():  # every option is one `Deployment.options` takes
        ray_app.DEPLOYMENTS[name].options(**opts)


def test_a_config_hotpose_cannot_use_is_refused_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "serve.yaml"
    bad.write_text("applications: []\n")
    with pytest.raises(ServeConfigError, match="no application"):
        read_config(bad)
    bad.write_text("applications: [\n")
    with pytest.raises(ServeConfigError, match="cannot read"):
        read_config(bad)
    with pytest.raises(ServeConfigError, match="cannot read"):
        read_config(tmp_path / "missing.yaml")


def test_serve_ray_with_a_bad_config_exits_1_before_starting_anything(tmp_path: Path) -> None:
    pytest.importorskip("ray.serve", reason="ray[serve] is not installed")
    cmd = [sys.executable, "-m", "hotpose.service.cli", "serve", "--ray", "--ray-config", str(tmp_path / "no.yaml")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "cannot read the Serve config" in r.stderr
