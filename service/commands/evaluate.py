"""`hotpose eval-2d` and `hotpose eval-lifter`: accuracy under fixed protocols."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hotpose.service.commands.base import Subparsers, setting_help


def add_parsers(sub: Subparsers) -> None:
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
    e.add_argument("--model", default=None, help=setting_help("lifter"))
    e.add_argument("--quiet", action="store_true", help="no progress bar (none is drawn off a terminal either)")
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

    r = sub.add_parser("eval-root", help="where people are placed: MRPE and two-person figures, one JSON line")
    r.add_argument("--data", type=Path, required=True, help="mocap npz (format of shared/mocap)")
    r.add_argument("--split", choices=["all", "val", "train"], default="val", help="as eval-lifter (default: val)")
    r.add_argument("--model", default=None, help=setting_help("lifter"))
    r.add_argument("--weights", type=Path, default=None, help="default: the weights shipped for --model")
    r.add_argument("--views-every", type=int, default=1, help="evaluate every N-th view only (a quicker subset)")
    r.add_argument("--pairs", type=int, default=16, help="two-person pairs (each two views)")
    r.add_argument("--device", default=None)
    r.add_argument("--threads", type=int, default=None)
    r.set_defaults(func=_eval_root)


def _eval_2d(args: argparse.Namespace) -> int:
    import torch

    from hotpose.models.detector import create_detector
    from hotpose.models.detector.footage import FOOTAGE_HEADER, OFFICE, RAGA, evaluate_footage, format_footage_report
    from hotpose.service.settings import Settings

    s = Settings()  # the 2D weights cache, the default keypoint model
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
            fit = crop_fit(create_detector(det, kp or s.keypoints, device=args.device, home=s.home), args.videos)
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
        stage = create_detector(det, kp or s.keypoints, device=args.device, home=s.home)
        report = evaluate_footage(stage, args.videos)
        line = json.dumps({"stage": spec, **report}) if args.json else format_footage_report(spec, report)
        print(line, flush=True)
    return 0


def _eval_lifter(args: argparse.Namespace) -> int:
    import torch

    from hotpose.models import create_lifter, resolve_weights
    from hotpose.models.bench import count_flops
    from hotpose.models.data import EvalCameras, eval_views, load_clips, split_by_subject
    from hotpose.models.device import pick_device
    from hotpose.models.evaluate import evaluate
    from hotpose.service.settings import Settings
    from hotpose_client.progress import bar

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
    s = Settings()
    args.model = args.model or s.lifter
    weights = resolve_weights(args.model, args.weights or (s.lifter_weights if args.model == s.lifter else None))
    if weights is None:  # an untrained model's figures would read like real ones
        print(f"error: no trained weights for lifter {args.model!r}: pass --weights", file=sys.stderr)
        return 1
    model = create_lifter(args.model, weights=weights, device=pick_device(args.device or s.device))
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
    try:
        service = _service_lifting(model, args) if args.service else None
    except ValueError as e:  # the stream protocol's refusal (a seq2frame lifter asked for causal)
        print(f"error: --service {args.service}: {e}", file=sys.stderr)
        return 1
    with bar(2 * len(views), "eval-lifter", unit="view", quiet=args.quiet) as progress:
        metrics = evaluate(
            model,
            views,
            stride=args.stride,
            lift_sequence=service[0] if service else None,
            clip_groups=clip_groups,
            by_clip=args.by_clip,
            on_view=lambda: progress.update(1),
        )
    cfg = model.config
    x = torch.zeros(1, cfg.frames, cfg.joints, model.KIND.channels, device=next(model.parameters()).device)
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
    import numpy as np

    from hotpose.models.data import EVAL_IMAGE
    from hotpose.models.keypoints import denormalize_screen
    from hotpose.service.lifting import LiftPolicy, lift_root_relative, lift_sequence, min_delay
    from hotpose.service.settings import Settings
    from hotpose.service.stream_protocol import StreamConfig

    frames = model.config.frames
    defaults = Settings()
    flip = defaults.flip if args.service == "clip" else defaults.live_flip
    if args.service == "clip":
        policy = LiftPolicy.clip(frames, defaults.track_max_gap_s)
    else:
        stride = args.live_stride or defaults.live_stride
        # as a stream asking for this emission gets it (a seq2frame lifter refuses causal: ProtocolError)
        need = min_delay(frames, model.KIND)
        policy = (
            StreamConfig.from_settings(defaults).parse({"emit": args.service, "stride": stride}, frames, need).policy()
        )

    def lift(w: Any) -> Any:  # [N, F, 17, 2] -> [N, F, 17, 3], the whole batch the service would send
        return lift_root_relative(model, w, flip, batch=defaults.lifter_max_batch)

    def run(x: Any) -> Any:  # normalised 2D of the protocol's square image -> 3D
        px = np.asarray(denormalize_screen(x, EVAL_IMAGE, EVAL_IMAGE))
        times = np.arange(len(x)) / 30.0
        return lift_sequence(lift, px, times, policy, EVAL_IMAGE, EVAL_IMAGE, frames, model.KIND)

    about = {"service": args.service, "lift_stride": policy.stride, "delay_frames": policy.delay, "flip": flip}
    return run, about


def _eval_root(args: argparse.Namespace) -> int:
    """Views lifted and placed as a clip job does (clip policy, the settings' flip), roots measured."""
    import logging

    import torch

    from hotpose.models import create_lifter, resolve_weights
    from hotpose.models.data import eval_views, load_clips, split_by_subject
    from hotpose.models.device import pick_device
    from hotpose.service.lifting import LiftPolicy, lift_root_relative
    from hotpose.service.root_eval import evaluate_roots
    from hotpose.service.settings import Settings

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.views_every < 1 or args.pairs < 0:
        print("error: --views-every must be >= 1 and --pairs >= 0", file=sys.stderr)
        return 1
    s = Settings()
    name = args.model or s.lifter
    weights = resolve_weights(name, args.weights or (s.lifter_weights if name == s.lifter else None))
    if weights is None:
        print(f"error: no trained weights for lifter {name!r}: pass --weights", file=sys.stderr)
        return 1
    model = create_lifter(name, weights=weights, device=pick_device(args.device or s.device))
    clips = load_clips(args.data)
    if args.split != "all":
        clips = split_by_subject(clips)[1 if args.split == "val" else 0]
    views = eval_views(clips)[:: args.views_every]
    frames = model.config.frames
    policy = LiftPolicy.clip(frames, s.track_max_gap_s)
    log = logging.getLogger("hotpose.eval-root")

    def lift(w: Any) -> Any:
        return lift_root_relative(model, w, s.flip, batch=s.lifter_max_batch)

    report = evaluate_roots(views, lift, policy, frames, pairs=args.pairs, progress=log.debug)
    header = {"model": name, "weights": str(weights), "data": str(args.data), "split": args.split,
              "clips": len(clips), "views": len(views), "flip": s.flip}  # fmt: skip
    print(json.dumps({**header, **report}))
    return 0
