"""`hotpose-client`: process a clip or stream a camera from the shell.

hotpose-client clip dance.mp4 -o dance.bvh      # .json, .npz, .csv or .bvh
hotpose-client result JOB_ID -o p2.bvh --track-id 2   # a finished job again, no new upload
hotpose-client webcam                            # one JSON line per processed frame
hotpose-client clip phone.mp4 -o p.json --fov-deg 66 --person-height-m 1.2   # camera hints
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hotpose_client.client import DEFAULT_URL, PoseClient
from hotpose_client.errors import HotposeError
from hotpose_client.results import Frame

FORMATS = (".json", ".npz", ".csv", ".bvh")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="hotpose-client", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--url", default=os.environ.get("HOTPOSE_URL", DEFAULT_URL), help="server (env HOTPOSE_URL)")
    p.add_argument("--api-key", default=os.environ.get("HOTPOSE_API_KEY"), help="env HOTPOSE_API_KEY")
    # the same two options after the command too (`hotpose-client clip x.mp4 -o x.json --url ...`)
    conn = argparse.ArgumentParser(add_help=False)
    conn.add_argument("--url", default=argparse.SUPPRESS, help="server (env HOTPOSE_URL)")
    conn.add_argument("--api-key", default=argparse.SUPPRESS, help="env HOTPOSE_API_KEY")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("clip", parents=[conn], help="upload a video and save its poses")
    c.add_argument("video", type=Path)
    c.add_argument("-o", "--out", type=Path, required=True, help="output: " + ", ".join(FORMATS))
    c.add_argument("--track-id", type=int, default=None, help="BVH: the person to export (default: the only one)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_camera_hints(c)

    r = sub.add_parser("result", parents=[conn], help="save the poses of a finished job (no upload)")
    r.add_argument("job_id")
    r.add_argument("-o", "--out", type=Path, required=True, help="output: " + ", ".join(FORMATS))
    r.add_argument("--track-id", type=int, default=None, help="BVH: the person to export (default: the only one)")

    w = sub.add_parser("webcam", parents=[conn], help="stream a camera; print one JSON line per processed frame")
    w.add_argument("--device", default="0", help="camera index or video path")
    w.add_argument("--emit", choices=("causal", "delayed"), default="causal")
    w.add_argument("--frames", type=int, default=None, help="stop after this many frames")
    w.add_argument("--show", action="store_true", help="show the camera with the 2D skeleton (OpenCV window)")
    _add_camera_hints(w)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        with PoseClient(base_url=args.url, api_key=args.api_key) as client:
            if args.command == "clip":
                return _clip(client, args)
            if args.command == "result":
                return _save(client, args.job_id, args.out, args.track_id)
            return _webcam(client, args)
    except (HotposeError, OSError, ValueError) as e:
        print(f"hotpose-client: {e}", file=sys.stderr)
        return 1


def _add_camera_hints(p: argparse.ArgumentParser) -> None:
    """`--focal-px` or `--fov-deg`, and `--person-height-m`: how the server places people (root_3d)."""
    g = p.add_argument_group("camera hints (for root_3d; the server checks the ranges)")
    lens = g.add_mutually_exclusive_group()
    lens.add_argument("--focal-px", type=float, metavar="PX", help="the video's focal length in pixels")
    fov_help = "the camera's horizontal field of view in degrees (without either: 70, and camera.assumed is true)"
    lens.add_argument("--fov-deg", type=float, metavar="DEG", help=fov_help)
    g.add_argument("--person-height-m", type=float, metavar="M", help="the people's height in metres (0.3-2.5)")


def _clip(client: PoseClient, args: argparse.Namespace) -> int:
    _check_format(args.out)
    job_id = client.submit_clip(
        args.video,
        progress=not args.quiet,
        focal_px=args.focal_px,
        fov_deg=args.fov_deg,
        person_height_m=args.person_height_m,
    )
    client.wait(job_id, progress=not args.quiet)
    return _save(client, job_id, args.out, args.track_id)


def _check_format(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"unknown output format {suffix!r}: use one of {', '.join(FORMATS)}")
    return suffix


def _save(client: PoseClient, job_id: str, out: Path, track_id: int | None) -> int:
    """Write a finished job's poses; a failed export names the job, which stays on the server."""
    suffix = _check_format(out)
    seq = client.result(job_id)
    try:
        if suffix == ".json":
            seq.to_json(out)
        elif suffix == ".npz":
            seq.to_npz(out)
        elif suffix == ".csv":
            seq.to_csv(out)
        else:
            seq.to_bvh(out, track_id)
    except ValueError as e:
        again = f"hotpose-client result {job_id} -o {out} --track-id N"
        raise ValueError(f"{e}; the job is kept on the server, export it again with: {again}") from e
    print(json.dumps({"out": str(out), "job_id": job_id, "frames": len(seq), "track_ids": seq.track_ids()}))
    return 0


def _webcam(client: PoseClient, args: argparse.Namespace) -> int:
    from hotpose_client.webcam import webcam

    device: int | str = int(args.device) if args.device.isdigit() else args.device
    if args.show:
        _check_gui()
    shown: dict[int, object] = {}
    frames = webcam(device, max_frames=args.frames)
    if args.show:
        frames = _keep_images(frames, shown)
    live = client.stream(
        frames, emit=args.emit, focal_px=args.focal_px, fov_deg=args.fov_deg, person_height_m=args.person_height_m
    )
    with live:
        for frame in live:
            print(json.dumps({**frame.to_dict(), "latency_ms": frame.latency_ms, "dropped": frame.dropped}), flush=True)
            if args.show and _show(shown, frame):
                break
    s = live.state
    print(f"sent {s.sent}, answered {s.answered}, dropped {len(s.dropped)}, errors {len(s.errors)}", file=sys.stderr)
    return 0


def _check_gui() -> None:
    """`--show` needs an OpenCV built with a GUI; the `webcam` extra installs the headless one."""
    import cv2

    if re.search(r"^\s*GUI:\s*NONE\s*$", cv2.getBuildInformation(), re.MULTILINE):
        raise ValueError(
            "--show needs OpenCV with a GUI, and this one is headless: "
            "pip uninstall opencv-python-headless && pip install opencv-python"
        )


def _keep_images(frames: Iterator[tuple[float, Any]], shown: dict[int, object]) -> Iterator[tuple[float, Any]]:
    """The webcam's frames passed on, the last 60 kept by index for `_show`."""
    for i, (t, img) in enumerate(frames):
        shown[i] = img
        for old in [k for k in shown if k < i - 60]:
            del shown[old]
        yield t, img


def _show(shown: dict[int, object], frame: Frame) -> bool:
    """Draw the frame's 2D skeletons; True when the user pressed q or Esc."""
    import cv2
    import numpy as np

    img = shown.get(frame.index)
    if img is None:
        return False
    bgr = cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2BGR)
    for person in frame.people:
        for x, y, s in person.keypoints_2d:
            if s > 0.3:
                cv2.circle(bgr, (int(x), int(y)), 4, (0, 255, 0), -1)
        x0, y0 = int(person.bbox[0]), int(person.bbox[1])
        cv2.putText(bgr, f"id {person.track_id}", (x0, max(y0 - 6, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 0), 2)
    cv2.imshow("hotpose", bgr)
    return cv2.waitKey(1) & 0xFF in (ord("q"), 27)


if __name__ == "__main__":
    sys.exit(main())
