"""Where the service places people, measured (`hotpose eval-root`; no web import).

On the lifter's evaluation protocol (`hotpose.models.data.eval_views`: 4 virtual cameras per clip,
focal length known, exact and detector-like 2D), each view is lifted as a clip job lifts a tracked
person (`lift_sequence`, the clip policy) and placed as a clip job places it (`RootPlacer`: the
weighted least-squares root of every frame, smoothed over `ROOT_LAG_FRAMES` either side); the
focal length is then also mis-stated (by `focal_errors`) to show what an unknown camera costs, and
each person's true height is given (`person_height_m`) to show what the lifter's adult proportions
cost (the scale-depth ambiguity).

- MRPE: mean root position error (mm), and its depth (|z|) and lateral (|x, y|) parts.
- Two people: pairs of views seen through one camera, the second person moved 1-3 m away at
  another depth (`pair_offsets`): the error of the distance between the two pelvises and how often
  their depth order is right.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hotpose.models.data import EVAL_IMAGE, DetectorNoise, EvalView
from hotpose.models.keypoints import denormalize_screen
from hotpose.models.placement import skeleton_height
from hotpose.service.lifting import LiftFn, LiftPolicy, lift_sequence
from hotpose.service.pipeline import FramePoses, PersonPose
from hotpose.service.placing import ROOT_LAG_FRAMES, CameraRequest, RootPlacer

CONDITIONS = ("gt2d", "noisy2d")
FPS = 30.0  # the protocol's frame rate


@dataclass(frozen=True)
class Placed:
    """One view lifted and placed: root-relative joints and the per-frame 2D they were placed from."""

    joints: np.ndarray  # [T, 17, 3] root-relative, metres
    pixels: np.ndarray  # [T, 17, 2] in the EVAL_IMAGE x EVAL_IMAGE image


def lift_view(lift: LiftFn, pixels: np.ndarray, policy: LiftPolicy, frames: int) -> Placed:
    times = np.arange(len(pixels)) / FPS
    return Placed(lift_sequence(lift, pixels, times, policy, EVAL_IMAGE, EVAL_IMAGE, frames), pixels)


def place(placed: Placed, focal_px: float, person_height_m: float | None = None) -> np.ndarray:
    """Roots [T, 3] (NaN where unsolved) as a clip job places this person, with this focal length
    (and the person's height when given)."""
    placer = RootPlacer(CameraRequest(focal_px=focal_px, person_height_m=person_height_m), ROOT_LAG_FRAMES)
    ones = np.ones((len(placed.pixels), 17, 1), np.float32)
    kp = np.concatenate([placed.pixels, ones], axis=-1).astype(np.float32)
    frames = [
        FramePoses(i, i / FPS, [PersonPose(0, (0, 0, 1, 1), 1.0, kp[i], joints_3d=placed.joints[i], raw_2d=kp[i])])
        for i in range(len(kp))
    ]
    out = placer.push(frames, EVAL_IMAGE, EVAL_IMAGE) + placer.flush()
    nan = np.full(3, np.nan)
    return np.stack([f.people[0].root_3d if f.people[0].root_3d is not None else nan for f in out])


def root_errors(est: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Mean errors in mm over the frames with a root: position, depth, lateral; and the share solved."""
    ok = np.isfinite(est).all(-1)
    d = est[ok] - gt[ok]
    return {
        "mrpe_mm": float(1000 * np.linalg.norm(d, axis=-1).mean()) if ok.any() else math.nan,
        "depth_mm": float(1000 * np.abs(d[:, 2]).mean()) if ok.any() else math.nan,
        "lateral_mm": float(1000 * np.linalg.norm(d[:, :2], axis=-1).mean()) if ok.any() else math.nan,
        "solved": float(ok.mean()),
    }


def pair_offsets(n: int, seed: int = 0) -> np.ndarray:
    """[n, 3] camera-frame offsets of the second person: 1-3 m from the first, 0.5-2.5 m deeper or
    nearer (alternately), the rest sideways; seeded."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 3))
    for i in range(n):
        dist = rng.uniform(1.0, 3.0)
        dz = rng.uniform(0.5, min(2.5, dist)) * (1 if i % 2 == 0 else -1)
        dx = math.sqrt(max(dist**2 - dz**2, 0.0)) * rng.choice([-1, 1])
        out[i] = [dx, 0.0, dz]
    return out


def evaluate_roots(
    views: list[EvalView],
    lift: LiftFn,
    policy: LiftPolicy,
    frames: int,
    focal_errors: tuple[float, ...] = (0.0, 0.2, -0.2),
    pairs: int = 16,
    progress: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """MRPE per input condition and focal-length error, and the two-person figures (module docstring)."""
    report: dict[str, object] = {}
    lifted: dict[tuple[int, str], Placed] = {}
    for c in CONDITIONS:
        per_focal: dict[str, dict[str, float]] = {}
        for k, v in enumerate(views):
            px = np.asarray(denormalize_screen(v.inputs[c], EVAL_IMAGE, EVAL_IMAGE))
            lifted[k, c] = lift_view(lift, px, policy, frames)
            if progress is not None:
                progress(f"{c} {k + 1}/{len(views)}")
        for err in focal_errors:
            est, gt = [], []
            for k, v in enumerate(views):
                assert v.cam is not None and v.root is not None
                est.append(place(lifted[k, c], v.cam.focal * (1 + err)))
                gt.append(v.root)
            per_focal[f"{err:+.0%}"] = root_errors(np.concatenate(est), np.concatenate(gt))
        hinted = []  # focal known and each person's height given (`person_height_m`)
        for k, v in enumerate(views):
            assert v.cam is not None
            hinted.append(place(lifted[k, c], v.cam.focal, float(np.median(skeleton_height(v.target)))))
        per_focal["+0%, height given"] = root_errors(np.concatenate(hinted), np.concatenate([v.root for v in views]))
        report[c] = per_focal
    report["two_people"] = _two_people(views, lift, policy, frames, min(pairs, len(views) // 2), progress)
    return report


def _two_people(
    views: list[EvalView],
    lift: LiftFn,
    policy: LiftPolicy,
    frames: int,
    pairs: int,
    progress: Callable[[str], None] | None,
) -> dict[str, object]:
    """Pairs (view 2i, view 2i+1): the second person moved by `pair_offsets`, both seen by the first's camera."""
    offsets = pair_offsets(pairs)
    noise = DetectorNoise()
    out: dict[str, object] = {"pairs": pairs}
    for c, hint in ((c, h) for c in CONDITIONS for h in (False, True)):
        dist_err, order_ok = [], []
        for i in range(pairs):
            a, b = views[2 * i], views[2 * i + 1]
            assert a.cam is not None and a.root is not None and b.root is not None
            t = min(len(a.target), len(b.target))
            cam_a = a.cam
            people = []
            for k, (v, shift) in enumerate(
                ((a, np.zeros(3)), (b, a.root[:t].mean(0) - b.root[:t].mean(0) + offsets[i]))
            ):
                assert v.root is not None
                world = v.target[:t] + v.root[:t, None] + shift  # camera frame of a's camera
                px = cam_a.project(world)
                if c == "noisy2d":
                    px = noise.apply(px, np.random.default_rng([i, k]))
                placed = lift_view(lift, px, policy, frames)
                height = float(np.median(skeleton_height(v.target))) if hint else None
                people.append((place(placed, cam_a.focal, height), world[:, 0]))
            (ra, ga), (rb, gb) = people
            ok = np.isfinite(ra).all(-1) & np.isfinite(rb).all(-1)
            dist_err.append(np.abs(np.linalg.norm(ra - rb, axis=-1) - np.linalg.norm(ga - gb, axis=-1))[ok])
            order_ok.append((np.sign(ra[:, 2] - rb[:, 2]) == np.sign(ga[:, 2] - gb[:, 2]))[ok])
            if progress is not None:
                progress(f"pairs {c} {'height given ' if hint else ''}{i + 1}/{pairs}")
        d, o = np.concatenate(dist_err), np.concatenate(order_ok)
        out[f"{c}, height given" if hint else c] = {
            "distance_error_mm": float(1000 * d.mean()) if len(d) else math.nan,
            "distance_error_median_mm": float(1000 * np.median(d)) if len(d) else math.nan,
            "depth_order_right": float(o.mean()) if len(o) else math.nan,
        }
    return out
