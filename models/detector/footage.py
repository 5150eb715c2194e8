"""How a 2D stage does on real footage of several people (`hotpose eval-2d`).

No labels exist for the shared clips, so every figure is a behaviour a user sees, checked against
what is known of the clip (`shared/videos/README.md`) or against the same stage on the unaltered
frames:
- **raga** (three seated musicians, the third half out of frame on the right): frames in which both
  fully visible performers are found, how many ids they got, frames in which the third is found;
- **office** (people walk in one at a time): people reported in the empty opening frames (frames
  0-57 show only a table), frames with more than one person, ids;
- **faces blurred**: each person's face blurred from the stage's own first pass (a feathered
  ellipse about the face landmarks, as privacy blurring does); the share of the people found on
  the plain frames that are found again;
- **small people**: a clip scaled to a third, three copies side by side on an empty 1280x720
  canvas; the share of frames in which each copy's people are found, and whether each has its own id.
A person "found again" has the torso centre (mean of shoulders and hips) within half the torso's
extent of the first one's.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hotpose.models.detector.base import Detector, Person
from hotpose.models.detector.tracking import box_ious

RAGA = "raga_three_performers_768x576_25fps.mp4"
OFFICE = "people_one_by_one_768x432_10fps.mp4"
Clip = list[tuple[float, np.ndarray]]


def torso(p: Person) -> tuple[np.ndarray, float]:
    """Centre of the shoulders and hips [2] and their extent (px, at least 10)."""
    c = p.coco17()[[5, 6, 11, 12], :2]
    return c.mean(0), max(float(np.ptp(c[:, 0])), float(np.ptp(c[:, 1])), 10.0)


def same_person(p: Person, q: Person) -> bool:
    (a, size), (b, _) = torso(p), torso(q)
    return bool(np.linalg.norm(a - b) < 0.5 * size)


def blur_faces(frame: np.ndarray, people: list[Person]) -> np.ndarray:
    """Each person's face blurred: a feathered ellipse about the face landmarks (BlazePose's first 11
    points: nose, eyes, ears, mouth), radius 0.8 x the ear-to-ear distance (at least 6 px)."""
    mask = np.zeros(frame.shape[:2], np.float32)
    for p in people:
        if p.layout != "blazepose33":
            raise ValueError(f"face blurring needs blazepose33 keypoints, got {p.layout}")
        face = p.keypoints[:11]
        if (face[:, 2] > 0.3).sum() < 3:
            continue
        c = face[:, :2].mean(0)
        r = max(0.8 * float(np.linalg.norm(face[7, :2] - face[8, :2])), 6.0)
        cv2.ellipse(mask, (int(c[0]), int(c[1])), (int(r), int(1.25 * r)), 0, 0, 360, 1.0, -1)
    if not mask.any():
        return frame
    soft = cv2.GaussianBlur(mask, (0, 0), 3)[..., None]
    blurred: np.ndarray = (soft * cv2.GaussianBlur(frame, (0, 0), 12) + (1 - soft) * frame).astype(np.uint8)
    return blurred


def small_copies(clip: Clip, copies: int = 3) -> tuple[Clip, list[int], int]:
    """Each frame scaled to a third, pasted `copies` times side by side on an empty 1280x720 canvas;
    returns the canvases, the x offset of each copy and their y offset."""
    out: Clip = []
    xs: list[int] = []
    h = 0
    for t, f in clip:
        small = cv2.resize(f, None, fx=1 / 3, fy=1 / 3, interpolation=cv2.INTER_AREA)
        h, w = small.shape[:2]
        gap = (1280 - copies * w) // (copies + 1)
        xs = [gap + k * (w + gap) for k in range(copies)]
        canvas = np.full((720, 1280, 3), 110, np.uint8)
        for x in xs:
            canvas[(720 - h) // 2 : (720 - h) // 2 + h, x : x + w] = small
        out.append((t, canvas))
    return out, xs, (720 - h) // 2


def run(stage: Detector, clip: Clip) -> list[list[Person]]:
    stage.reset()
    return [stage.process(frame, t) for t, frame in clip]


def read_clip(path: Path, stop: int = 10**9, step: int = 1) -> Clip:
    """(time, RGB frame) pairs of a video file, every `step`-th frame before `stop`."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot read the video {path}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    out: Clip = []
    i = 0
    while i < stop:
        ok, bgr = cap.read()
        if not ok:
            break
        if i % step == 0:
            out.append((i / fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        i += 1
    cap.release()
    return out


def found_again(
    stage: Detector, clip: Clip, altered: Callable[[np.ndarray, list[Person]], np.ndarray]
) -> tuple[int, int]:
    """(people found on the plain frames, of them found again on the altered frames)."""
    plain = run(stage, clip)
    changed = run(stage, [(t, altered(f, ps)) for (t, f), ps in zip(clip, plain, strict=True)])
    total = sum(len(ps) for ps in plain)
    kept = sum(1 for ps, qs in zip(plain, changed, strict=True) for p in ps if any(same_person(p, q) for q in qs))
    return total, kept


def raga_performers(
    people: Iterable[Person], x0: float = 0.0, y0: float = 0.0, scale: float = 1.0
) -> dict[str, Person]:
    """The raga clip's people by seat ("left", "right": the two fully visible performers; "third": the
    one half out of frame), from torso centres in clip pixels (a copy at (x0, y0) scaled by `scale`)."""
    out: dict[str, Person] = {}
    for p in people:
        (cx, cy), _ = torso(p)
        u, v = (cx - x0) / scale, (cy - y0) / scale
        if not (0 <= u < 768 and 0 <= v < 480):
            continue  # below the stage: the audience's heads
        seat = "left" if u < 350 else "right" if u < 640 else "third"
        out.setdefault(seat, p)
    return out


def evaluate_footage(stage: Detector, videos: Path) -> dict[str, Any]:
    """Every figure of the module docstring for one stage (several minutes on a 2-core CPU)."""
    raga, office = read_clip(videos / RAGA), read_clip(videos / OFFICE)
    report: dict[str, Any] = {}

    people = run(stage, raga)
    seats = [raga_performers(ps) for ps in people]
    ids = {s: {q[s].track_id for q in seats if s in q} for s in ("left", "right")}
    report["raga"] = {
        "frames": len(raga),
        "both_performers": sum(1 for q in seats if "left" in q and "right" in q),
        "performer_ids": [len(ids["left"]), len(ids["right"])],
        "third_found": sum(1 for q in seats if "third" in q),
    }
    people = run(stage, office)
    report["office"] = {
        "frames": len(office),
        "people_in_empty_opening": sum(len(ps) for ps in people[:58]),
        "frames_with_two_or_more": sum(1 for ps in people if len(ps) > 1),
        "ids": len({p.track_id for ps in people for p in ps}),
    }
    report["faces_blurred"] = {}
    for name, clip in (("raga", raga), ("office", office[::2])):
        total, kept = found_again(stage, clip, blur_faces)
        report["faces_blurred"][name] = {"found": total, "found_blurred": kept, "share": kept / max(total, 1)}
    report["small_people"] = {}
    for name, clip in (("raga", raga[:60]), ("office", office[300:360])):
        canvases, xs, y0 = small_copies(clip)
        people = run(stage, canvases)
        hits: collections.Counter[tuple[int, str]] = collections.Counter()
        owners: dict[tuple[int, str], collections.Counter[int]] = collections.defaultdict(collections.Counter)
        for ps in people[10:]:
            for k, x in enumerate(xs):
                if name == "raga":
                    found = {s: p for s, p in raga_performers(ps, x, y0, 1 / 3).items() if s != "third"}
                else:
                    inside = [p for p in ps if x <= torso(p)[0][0] < x + 256]
                    found = {"person": inside[0]} if inside else {}
                for s, p in found.items():
                    hits[(k, s)] += 1
                    owners[(k, s)][p.track_id] += 1
        expected = [(k, s) for k in range(len(xs)) for s in (("left", "right") if name == "raga" else ("person",))]
        frames = len(people) - 10
        top = [owners[e].most_common(1)[0][0] for e in expected if owners[e]]
        report["small_people"][name] = {
            "people": len(expected),
            "found_share": [hits[e] / frames for e in expected],
            "distinct_ids": len(set(top)) == len(expected),
        }
    return report


def format_footage_report(name: str, r: dict[str, Any]) -> str:
    rg, of, fb, sp = r["raga"], r["office"], r["faces_blurred"], r["small_people"]
    ids = f"{rg['performer_ids'][0]}+{rg['performer_ids'][1]} ids"
    return (
        f"| {name} | {rg['both_performers']}/{rg['frames']} ({ids})"
        f" | {rg['third_found']} | {of['people_in_empty_opening']} / {of['frames_with_two_or_more']} / {of['ids']}"
        f" | {100 * fb['raga']['share']:.1f}% / {100 * fb['office']['share']:.1f}%"
        f" | {100 * min(sp['raga']['found_share']):.0f}% / {100 * min(sp['office']['found_share']):.0f}%"
        f" ({'own ids' if sp['raga']['distinct_ids'] and sp['office']['distinct_ids'] else 'ids shared'}) |"
    )


FOOTAGE_HEADER = (
    "| 2D stage | raga: both performers (ids) | raga: third found | office: in empty opening / frames with 2+ / ids "
    "| faces blurred, found again: raga / office | small people, worst copy: raga / office |\n"
    "|---|---|---|---|---|---|"
)


def crop_fit(stage: Any, videos: Path) -> dict[str, float]:
    """How the keypoint model's own crop of a tracked person relates to the person detector's box of
    them: the medians of crop side / box long side and of the crop centre's offset from the box
    centre (x, y, in box long sides), over every 5th raga frame and every 10th office frame, after
    three frames of tracking on each (so the crop has settled on the landmarks). `stage`: a `TopDown`."""
    ratios: list[float] = []
    dx: list[float] = []
    dy: list[float] = []
    for clip in (read_clip(videos / RAGA, step=5), read_clip(videos / OFFICE, step=10)):
        stage.reset()
        for t, frame in clip:
            for _ in range(3):
                stage.process(frame, t)
            dets = stage.person_detector.detect_batch([frame])[0]
            if not dets:
                continue
            boxes = np.stack([d.box for d in dets])
            for tid, roi in stage.state.rois.items():
                ious = box_ious(stage.state.boxes[tid], boxes)
                if ious.max() < 0.3:
                    continue
                b = boxes[int(ious.argmax())]
                side = max(b[2] - b[0], b[3] - b[1])
                ratios.append(roi.width / side)
                dx.append((roi.cx - (b[0] + b[2]) / 2) / side)
                dy.append((roi.cy - (b[1] + b[3]) / 2) / side)
    return {
        "pairs": float(len(ratios)),
        "side_ratio": float(np.median(ratios)),
        "side_ratio_q25": float(np.percentile(ratios, 25)),
        "side_ratio_q75": float(np.percentile(ratios, 75)),
        "centre_dx": float(np.median(dx)),
        "centre_dy": float(np.median(dy)),
    }
