"""Start hotpose on Ray Serve from Python (`hotpose serve --ray`, the tests, `hotpose bench service --ray`).

`start` joins the cluster `address` names (`RAY_ADDRESS`; None starts a local one bound to loopback),
deploys the application of `ray_app` with the deployment options of a Serve config (`serve.yaml` by
default) and the `HOTPOSE_*` variables of this process and of the config for every replica, and
returns the URL it serves on.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

CONFIG = Path(__file__).with_name("serve.yaml")
APP_NAME = "hotpose"


class ServeConfigError(ValueError):
    """A Serve config hotpose cannot use."""


def read_config(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """A Serve config -> (deployment name -> `Deployment.options` keywords, env_vars of its runtime_env)."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ServeConfigError(f"cannot read the Serve config {path}: {e}") from e
    apps = (doc or {}).get("applications") or []
    ours = [a for a in apps if a.get("name") == APP_NAME] or apps[:1]
    if not ours:
        raise ServeConfigError(f"{path}: no application (expected one named {APP_NAME!r})")
    app = ours[0]
    options = {d["name"]: {k: v for k, v in d.items() if k != "name"} for d in app.get("deployments") or []}
    env = {str(k): str(v) for k, v in ((app.get("runtime_env") or {}).get("env_vars") or {}).items()}
    return options, env


def start(
    host: str,
    port: int,
    config: Path = CONFIG,
    address: str | None = None,
    num_cpus: int | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Deploy hotpose on Ray Serve (blocking until every deployment is ready); returns its URL. Every
    replica gets the config's env_vars, overridden by this process's HOTPOSE_*, overridden by `env`."""
    import ray
    from ray import serve

    options, replica_env = read_config(config)
    replica_env.update({k: v for k, v in os.environ.items() if k.startswith("HOTPOSE_")})
    replica_env.update(env or {})
    address = address or os.environ.get("RAY_ADDRESS")
    if not ray.is_initialized():
        if address is None:  # a local cluster, bound to loopback
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            ray.init(
                num_cpus=num_cpus, include_dashboard=False, runtime_env={"env_vars": replica_env},
                _node_ip_address="127.0.0.1",
            )  # fmt: skip
        else:
            ray.init(address=address, runtime_env={"env_vars": replica_env})
    from hotpose.service.deploy.ray_app import build

    serve.start(http_options={"host": host, "port": port})
    # no Serve access log: the app logs each request itself (without query strings: `?api_key=`)
    serve.run(build(options), name=APP_NAME, route_prefix="/", logging_config={"enable_access_log": False})
    url = f"http://{host}:{port}"
    log.info("hotpose on Ray Serve at %s (deployments: %s)", url, ", ".join(sorted(options)))
    return url


def stop() -> None:
    """Remove the application and shut Serve and this process's Ray connection down."""
    import ray
    from ray import serve

    serve.shutdown()  # type: ignore[no-untyped-call]
    ray.shutdown()
