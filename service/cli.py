"""The `hotpose` command line.

    hotpose serve                  start the HTTP server (HOTPOSE_* settings)
    hotpose bench lifter [...]     params, FLOPs and latency of mixste vs hot_mixste
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    settings = Settings()
    host = args.host or settings.host
    port = args.port or settings.port
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    return 0


def _bench_lifter(args: argparse.Namespace) -> int:
    from models.bench import bench_lifter, format_lifter_report

    report = bench_lifter(
        dim=args.dim,
        frames=args.frames,
        token_num=args.token_num,
        layer_index=args.layer_index,
        batches=tuple(args.batch),
        rounds=args.rounds,
        official_repo=args.official,
        threads=args.threads,
    )
    print(json.dumps(report) if args.json else format_lifter_report(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hotpose", description="video 3D human pose service")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="start the HTTP/WebSocket server")
    s.add_argument("--host", default=None, help="default HOTPOSE_HOST or 127.0.0.1")
    s.add_argument("--port", type=int, default=None, help="default HOTPOSE_PORT or 8000")
    s.set_defaults(func=_serve)

    b = sub.add_parser("bench", help="benchmarks (figures for the README)")
    bsub = b.add_subparsers(dest="target", required=True)
    bl = bsub.add_parser("lifter", help="mixste vs hot_mixste: params, FLOPs, interleaved latency")
    bl.add_argument("--dim", type=int, default=512)
    bl.add_argument("--frames", type=int, default=243)
    bl.add_argument("--token-num", type=int, default=81)
    bl.add_argument("--layer-index", type=int, default=3)
    bl.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    bl.add_argument("--rounds", type=int, default=7, help="interleaved rounds per batch size")
    bl.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    bl.add_argument(
        "--official", type=Path, default=None,
        help="root of a checkout of the official HoT repository, to time its code in the same run",
    )
    bl.add_argument("--json", action="store_true", help="print the raw report as one JSON line")
    bl.set_defaults(func=_bench_lifter)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
