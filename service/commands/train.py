"""`hotpose train-lifter`: one training run, or a recipe of phases (`hotpose.models.recipe`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hotpose.service.commands.base import Subparsers


def add_parsers(sub: Subparsers) -> None:
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
    t.add_argument("--quiet", action="store_true", help="no progress bar (none is drawn off a terminal either)")
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
    from hotpose_client.progress import bar

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
        bars: dict[str, Any] = {}

        def on_step(phase: str, step: int, steps: int) -> None:
            if phase not in bars:
                for b in bars.values():
                    b.close()
                bars[phase] = bar(steps, f"train {phase}", unit="step", quiet=args.quiet)
            bars[phase].update(1)

        try:
            result = run_recipe(
                args.recipe, args.out, args.data, device=args.device, threads=args.threads, on_step=on_step
            )
        except RecipeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for b in bars.values():
            b.close()
        report = {"out": str(result.out), "trained": result.trained, "skipped": result.skipped}
        print(json.dumps({**report, **result.metrics}))
        return 0
    if args.data is None or args.out is None:
        print("error: train-lifter needs --data and --out (or --recipe)", file=sys.stderr)
        return 2
    config = TrainConfig(data=args.data, out=args.out, **settings)
    with bar(config.optim.steps, "train", unit="step", quiet=args.quiet) as steps:
        metrics = train(config, on_step=lambda _: steps.update(1))
    print(json.dumps({"out": str(args.out), **metrics}))
    return 0
