"""`hotpose bench lifter|detector|pose2d|render|service|soak`: the benchmarks behind docs/benchmarks.md."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path

from hotpose.service.commands.base import Subparsers, setting_help


def add_parsers(sub: Subparsers) -> None:
    b = sub.add_parser("bench", help="benchmarks (figures for the README)")
    bsub = b.add_subparsers(dest="target", required=True)
    bl = bsub.add_parser(
        "lifter",
        help="every registered lifter at its official size: params, FLOPs per window and per output frame, "
        "interleaved latency, pruned/host ratios; with --dim: mixste vs hot_mixste at that size",
    )
    bl.add_argument("--names", nargs="+", default=None, help="lifters to run (default: every registered one)")
    bl.add_argument("--dim", type=int, default=None, help="mixste vs hot_mixste only, at this width")
    bl.add_argument("--heads", type=int, default=8, help="attention heads (with --dim)")
    bl.add_argument("--frames", type=int, default=243, help="(with --dim)")
    bl.add_argument("--token-num", type=int, default=81, help="(with --dim)")
    bl.add_argument("--layer-index", type=int, default=3, help="(with --dim)")
    bl.add_argument("--batch", type=int, nargs="+", default=None, help="batch sizes (default: 1 4 with --dim, else 1)")
    bl.add_argument("--rounds", type=int, default=5, help="interleaved rounds per batch size")
    bl.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    bl.add_argument("--json", action="store_true", help="print the raw report as one JSON line")
    bl.add_argument("--quiet", action="store_true", help="no progress bar (none is drawn off a terminal either)")
    bl.set_defaults(func=_bench_lifter)
    bd = bsub.add_parser(
        "detector", help="2D models alone (batch 1 and 4) and whole 2D stages per frame, 720p, 1 and 3 people"
    )
    bd.add_argument("--video", type=Path, default=None, help="frames to run on (default: a synthetic pan)")
    bd.add_argument("--frames", type=int, default=60)
    bd.add_argument("--rounds", type=int, default=20, help="timed calls per crop batch size")
    bd.add_argument("--threads", type=int, default=None)
    bd.add_argument("--device", default="cpu")
    bd.add_argument("--json", action="store_true")
    bd.add_argument("--quiet", action="store_true", help="no progress bar (none is drawn off a terminal either)")
    bd.set_defaults(func=_bench_detector)
    bp = bsub.add_parser(
        "pose2d", help="TransPose, TokenPose, UniFormer and BlazePose's landmarks: params, GMACs, ms per crop"
    )
    bp.add_argument("--names", nargs="+", default=None, help="only these models (default: all)")
    bp.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="crops per call")
    bp.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds per batch size")
    bp.add_argument("--threads", type=int, default=None)
    bp.add_argument("--device", default="cpu")
    bp.add_argument("--json", action="store_true")
    bp.add_argument("--quiet", action="store_true", help="no progress bar (none is drawn off a terminal either)")
    bp.set_defaults(func=_bench_pose2d)
    br = bsub.add_parser("render", help="hotpose run --render on a 720p clip: lifting and rendering frames/s")
    br.add_argument("--rounds", type=int, default=3)
    br.add_argument("--frames", type=int, default=120)
    br.add_argument("--threads", type=int, default=None)
    br.add_argument("--json", action="store_true")
    br.add_argument("--quiet", action="store_true", help="no progress bar (none is drawn off a terminal either)")
    br.set_defaults(func=_bench_render)

    bs = bsub.add_parser("service", help="720p clip throughput vs decode; live latency for 1 and 4 streams")
    bs.add_argument("--lifter", default=None, help="hot_mixste or mixste; " + setting_help("lifter"))
    bs.add_argument("--weights", type=Path, default=None, help="lifter checkpoint (default: the shipped one)")
    bs.add_argument("--rounds", type=int, default=3)
    bs.add_argument("--seconds", type=float, default=20.0, help="length of each live run")
    bs.add_argument("--fps", type=float, default=15.0, help="frame rate each live client sends at")
    bs.add_argument("--threads", type=int, default=None)
    bs.add_argument("--device", default=None)
    bs.add_argument("--json", action="store_true")
    bs.add_argument("--quiet", action="store_true", help="no progress bar (none is drawn off a terminal either)")
    bs.add_argument(
        "--ray", action="store_true",
        help="the single-process server and hotpose on a local Ray Serve cluster side by side, over HTTP: clip "
        "jobs, one live stream, the handle overhead, each model replica's throughput",
    )  # fmt: skip
    bs.add_argument("--ray-config", type=Path, default=None, help="Serve config for --ray (default: deploy/serve.yaml)")
    bs.set_defaults(func=_bench_service)

    bk = bsub.add_parser(
        "soak",
        help="N live streams for S seconds against a server process on loopback: per-stream accounting, "
        "latency, the server's memory over time; exit 1 when it grows 5%% or more after warm-up",
    )
    bk.add_argument("--streams", type=int, default=4, help="live clients at once (at most 64)")
    bk.add_argument("--fps", type=float, default=10.0, help="frame rate each client sends at (at most 60)")
    bk.add_argument("--seconds", type=float, default=180.0, help="how long each client sends (at most 3600)")
    bk.add_argument(
        "--warmup", type=float, default=None, help="seconds left out of the memory verdict (default: S/6, at most 30)"
    )
    bk.add_argument("--json", action="store_true", help="print the raw report (memory samples included) as JSON")
    bk.add_argument("--quiet", action="store_true", help="no progress bar (none is drawn off a terminal either)")
    bk.set_defaults(func=_bench_soak)


def _bench_command(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A `hotpose bench` handler whose missing input (`BenchInputError`) is one line on stderr, exit 1."""

    @functools.wraps(run)
    def command(args: argparse.Namespace) -> int:
        from hotpose.models.bench import BenchInputError

        try:
            return run(args)
        except BenchInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return command


def _bench_lifter(args: argparse.Namespace) -> int:
    from hotpose.models.bench import bench_lifter, bench_lifters, format_lifter_report, format_lifters_report
    from hotpose_client.progress import bar

    if args.dim is None:
        from hotpose.models import LIFTERS

        names = tuple(args.names) if args.names else None
        unknown = sorted(set(names or ()) - set(LIFTERS))
        if unknown:
            print(f"error: unknown lifters {unknown}; known: {', '.join(sorted(LIFTERS))}", file=sys.stderr)
            return 1
        batches = tuple(args.batch or [1])
        with bar(args.rounds * len(batches), "bench lifter", unit="round", quiet=args.quiet) as b:
            family = bench_lifters(
                names, batches=batches, rounds=args.rounds, threads=args.threads, on_round=lambda: b.update(1)
            )
        print(json.dumps(family) if args.json else format_lifters_report(family))
        return 0
    batches = tuple(args.batch or [1, 4])
    with bar(args.rounds * len(batches), "bench lifter", unit="round", quiet=args.quiet) as b:
        report = bench_lifter(
            dim=args.dim,
            frames=args.frames,
            token_num=args.token_num,
            layer_index=args.layer_index,
            batches=batches,
            rounds=args.rounds,
            threads=args.threads,
            num_heads=args.heads,
            on_round=lambda: b.update(1),
        )
    print(json.dumps(report) if args.json else format_lifter_report(report))
    return 0


@_bench_command
def _bench_detector(args: argparse.Namespace) -> int:
    from hotpose.models.bench import bench_detector, format_detector_report
    from hotpose_client.progress import bar

    with bar(None, "bench detector", unit="round", quiet=args.quiet) as b:
        report = bench_detector(
            video=args.video, frames=args.frames, rounds=args.rounds, threads=args.threads, device=args.device,
            on_round=lambda: b.update(1),
        )  # fmt: skip
    print(json.dumps(report) if args.json else format_detector_report(report))
    return 0


def _bench_pose2d(args: argparse.Namespace) -> int:
    from hotpose.models.pose2d import names
    from hotpose.models.pose2d.bench import bench_pose2d, format_pose2d_report
    from hotpose_client.progress import bar

    unknown = sorted(set(args.names or ()) - set(names()))
    if unknown:
        print(f"error: unknown 2D pose models {unknown}; known: {', '.join(names())}", file=sys.stderr)
        return 1
    with bar(args.rounds * len(args.batch), "bench pose2d", unit="round", quiet=args.quiet) as b:
        report = bench_pose2d(
            args.names, rounds=args.rounds, threads=args.threads, device=args.device, batches=tuple(args.batch),
            on_round=lambda: b.update(1),
        )  # fmt: skip
    print(json.dumps(report) if args.json else format_pose2d_report(report))
    return 0


@_bench_command
def _bench_render(args: argparse.Namespace) -> int:
    from hotpose.service.bench import bench_render
    from hotpose_client.progress import bar

    with bar(args.rounds, "bench render", unit="round", quiet=args.quiet) as b:
        report = bench_render(
            rounds=args.rounds, frames=args.frames, threads=args.threads, on_round=lambda: b.update(1)
        )
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{report['clip_source']}, {report['frames']} frames 1280x720 at {report['clip_fps']:g} fps; "
            f"median of {report['rounds']}: decode+detect+lift {report['lift_fps']:.1f} frames/s, "
            f"render {report['render_fps']:.1f} frames/s (output {report['output_size']}), "
            f"both {report['total_fps']:.1f} frames/s = {report['realtime_factor']:.2f}x real time"
        )
    return 0


@_bench_command
def _bench_service(args: argparse.Namespace) -> int:
    from hotpose.service.bench import bench_service, format_service_report
    from hotpose.service.settings import Settings
    from hotpose_client.progress import bar

    given = {"lifter": args.lifter, "lifter_weights": args.weights, "device": args.device, "threads": args.threads}
    settings = Settings(**{k: v for k, v in given.items() if v is not None})  # the rest from HOTPOSE_* / defaults
    if args.ray:
        from hotpose.service.deploy.ray_bench import bench_ray, format_ray_report

        with bar(args.rounds + 1, "bench service --ray", unit="part", quiet=args.quiet) as b:
            ray_report = bench_ray(settings, args.rounds, args.seconds, args.fps, args.ray_config, lambda: b.update(1))
        print(json.dumps(ray_report) if args.json else format_ray_report(ray_report))
        return 0
    with bar(args.rounds + 3, "bench service", unit="part", quiet=args.quiet) as b:  # clip rounds, 3 live runs
        report = bench_service(
            settings, rounds=args.rounds, seconds=args.seconds, fps=args.fps, on_step=lambda: b.update(1)
        )
    print(json.dumps(report) if args.json else format_service_report(report))
    return 0


def _bench_soak(args: argparse.Namespace) -> int:
    from hotpose.service.soak import SoakError, format_soak_report, soak
    from hotpose_client.progress import bar

    try:
        with bar(args.seconds, "bench soak", unit="s", quiet=args.quiet) as b:
            report = soak(args.streams, args.fps, args.seconds, warmup_s=args.warmup, on_second=lambda: b.update(1))
    except SoakError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report) if args.json else format_soak_report(report))
    return 0 if report["ok"] else 1
