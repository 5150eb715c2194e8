"""`hotpose detect2d` and `hotpose run`: the models in process on an image or a video (no server)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hotpose.service.commands.base import Subparsers, setting_help

if TYPE_CHECKING:
    from hotpose.models.detector.topdown import TopDown
    from hotpose.service.settings import Settings


def add_parsers(sub: Subparsers) -> None:
    d = sub.add_parser("detect2d", help="2D keypoints of every person per frame, one JSON line per frame")
    d.add_argument("path", type=Path, help="an image or a video")
    d.add_argument("--format", choices=["json"], default="json", help="output format (JSON lines)")
    d.add_argument(
        "--render",
        type=Path,
        default=None,
        help="also write the video with skeletons drawn (.mp4); with --explain, the image (.png)",
    )
    d.add_argument(
        "--explain",
        default=None,
        metavar="JOINT",
        help="TransPose models, an image and --render: draw where the last attention layer looks from "
        "this COCO joint's predicted location (a name such as l_wrist, or 0-16)",
    )
    _add_2d_flags(d)
    d.add_argument("--device", default=None, help="cpu, cuda (default: cuda when present)")
    d.add_argument("--quiet", action="store_true", help="no progress bar (none is drawn off a terminal either)")
    d.set_defaults(func=_detect2d)

    r = sub.add_parser("run", help="video -> 2D + 3D poses of every person, as JSON (in process)")
    r.add_argument("video", type=Path)
    r.add_argument("-o", "--output", type=Path, required=True)
    r.add_argument("--lifter", default=None, help=setting_help("lifter"))
    r.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="default HOTPOSE_LIFTER_WEIGHTS (for its lifter), else the shipped ones",
    )
    _add_2d_flags(r)
    r.add_argument("--device", default=None)
    camera = r.add_mutually_exclusive_group()
    camera.add_argument("--focal-px", type=float, default=None, help="the camera's focal length in pixels")
    camera.add_argument("--fov-deg", type=float, default=None, help="the camera's horizontal field of view (degrees)")
    r.add_argument("--person-height-m", type=float, default=None, help="everyone's height, to place them (metres)")
    r.add_argument("--render", type=Path, default=None, help="also write the video with 2D skeletons and a 3D panel")
    r.add_argument("--quiet", action="store_true", help="no progress bars (none is drawn off a terminal either)")
    r.add_argument(
        "--root-relative",
        action="store_true",
        help="with --render: the 3D panel draws each person about their pelvis, not placed in one scene",
    )
    r.set_defaults(func=_run)


def _add_2d_flags(p: argparse.ArgumentParser) -> None:
    """The 2D stage's flags; their defaults are the HOTPOSE_* settings."""
    from hotpose.models.detector import HEATMAP_KEYPOINT_MODELS, KEYPOINT_MODELS, PERSON_DETECTORS

    p.add_argument("--person-detector", choices=sorted(PERSON_DETECTORS), default=None,
                   help=setting_help("person_detector"))  # fmt: skip
    p.add_argument("--keypoints", choices=sorted(KEYPOINT_MODELS) + sorted(HEATMAP_KEYPOINT_MODELS), default=None,
                   help=setting_help("keypoints"))  # fmt: skip
    p.add_argument("--keypoints-weights", type=Path, default=None,
                   help="the authors' checkpoint of a transpose_* / tokenpose_* / uniformer_* keypoint model "
                   "(default HOTPOSE_KEYPOINTS_WEIGHTS, for HOTPOSE_KEYPOINTS)")  # fmt: skip


def _create_2d(args: argparse.Namespace, s: Settings) -> TopDown:
    """The 2D stage of the flags over the settings (the server's, built the same way)."""
    from dataclasses import replace

    from hotpose.models.device import pick_device
    from hotpose.service.backends import create_2d_stage
    from hotpose.service.engine import EngineConfig

    config = EngineConfig.from_settings(s)
    keypoints = args.keypoints or s.keypoints
    # HOTPOSE_KEYPOINTS_WEIGHTS belongs to HOTPOSE_KEYPOINTS: another --keypoints needs its own --keypoints-weights
    weights = args.keypoints_weights or (s.keypoints_weights if keypoints == s.keypoints else None)
    detector = replace(config.detector, person_detector=args.person_detector or s.person_detector,
                       keypoints=keypoints, keypoints_weights=weights)  # fmt: skip
    return create_2d_stage(detector, str(pick_device(args.device or s.device)))


def _joint_index(joint: str) -> int:
    """A COCO-17 joint by name (`l_wrist`) or index (`9`)."""
    from hotpose.models.keypoints import COCO_JOINTS

    if joint.isdigit() and int(joint) < len(COCO_JOINTS):
        return int(joint)
    if joint in COCO_JOINTS:
        return COCO_JOINTS.index(joint)
    raise ValueError(f"unknown joint {joint!r}: one of {', '.join(COCO_JOINTS)} or 0-{len(COCO_JOINTS) - 1}")


def _explain(args: argparse.Namespace) -> int:
    """`detect2d IMAGE --explain JOINT --render out.png`: TransPose's dependency maps of every person."""
    import cv2

    from hotpose.models.checkpoint import CheckpointError
    from hotpose.models.detector.heatmap_pose import HeatmapPose
    from hotpose.models.detector.weights import WeightsError
    from hotpose.service.render import draw_dependency
    from hotpose.service.settings import Settings
    from hotpose.service.video import VideoError, iter_frames, probe

    try:
        joint = _joint_index(args.explain)
        if args.render is None:
            raise ValueError("--explain draws into an image: pass --render out.png")
        info = probe(args.path)
        if not (info.frames == 1 and info.fps == 0.0):
            raise ValueError(f"--explain works on an image; {args.path} is a video")
        stage = _create_2d(args, Settings())
        model = stage.keypoint_model
        if not isinstance(model, HeatmapPose) or not hasattr(model.model, "forward_with_attention"):
            raise ValueError(f"--explain needs a TransPose keypoint model (transpose_*), not {model.name}")
        _, _, frame = next(iter(iter_frames(args.path)))
        people = stage.process_image(frame)
        maps = [model.explain(frame, model.roi_from_keypoints(p.keypoints), joint) for p in people]
        sys.stdout.write(json.dumps({"index": 0, "time": 0.0, "people": [p.to_dict() for p in people]}) + "\n")
        image = draw_dependency(frame, people, maps)
        if not cv2.imwrite(str(args.render), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {args.render} (an image name: .png or .jpg)")
    except (ValueError, VideoError, WeightsError, CheckpointError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _detect2d(args: argparse.Namespace) -> int:
    if args.explain is not None:
        return _explain(args)
    import cv2

    from hotpose.models.checkpoint import CheckpointError
    from hotpose.models.detector.weights import WeightsError
    from hotpose.service.render import draw_people
    from hotpose.service.settings import Settings
    from hotpose.service.video import VideoError, iter_frames, probe
    from hotpose_client.progress import track

    try:
        info = probe(args.path)
        detector = _create_2d(args, Settings())
        writer = None
        out = sys.stdout
        still = info.frames == 1 and info.fps == 0.0
        frames = track(
            iter_frames(args.path), "detect2d", total=info.frames or None, unit="frame", quiet=still or args.quiet
        )
        for index, t, frame in frames:
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
    except (VideoError, WeightsError, CheckpointError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _run(args: argparse.Namespace) -> int:
    from hotpose.models import LIFTERS, create_lifter, resolve_weights
    from hotpose.models.checkpoint import CheckpointError
    from hotpose.models.detector.weights import WeightsError
    from hotpose.models.device import pick_device
    from hotpose.service.pipeline import PersonPose, clip_pipeline, iter_poses, write_poses_json
    from hotpose.service.placing import CameraRequest
    from hotpose.service.settings import Settings
    from hotpose.service.video import iter_frames, probe
    from hotpose_client.progress import bar, track

    s = Settings()
    name = args.lifter or s.lifter
    # HOTPOSE_LIFTER_WEIGHTS belongs to HOTPOSE_LIFTER: another --lifter takes its own shipped weights
    configured = s.lifter_weights if name == s.lifter else None
    try:
        weights = resolve_weights(name, args.weights or configured)
        if weights is None:
            where = LIFTERS[name].published
            hint = f" (the authors publish them: {where})" if where else ""
            print(f"error: no trained weights for lifter {name!r}: pass --weights{hint}", file=sys.stderr)
            return 1
        info = probe(args.video)
        detector = _create_2d(args, s)
        lifter = create_lifter(name, weights=weights, device=pick_device(args.device or s.device))
        t0 = time.perf_counter()
        # frames go to the file as they are final; only --render keeps the people of every frame
        request = CameraRequest(args.focal_px, args.fov_deg, args.person_height_m)
        pipeline = clip_pipeline(detector, lifter, s.track_max_gap_s, request, batch=s.lifter_max_batch)
        poses = iter_poses(iter_frames(args.video), pipeline)
        drawn: dict[int, list[PersonPose]] = {}
        n = people = 0
        camera = request.camera(info.width, info.height)
        with bar(info.frames or None, "run", unit="frame", quiet=args.quiet) as progress:
            for fp in write_poses_json(poses, args.output, info.fps, info.width, info.height, camera):
                n += 1
                people += len(fp.people)
                progress.update(1)
                if args.render is not None:
                    drawn[fp.index] = fp.people
        lifted = time.perf_counter() - t0
        print(f"{n} frames, {people} person-frames -> {args.output} ({n / lifted:.1f} frames/s)", file=sys.stderr)
        if args.render is not None:
            from hotpose.service.render import render_video

            t0 = time.perf_counter()
            placed = not args.root_relative
            frames = track(iter_frames(args.video), "render", total=info.frames or None, unit="frame", quiet=args.quiet)
            written = render_video(frames, drawn, args.render, info.fps, placed=placed, camera=camera)
            took = time.perf_counter() - t0
            print(f"rendered {written} frames -> {args.render} ({written / took:.1f} frames/s)", file=sys.stderr)
    except (ValueError, WeightsError, CheckpointError, OSError) as exc:  # ValueError: VideoError, bad camera
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
