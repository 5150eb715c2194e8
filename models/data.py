"""Motion capture -> (2D input, 3D target) pairs through virtual cameras, and the
fixed evaluation protocol.

Data: an `.npz` in the format of `shared/mocap/cmu_h36m17_30fps.npz` (one
float32 [T, 17, 3] array per clip, metres, Y up, plus `clip_names`,
`clip_desc`, ...). Any file in that format works, so new held-out data needs
no code change.

Cameras are pinhole, OpenCV axes (x right, y down, z forward). Targets are
root-relative camera coordinates in metres; inputs are the projections in the
official screen normalisation (`hotpose.models.keypoints.normalize_screen`).

Evaluation protocol (`eval_views`), fixed in code:
- every clip seen by 4 cameras at azimuths 0/90/180/270 degrees around the
  clip's mean pelvis position plus one per-clip yaw, distance 4.5-5.5 m,
  height 1.0-1.8 m, looking at the mean pelvis, all drawn from a seed fixed per
  clip name; 1000x1000 images, focal length 1145 px, principal point centred;
- every frame evaluated, in windows of `frames` with edge padding, with flip
  augmentation;
- two input conditions: exact projections ("gt2d") and detector-like noise
  ("noisy2d", `DetectorNoise` defaults, seeded per clip and camera).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hotpose.models.detector.weights import sha256
from hotpose.models.keypoints import H36M_FLIP_PERM, H36M_PARENTS, normalize_screen

EVAL_IMAGE = 1000
EVAL_FOCAL = 1145.0


@dataclass(frozen=True)
class Clip:
    name: str
    subject: str
    joints: np.ndarray  # [T, 17, 3] metres, world frame, Y up
    fps: float
    rig: str = ""  # skeleton family (`clip_rig`): joint placement differs between families


def _subject(name: str, desc: str, source: str) -> str:
    """CMU subject id from the description ("CMU subj. 94"), else from the BVH file name in the
    source ("... subjects/002/002_02.bvh"), else the clip name without its take number. The same
    subject from two public releases gets one id, so a hold-out by subject is a real one."""
    m = re.search(r"subj(?:ect)?\.?\s*(\d+)", desc, flags=re.IGNORECASE)
    if m:
        return f"cmu{int(m.group(1)):03d}"
    m = re.search(r"(\d+)_\d+\.bvh", source)
    if m:
        return f"cmu{int(m.group(1)):03d}"
    return name.rsplit("_", 1)[0]


def load_clips(path: str | Path) -> list[Clip]:
    """All clips of a mocap npz; the subject comes from `clip_desc` ("CMU subj. N") or the name."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mocap file not found: {path}")
    with np.load(path, allow_pickle=True) as d:
        names = [str(n) for n in d["clip_names"]]
        descs = [str(s) for s in d["clip_desc"]] if "clip_desc" in d.files else [""] * len(names)
        fps = [float(f) for f in d["clip_fps"]] if "clip_fps" in d.files else [30.0] * len(names)
        sources = [str(s) for s in d["clip_source"]] if "clip_source" in d.files else [""] * len(names)
        rigs = [str(r) for r in d["clip_rig"]] if "clip_rig" in d.files else [""] * len(names)
        clips = []
        for name, desc, f, src, rig in zip(names, descs, fps, sources, rigs, strict=True):
            joints = np.asarray(d[name], dtype=np.float32)
            if joints.ndim != 3 or joints.shape[1:] != (17, 3):
                raise ValueError(f"{path}: clip {name} has shape {joints.shape}, expected [T, 17, 3]")
            clips.append(Clip(name, _subject(name, desc, src), joints, f, rig))
    return clips


def data_hash(path: str | Path) -> str:
    return sha256(Path(path))


# Validation subjects of the shared CMU file, fixed before any training and chosen for variety of
# action: 5 (ballet), 7 (walks), 13 (jumps, reaching), 131 (start/stop walking); 18% of the frames.
VAL_SUBJECTS: tuple[str, ...] = ("cmu005", "cmu007", "cmu013", "cmu131")


def split_by_subject(
    clips: list[Clip], val_subjects: tuple[str, ...] = VAL_SUBJECTS, val_fraction: float = 0.15
) -> tuple[list[Clip], list[Clip]]:
    """(train, validation) with whole subjects held out: `val_subjects` when the data has them,
    otherwise subjects in a fixed hash order until `val_fraction` of the frames."""
    if any(c.subject in val_subjects for c in clips):
        return [c for c in clips if c.subject not in val_subjects], [c for c in clips if c.subject in val_subjects]
    frames: dict[str, int] = {}
    for c in clips:
        frames[c.subject] = frames.get(c.subject, 0) + len(c.joints)
    order = sorted(frames, key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    total, held, n = sum(frames.values()), set(), 0
    for s in order:
        if n >= val_fraction * total:
            break
        if n + frames[s] > 2 * val_fraction * total:
            continue  # one huge subject would take the whole split
        held.add(s)
        n += frames[s]
    return [c for c in clips if c.subject not in held], [c for c in clips if c.subject in held]


# --- cameras ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Camera:
    rotation: np.ndarray  # [3, 3] world -> camera
    position: np.ndarray  # [3] camera centre in world coordinates
    focal: float
    width: int
    height: int

    def to_camera(self, world: np.ndarray) -> np.ndarray:
        """[..., 3] world -> camera coordinates (x right, y down, z forward)."""
        out: np.ndarray = (world - self.position) @ self.rotation.T
        return out

    def project(self, cam: np.ndarray) -> np.ndarray:
        """[..., 3] camera coordinates -> [..., 2] pixels."""
        z = np.maximum(cam[..., 2:3], 1e-3)
        out: np.ndarray = self.focal * cam[..., :2] / z + np.array([self.width / 2, self.height / 2])
        return out


def look_at(
    target: np.ndarray,
    azimuth: float,
    distance: float,
    height: float,
    focal: float,
    width: int = EVAL_IMAGE,
    height_px: int = EVAL_IMAGE,
) -> Camera:
    """A camera on a circle around `target` (world, Y up), at `height` above the floor, looking at it."""
    pos = np.array([target[0] + distance * math.sin(azimuth), height, target[2] + distance * math.cos(azimuth)])
    forward = target - pos
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return Camera(np.stack([right, down, forward]), pos, focal, width, height_px)


def turn_camera(cam: Camera, turn: np.ndarray) -> Camera:
    """The camera turned about its own centre by `turn` [3, 3], given in its own axes."""
    return Camera(turn @ cam.rotation, cam.position, cam.focal, cam.width, cam.height)


def view(world: np.ndarray, cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """World joints [T, 17, 3] -> (pixels [T, 17, 2], root-relative camera-frame targets [T, 17, 3])."""
    c = cam.to_camera(world)
    return cam.project(c), (c - c[:, :1]).astype(np.float32)


# --- detector-like noise ---------------------------------------------------------------------


@dataclass(frozen=True)
class DetectorNoise:
    """2D noise that looks like a detector's, in pixels of a 1000 px image (scaled to the image).

    - white: i.i.d. Gaussian per joint and frame, sigma `white_px`;
    - bias: a per-joint offset constant over the clip, sigma `bias_px` (definition differences);
    - jitter: with probability `jitter_p` a joint-frame gets an extra Gaussian error, sigma `jitter_px`;
    - drop: with probability `drop_p` a joint keeps its previous frame's position (a lost joint held).
    """

    white_px: float = 4.0
    bias_px: float = 3.0
    jitter_p: float = 0.03
    jitter_px: float = 25.0
    drop_p: float = 0.01

    def apply(self, px: np.ndarray, rng: np.random.Generator, image_size: float = EVAL_IMAGE) -> np.ndarray:
        k = image_size / EVAL_IMAGE
        t, j, _ = px.shape
        out = px + rng.normal(0, self.white_px * k, px.shape) + rng.normal(0, self.bias_px * k, (1, j, 2))
        jitter = rng.random((t, j, 1)) < self.jitter_p
        out = out + jitter * rng.normal(0, self.jitter_px * k, px.shape)
        drop = rng.random((t, j)) < self.drop_p
        drop[0] = False
        for f in range(1, t):
            out[f, drop[f]] = out[f - 1, drop[f]]
        return out.astype(np.float32)


# --- evaluation views -------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalView:
    clip: str
    camera: int
    inputs: dict[str, np.ndarray]  # condition -> [T, 17, 2] normalised 2D
    target: np.ndarray  # [T, 17, 3] root-relative camera frame, metres
    rig: str = ""  # the clip's skeleton family
    subject: str = ""  # the clip's subject
    root: np.ndarray | None = None  # [T, 3] the pelvis in the camera frame, metres (where the person is)
    cam: Camera | None = None  # the view's camera (`camera` is its number)


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little")


@dataclass(frozen=True)
class EvalCameras:
    """The protocol's camera ranges. Other values are NOT the protocol: a labelled check of how a
    lifter does with other cameras (`hotpose eval-lifter --camera-focal/--camera-distance`), e.g. a
    70-degree webcam (focal 715 px in the 1000 px image) 2.3-3.2 m away. The per-clip seeds and the
    order of the draws are the protocol's, so only the cameras' focal length and placement change."""

    focal: float = EVAL_FOCAL
    distance: tuple[float, float] = (4.5, 5.5)
    height: tuple[float, float] = (1.0, 1.8)


def eval_views(
    clips: list[Clip], noise: DetectorNoise | None = None, cameras: EvalCameras | None = None
) -> list[EvalView]:
    """The fixed protocol: 4 cameras per clip, both input conditions (see the module docstring)."""
    noise = noise or DetectorNoise()
    cams = cameras or EvalCameras()
    out = []
    for clip in clips:
        rng = np.random.default_rng(_seed("camera", clip.name))
        yaw = rng.uniform(0, 2 * math.pi)
        target = clip.joints[:, 0].mean(0)
        for k in range(4):
            distance, height = rng.uniform(*cams.distance), rng.uniform(*cams.height)
            cam = look_at(target, yaw + k * math.pi / 2, distance, height, cams.focal)
            px, tgt = view(clip.joints, cam)
            noisy = noise.apply(px, np.random.default_rng(_seed("noise", clip.name, k)))
            root = cam.to_camera(clip.joints[:, 0]).astype(np.float32)
            out.append(EvalView(clip.name, k, {
                "gt2d": np.asarray(normalize_screen(px, EVAL_IMAGE, EVAL_IMAGE), dtype=np.float32),
                "noisy2d": np.asarray(normalize_screen(noisy, EVAL_IMAGE, EVAL_IMAGE), dtype=np.float32),
            }, tgt, clip.rig, clip.subject, root, cam))  # fmt: skip
    return out


def windows(x: np.ndarray, frames: int) -> tuple[np.ndarray, int]:
    """[T, ...] -> ([N, frames, ...] non-overlapping windows, last one edge-padded), T."""
    t = len(x)
    n = -(-t // frames)
    pad = n * frames - t
    if pad:
        x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
    return x.reshape(n, frames, *x.shape[1:]), t


# --- training samples -------------------------------------------------------------------------


@dataclass(frozen=True)
class Augment:
    speed: tuple[float, float] = (0.7, 1.4)  # playback speed factors (resampling)
    bone_scale: float = 0.12  # each bone (left/right pairs together) scaled by 1 +- this
    # thorax->shoulder bones widened by a factor in this range: the mocap's shoulder joints sit
    # 0.23 m apart (median), a detector's shoulders on a person about 0.3-0.4 m
    shoulder_width: tuple[float, float] = (1.0, 1.6)
    distance: tuple[float, float] = (3.0, 8.0)
    cam_height: tuple[float, float] = (0.3, 2.4)
    focal: tuple[float, float] = (800.0, 1600.0)  # in a 1000 px image
    mirror_p: float = 0.5
    noise_p: float = 0.8  # fraction of samples with detector-like noise of random strength
    # fraction of samples retargeted to another skeleton family's proportions (a random blend of
    # two families' mean bone lengths, see `retarget`) instead of `widen_shoulders`: the families
    # differ by far more than `bone_scale` (thighs 0.37 m on one, 0.48 m on another)
    retarget_p: float = 0.0  # off by default: no gain on the validation split (README)
    # fraction of windows given new poses by `swing_limbs`: each limb (with probability 1/2)
    # and the upper body turned about their root joint by one fixed rotation for the window,
    # of up to `limb_deg` / `torso_deg` degrees about a random axis. The training clips are
    # mostly salsa, Indian dance and martial arts and hold no ballet; poses they rarely show (a leg
    # raised above the hip, a bend backwards) are otherwise hard for a model trained on them.
    swing_p: float = 0.0
    limb_deg: float = 75.0
    torso_deg: float = 30.0
    # fraction of windows placed anywhere over the clip, so that they may run off either end and be
    # edge-padded there: the others fit inside the clip (padded only when the clip is shorter than
    # the window). The service lifts a new track's first windows padded at the start (`StreamLifter`),
    # which windows that fit inside the clip never show; and frames near a clip's ends are drawn
    # far less often than the middle without them.
    pad_p: float = 0.0
    # fraction of windows whose camera is turned about its own centre after aiming at the subject
    # (pan uniform in +-aim_deg, tilt in +-aim_deg / 2), so the person is seen off the image centre
    # as a fixed camera sees someone walking across its view. Aimed cameras put the window's mean
    # pelvis within about 0.14 (one sigma, normalised screen units) of the centre; the validation
    # split, aimed at each clip's mean pelvis, has 0.18 median / 0.63 at p90 / 1.48 at most.
    aim_p: float = 0.0
    aim_deg: float = 25.0


def resample(joints: np.ndarray, start: float, speed: float, frames: int) -> np.ndarray:
    """Frames at times start + k * speed (k < frames), linear interpolation, edge-clamped."""
    t = np.clip(start + speed * np.arange(frames), 0, len(joints) - 1)
    i0 = np.floor(t).astype(int)
    i1 = np.minimum(i0 + 1, len(joints) - 1)
    w = (t - i0)[:, None, None]
    out: np.ndarray = (joints[i0] * (1 - w) + joints[i1] * w).astype(np.float32)
    return out


# Left/right bone pairs share a scale factor so the skeleton stays symmetric.
_BONE_GROUP = {j: min(j, H36M_FLIP_PERM[j]) for j in range(17)}


def scale_bones(joints: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Rebuild the skeleton with each bone length scaled by a random factor in 1 +- amount."""
    factors = {g: 1.0 + rng.uniform(-amount, amount) for g in set(_BONE_GROUP.values())}
    return rebuild(joints, np.array([factors[_BONE_GROUP[j]] for j in range(17)]))


def rebuild(joints: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """[T, 17, 3] with bone parent(j) -> j scaled by factors[j] (factors[0] unused), each joint
    moved with its parent so the motion's joint angles are kept."""
    out = joints.copy()
    for j in range(1, 17):  # parents come before children in H36M order
        p = H36M_PARENTS[j]
        out[:, j] = out[:, p] + (joints[:, j] - joints[:, p]) * factors[j]
    return out


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """[T, 17, 3] -> [17] mean length of bone parent(j) -> j (index 0: 0), left/right averaged."""
    per = np.zeros(17)
    for j in range(1, 17):
        per[j] = np.linalg.norm(joints[:, j] - joints[:, H36M_PARENTS[j]], axis=-1).mean()
    return np.array([(per[j] + per[H36M_FLIP_PERM[j]]) / 2 for j in range(17)])


def rig_proportions(clips: list[Clip]) -> dict[str, np.ndarray]:
    """Mean bone lengths [17] of each skeleton family (`Clip.rig`), frame-weighted over its clips."""
    acc: dict[str, tuple[np.ndarray, int]] = {}
    for c in clips:
        total, n = acc.get(c.rig, (np.zeros(17), 0))
        acc[c.rig] = (total + bone_lengths(c.joints) * len(c.joints), n + len(c.joints))
    return {rig: total / n for rig, (total, n) in acc.items()}


def retarget(joints: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Give the skeleton the bone lengths `lengths` [17] (index 0 unused), keeping its joint angles."""
    own = bone_lengths(joints)
    return rebuild(joints, np.divide(lengths, own, out=np.ones(17), where=own > 1e-6))


def widen_shoulders(joints: np.ndarray, factor: float) -> np.ndarray:
    """Scale both thorax->shoulder bones by `factor`, moving each arm with its shoulder."""
    out = joints.copy()
    for shoulder, arm in ((11, (11, 12, 13)), (14, (14, 15, 16))):
        delta = (joints[:, shoulder] - joints[:, 8]) * (factor - 1.0)
        out[:, list(arm)] += delta[:, None]
    return out


# (root joint, the joints that move with it): legs about the hips, arms about the shoulders.
LIMBS: tuple[tuple[int, tuple[int, ...]], ...] = ((1, (2, 3)), (4, (5, 6)), (11, (12, 13)), (14, (15, 16)))
UPPER_BODY: tuple[int, ...] = tuple(range(7, 17))  # spine and everything above, about the pelvis


def rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """[3, 3] rotation by `angle` radians about `axis` (Rodrigues)."""
    x, y, z = axis / np.linalg.norm(axis)
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    out: np.ndarray = np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)
    return out


def turn_about(joints: np.ndarray, root: int, moved: tuple[int, ...], rot: np.ndarray) -> np.ndarray:
    """[T, 17, 3] with the joints `moved` rotated by `rot` [3, 3] about joint `root`, frame by frame
    (bone lengths and the limb's own motion relative to its root are kept)."""
    out = joints.copy()
    r = joints[:, root : root + 1]  # [T, 1, 3]
    out[:, list(moved)] = r + (joints[:, list(moved)] - r) @ rot.T
    return out


def swing_limbs(joints: np.ndarray, rng: np.random.Generator, limb_deg: float, torso_deg: float) -> np.ndarray:
    """New poses for a training window [T, 17, 3]: the upper body, then each limb with probability
    1/2, turned about its root joint by one random rotation held for the whole window (random axis,
    angle uniform up to the limit). The spine stays the pelvis-thorax midpoint, as in the data."""

    def random_rotation(max_deg: float) -> np.ndarray:
        return rotation(rng.normal(size=3), math.radians(rng.uniform(0, max_deg)))

    out = turn_about(joints, 0, UPPER_BODY, random_rotation(torso_deg))
    for root, moved in LIMBS:
        if rng.random() < 0.5:
            out = turn_about(out, root, moved, random_rotation(limb_deg))
    return out


def mirror_world(joints: np.ndarray) -> np.ndarray:
    """Reflect world X and swap left/right joints: a valid, mirrored motion."""
    out = joints[:, list(H36M_FLIP_PERM)].copy()
    out[..., 0] = -out[..., 0]
    return out


def training_sample(
    clip: Clip,
    frames: int,
    rng: np.random.Generator,
    aug: Augment,
    noise: DetectorNoise,
    proportions: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One augmented (2D input [frames, 17, 2], 3D target [frames, 17, 3]) window. `proportions`:
    bone lengths [17] of the skeleton families to retarget to (`rig_proportions`), if any."""
    speed = math.exp(rng.uniform(math.log(aug.speed[0]), math.log(aug.speed[1])))
    span = speed * (frames - 1)
    last = len(clip.joints) - 1
    if aug.pad_p > 0 and rng.random() < aug.pad_p:  # (no draw when off: earlier runs reproduce)
        start = rng.uniform(-span, last)  # every frame equally likely in the window; ends edge-padded
    else:
        start = rng.uniform(0, max(last - span, 0))
    world = resample(clip.joints, start, speed, frames)
    if proportions and rng.random() < aug.retarget_p:
        a, b = rng.integers(len(proportions), size=2)
        u = rng.random()
        world = retarget(world, u * proportions[a] + (1 - u) * proportions[b])
        world = scale_bones(world, rng, aug.bone_scale)
    else:
        world = scale_bones(world, rng, aug.bone_scale)
        world = widen_shoulders(world, rng.uniform(*aug.shoulder_width))
    if rng.random() < aug.swing_p:
        world = swing_limbs(world, rng, aug.limb_deg, aug.torso_deg)
    if rng.random() < aug.mirror_p:
        world = mirror_world(world)
    target = world[:, 0].mean(0) + rng.normal(0, 0.3, 3) * np.array([1.0, 0.3, 1.0])
    # a subject who travels far in the window may pass the camera: move the camera back until every
    # joint is at least 1.5 m in front of it
    distance = rng.uniform(*aug.distance)
    azimuth, height, focal = rng.uniform(0, 2 * math.pi), rng.uniform(*aug.cam_height), rng.uniform(*aug.focal)
    turn = np.eye(3)
    if aug.aim_p > 0 and rng.random() < aug.aim_p:  # (no draw when off: earlier runs reproduce)
        pan = math.radians(rng.uniform(-aug.aim_deg, aug.aim_deg))
        tilt = math.radians(rng.uniform(-aug.aim_deg, aug.aim_deg) / 2)
        turn = rotation(np.array([1.0, 0.0, 0.0]), tilt) @ rotation(np.array([0.0, 1.0, 0.0]), pan)
    for _ in range(20):
        cam = turn_camera(look_at(target, azimuth, distance, height, focal), turn)
        if cam.to_camera(world)[..., 2].min() >= 1.5:
            break
        distance *= 1.3
    px, tgt = view(world, cam)
    if rng.random() < aug.noise_p:
        strength = rng.uniform(0.25, 1.75)
        px = DetectorNoise(
            noise.white_px * strength, noise.bias_px * strength, noise.jitter_p, noise.jitter_px, noise.drop_p
        ).apply(px, rng)
    return np.asarray(normalize_screen(px, EVAL_IMAGE, EVAL_IMAGE), dtype=np.float32), tgt
