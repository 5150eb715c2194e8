"""BVH export of Human3.6M-17 3D joints, a reader, and forward kinematics.

The written file is what DCC tools (Blender, MotionBuilder) import: y up, centimetres, the
character facing +z with its left side at +x, every joint rotating in Z, X, Y order
(`Zrotation Xrotation Yrotation`, matrix Rz @ Rx @ Ry), the root also translating: its position
channels are the pelvis's path (`root_positions`, camera-frame metres through `camera_to_bvh`, as
the joints), or zero for a motion in place. `PoseSequence.to_bvh` writes the server's `root_3d`
trajectory there by default.

Hierarchy: the 17 Human3.6M joints plus, as in CMU's own BVH files, a zero-length joint between
each joint with several children and each of those children (`RHipJoint`, `LHipJoint`,
`LowerBack` under the hips; `LowerNeck`, `LeftShoulder`, `RightShoulder` under the thorax), so that
every bone has its own rotation.

Rest pose (the OFFSETs): bone lengths are the sequence's medians. The limbs, spine and neck rest
in a T-pose (legs down, spine and neck up, arms out sideways); the hip triangle (pelvis to both
hips and the spine) and the shoulder triangle (thorax to neck and both shoulders) keep the
sequence's own median shape.

Rotations are solved frame by frame from the positions: the hips and the thorax get the rotation
that best maps their rest triangle onto the observed one (Kabsch), every other joint the smallest
rotation that points its bone at the observed child (there is no twist to observe: one child per
limb joint). Forward kinematics of the file returns the input exactly wherever the input's bone
lengths equal the medians; otherwise the error is the length change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "BVH_JOINTS", "SKELETON", "Bvh", "camera_to_bvh", "bvh_to_camera", "fill_root_gaps", "read_bvh", "write_bvh",
]  # fmt: skip

# Human3.6M-17 joints in order, named as retargeting tools expect.
BVH_JOINTS = (
    "Hips", "RightUpLeg", "RightLeg", "RightFoot", "LeftUpLeg", "LeftLeg", "LeftFoot", "Spine", "Spine1",
    "Neck", "Head", "LeftArm", "LeftForeArm", "LeftHand", "RightArm", "RightForeArm", "RightHand",
)  # fmt: skip
H36M_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
# zero-length joints: H36M child -> the joint inserted between it and its multi-child parent
_LINKS = {1: "RHipJoint", 4: "LHipJoint", 7: "LowerBack", 9: "LowerNeck", 11: "LeftShoulder", 14: "RightShoulder"}

_HIP_GROUP = (1, 4, 7)  # children of the pelvis: right hip, left hip, spine
_SHOULDER_GROUP = (9, 11, 14)  # children of the thorax: neck, left shoulder, right shoulder
_T_POSE = {  # rest direction of each single-child bone (child joint -> unit vector), y up, left = +x
    2: (0, -1, 0), 3: (0, -1, 0), 5: (0, -1, 0), 6: (0, -1, 0), 8: (0, 1, 0), 10: (0, 1, 0),
    12: (1, 0, 0), 13: (1, 0, 0), 15: (-1, 0, 0), 16: (-1, 0, 0),
}  # fmt: skip
_END_FRACTION = 0.25  # End Site length as a fraction of the bone before it

CM_PER_M = 100.0


def camera_to_bvh(x: np.ndarray) -> np.ndarray:
    """Metres, camera frame (x right, y down, z forward) -> centimetres, y up, facing +z."""
    out: np.ndarray = x * np.array([CM_PER_M, -CM_PER_M, -CM_PER_M])
    return out


def bvh_to_camera(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = x * np.array([1 / CM_PER_M, -1 / CM_PER_M, -1 / CM_PER_M])
    return out


@dataclass(frozen=True)
class _Skeleton:
    names: list[str]  # BVH joints in file order
    parents: list[int]  # BVH index of the parent, -1 for the root
    h36m: list[int]  # the Human3.6M joint at each BVH joint's position


def _skeleton() -> _Skeleton:
    sk = _Skeleton([], [], [])

    def add(j: int, parent: int) -> None:
        if j in _LINKS:  # sits at the parent's position
            sk.names.append(_LINKS[j])
            sk.parents.append(parent)
            sk.h36m.append(H36M_PARENTS[j])
            parent = len(sk.names) - 1
        sk.names.append(BVH_JOINTS[j])
        sk.parents.append(parent)
        sk.h36m.append(j)
        here = len(sk.names) - 1
        for c in (c for c, p in enumerate(H36M_PARENTS) if p == j):
            add(c, here)

    add(0, -1)
    return sk


SKELETON = _skeleton()


# --- writing ---------------------------------------------------------------------


def write_bvh(path: str | Path, joints: np.ndarray, fps: float, *, root_positions: np.ndarray | None = None) -> None:
    """Write joints [T, 17, 3] (metres, camera frame, root-relative; NaN rows = missing) as BVH.

    Missing frames hold the last pose before them (the first valid pose at the start).
    `root_positions` [T, 3] metres in the camera frame places the pelvis (the `Hips` position
    channels, centimetres, y up, as `camera_to_bvh`); a frame whose root is NaN holds the last frame
    that has both joints and root (`fill_root_gaps` first to interpolate instead). Without it the
    pelvis stays at the origin.
    """
    joints = np.asarray(joints, np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (17, 3):
        raise ValueError(f"expected joints [T, 17, 3], got {list(joints.shape)}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    t = len(joints)
    root = np.zeros((t, 3)) if root_positions is None else np.asarray(root_positions, np.float64)
    if root.shape != (t, 3):
        raise ValueError(f"expected root_positions [{t}, 3] (one per frame), got {list(root.shape)}")
    # a frame missing its joints or its root holds the last frame that has both
    valid = ~(np.isnan(joints).any(axis=(1, 2)) | np.isnan(root).any(axis=1))
    joints = _fill_missing(np.where(valid[:, None, None], joints, np.nan))
    root = _fill_missing(np.where(valid[:, None], root, np.nan)[:, None])[:, 0]
    p = camera_to_bvh(joints - joints[:, :1])  # [T, 17, 3] cm, y up, root-relative
    sk = SKELETON
    offsets = _bvh_offsets(_rest_offsets(p))  # [N, 3]
    rotations = _solve_rotations(p[:, sk.h36m], offsets)  # [T, N, 3, 3] local
    euler = _euler_zxy(rotations)  # [T, N, 3] degrees
    root_cm = camera_to_bvh(root)

    lines = ["HIERARCHY"]
    _hierarchy(lines, 0, offsets, 0)
    lines += ["MOTION", f"Frames: {t}", f"Frame Time: {1.0 / fps:.8f}"]
    for i in range(t):
        values = [*root_cm[i], *euler[i].reshape(-1)]
        lines.append(" ".join(f"{v:.6f}" for v in values))
    Path(path).write_text("\n".join(lines) + "\n")


def fill_root_gaps(root: np.ndarray, times: np.ndarray | None = None) -> np.ndarray:
    """[T, 3] root path with NaN rows (root not solved, person absent) -> [T, 3] without them.

    A gap between two known roots is interpolated linearly in time (`times`, seconds; frame numbers
    without them); before the first and after the last known root the nearest one is held.
    Raises ValueError when no row is known.
    """
    root = np.asarray(root, np.float64)
    if root.ndim != 2 or root.shape[1] != 3:
        raise ValueError(f"expected root positions [T, 3], got {list(root.shape)}")
    t = np.arange(len(root), dtype=np.float64) if times is None else np.asarray(times, np.float64)
    if t.shape != (len(root),):
        raise ValueError(f"expected one time per root position ({len(root)}), got {list(t.shape)}")
    known = ~np.isnan(root).any(axis=1)
    if not known.any():
        raise ValueError("no frame has a root position")
    # np.interp holds the end values outside the known range
    return np.stack([np.interp(t, t[known], root[known, k]) for k in range(3)], axis=1)


def _fill_missing(joints: np.ndarray) -> np.ndarray:
    """[T, J, 3]: rows with any NaN take the last full row before them (the first full row at the start)."""
    valid = ~np.isnan(joints).any(axis=(1, 2))
    if not valid.any():
        raise ValueError("no frame has 3D joints for this person")
    out = joints.copy()
    last = int(np.argmax(valid))
    for i in range(len(out)):
        if valid[i]:
            last = i
        else:
            out[i] = out[last]
    return out


def _kids(b: int) -> list[int]:
    return [k for k, p in enumerate(SKELETON.parents) if p == b]


def _hierarchy(lines: list[str], b: int, offsets: np.ndarray, depth: int) -> None:
    pad = "  " * depth
    o = offsets[b]
    if b == 0:
        lines.append(f"ROOT {SKELETON.names[b]}")
        channels = "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
    else:
        lines.append(f"{pad}JOINT {SKELETON.names[b]}")
        channels = "CHANNELS 3 Zrotation Xrotation Yrotation"
    lines += [f"{pad}{{", f"{pad}  OFFSET {o[0]:.6f} {o[1]:.6f} {o[2]:.6f}", f"{pad}  {channels}"]
    kids = _kids(b)
    for k in kids:
        _hierarchy(lines, k, offsets, depth + 1)
    if not kids:
        e = offsets[b] * _END_FRACTION
        lines += [f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {e[0]:.6f} {e[1]:.6f} {e[2]:.6f}", f"{pad}  }}"]
    lines.append(f"{pad}}}")


def _bvh_offsets(h36m_offsets: np.ndarray) -> np.ndarray:
    """[17, 3] offsets of the H36M joints -> [N, 3] of the BVH joints (zero for the links)."""
    sk = SKELETON
    return np.array([
        h36m_offsets[j] if name == BVH_JOINTS[j] else np.zeros(3) for name, j in zip(sk.names, sk.h36m, strict=True)
    ])  # fmt: skip


def _frame_of(x_axis: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Rotation matrices [T, 3, 3] with columns x (given), y (up made orthogonal), z = x cross y."""
    x = x_axis / np.linalg.norm(x_axis, axis=-1, keepdims=True)
    y = up - (up * x).sum(-1, keepdims=True) * x
    y = y / np.linalg.norm(y, axis=-1, keepdims=True)
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def _rest_offsets(p: np.ndarray) -> np.ndarray:
    """OFFSET of every joint [J, 3] from root-relative positions p [T, J, 3] (see the module docstring)."""
    offsets = np.zeros((17, 3))
    bone = np.array([np.median(np.linalg.norm(p[:, c] - p[:, H36M_PARENTS[c]], axis=-1)) for c in range(1, 17)])
    length = np.concatenate([[0.0], bone])
    for parent, group, frame in (
        (0, _HIP_GROUP, _frame_of(p[:, 4] - p[:, 1], p[:, 7] - p[:, 0])),
        (8, _SHOULDER_GROUP, _frame_of(p[:, 11] - p[:, 14], p[:, 9] - p[:, 8])),
    ):
        for c in group:
            local = np.einsum("tji,tj->ti", frame, p[:, c] - p[:, parent])  # R^T v
            med = np.median(local, axis=0)
            offsets[c] = med / max(np.linalg.norm(med), 1e-9) * length[c]
    for c, d in _T_POSE.items():
        offsets[c] = np.asarray(d, np.float64) * length[c]
    return offsets


def _kabsch(rest: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Rotations [T, 3, 3] that best map rest vectors [K, 3] onto seen [T, K, 3]."""
    h = np.einsum("ki,tkj->tij", rest, seen)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.swapaxes(vt, 1, 2) @ np.swapaxes(u, 1, 2)))
    fix = np.tile(np.eye(3), (len(h), 1, 1))
    fix[:, 2, 2] = d
    out: np.ndarray = np.swapaxes(vt, 1, 2) @ fix @ np.swapaxes(u, 1, 2)
    return out


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotations [T, 3, 3] taking directions a [T, 3] to b [T, 3]."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    v = np.cross(a, b)
    c = (a * b).sum(-1)
    k = np.zeros((len(a), 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
    k[:, 1, 0], k[:, 2, 0], k[:, 2, 1] = v[:, 2], -v[:, 1], v[:, 0]
    r = np.eye(3) + k + (k @ k) / np.maximum(1 + c, 1e-12)[:, None, None]
    opposite = c < -1 + 1e-9  # 180 degrees: about any axis perpendicular to a
    for i in np.flatnonzero(opposite):
        axis = np.cross(a[i], [1.0, 0, 0] if abs(a[i, 0]) < 0.9 else [0, 1.0, 0])
        axis /= np.linalg.norm(axis)
        r[i] = 2 * np.outer(axis, axis) - np.eye(3)
    out: np.ndarray = r
    return out


def _solve_rotations(pos: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Local rotations [T, N, 3, 3] of the BVH joints at positions pos [T, N, 3] (see the module docstring)."""
    t, n = pos.shape[:2]
    parents = SKELETON.parents
    world = np.zeros((t, n, 3, 3))
    for b in range(n):  # parents come first in file order
        base = world[:, parents[b]] if b else np.tile(np.eye(3), (t, 1, 1))
        kids = _kids(b)
        if len(kids) == 1:  # point the bone at the child
            (k,) = kids
            world[:, b] = _swing(base @ offsets[k], pos[:, k] - pos[:, b]) @ base
        elif kids:  # zero-length links: fit the triangle of the joints behind them
            ends = [_kids(k)[0] for k in kids]
            rest = np.stack([offsets[e] for e in ends])
            world[:, b] = _kabsch(rest, np.stack([pos[:, e] - pos[:, b] for e in ends], axis=1))
        else:
            world[:, b] = base
    local = world.copy()
    for b in range(1, n):
        local[:, b] = np.swapaxes(world[:, parents[b]], 1, 2) @ world[:, b]
    return local


def _euler_zxy(r: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] = Rz(a) Rx(b) Ry(c) -> degrees [..., 3] (a, b, c)."""
    b = np.arcsin(np.clip(r[..., 2, 1], -1.0, 1.0))
    a = np.arctan2(-r[..., 0, 1], r[..., 1, 1])
    c = np.arctan2(-r[..., 2, 0], r[..., 2, 2])
    # gimbal lock (b = +-90 degrees): only a +- c is defined; put it all in a
    lock = np.hypot(r[..., 0, 1], r[..., 1, 1]) < 1e-9
    a = np.where(lock, np.arctan2(r[..., 1, 0], r[..., 0, 0]), a)
    c = np.where(lock, 0.0, c)
    out: np.ndarray = np.degrees(np.stack([a, b, c], axis=-1))
    return out


# --- reading and forward kinematics ---------------------------------------------------


@dataclass
class Bvh:
    names: list[str]
    parents: list[int]
    offsets: np.ndarray  # [J, 3] file units
    channels: list[list[str]]  # per joint, in file order
    frame_time: float
    motion: np.ndarray  # [T, total channels]

    def positions(self) -> np.ndarray:
        """Forward kinematics: world positions [T, J, 3] of every joint (not End Sites), file units."""
        t = len(self.motion)
        n = len(self.names)
        world_r = np.zeros((t, n, 3, 3))
        pos = np.zeros((t, n, 3))
        col = 0
        for j in range(n):
            chans = self.channels[j]
            values = self.motion[:, col : col + len(chans)]
            col += len(chans)
            local = np.tile(np.eye(3), (t, 1, 1))
            trans = np.zeros((t, 3))
            for k, ch in enumerate(chans):
                axis = ch[0].lower()
                if ch.endswith("position"):
                    trans[:, "xyz".index(axis)] = values[:, k]
                else:
                    local = local @ _axis_rotation(axis, np.radians(values[:, k]))
            p = self.parents[j]
            if p < 0:
                world_r[:, j] = local
                pos[:, j] = self.offsets[j] + trans
            else:
                world_r[:, j] = world_r[:, p] @ local
                pos[:, j] = pos[:, p] + world_r[:, p] @ self.offsets[j]
        return pos


def _axis_rotation(axis: str, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    r = np.zeros((len(angle), 3, 3))
    i = "xyz".index(axis)
    j, k = (i + 1) % 3, (i + 2) % 3
    r[:, i, i] = 1
    r[:, j, j], r[:, j, k], r[:, k, j], r[:, k, k] = c, -s, s, c
    return r


def read_bvh(path: str | Path) -> Bvh:
    """Parse a BVH file (any hierarchy; End Sites are skipped)."""
    tokens = re.findall(r"[^\s{}]+|[{}]", Path(path).read_text())
    pos = 0

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError(f"{path}: unexpected end of file")
        pos += 1
        return str(tokens[pos - 1])

    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    if take() != "HIERARCHY":
        raise ValueError(f"{path}: not a BVH file (no HIERARCHY)")
    stack: list[int] = []
    while True:
        tok = take()
        if tok in ("ROOT", "JOINT"):
            names.append(take())
            parents.append(stack[-1] if stack else -1)
            stack.append(len(names) - 1)
            if take() != "{":
                raise ValueError(f"{path}: expected '{{' after {names[-1]}")
        elif tok == "OFFSET":
            offsets.append([float(take()) for _ in range(3)])
        elif tok == "CHANNELS":
            channels.append([take() for _ in range(int(take()))])
        elif tok == "End":
            take()  # Site
            depth = 0
            while True:
                t = take()
                depth += (t == "{") - (t == "}")
                if depth == 0 and t == "}":
                    break
        elif tok == "}":
            stack.pop()
        elif tok == "MOTION":
            break
        else:
            raise ValueError(f"{path}: unexpected token {tok!r}")
    take()  # Frames:
    frames = int(take())
    take(), take()  # Frame Time:
    frame_time = float(take())
    width = sum(len(c) for c in channels)
    values = np.array([float(v) for v in tokens[pos:]], np.float64)
    if values.size != frames * width:
        raise ValueError(f"{path}: {values.size} motion values, expected {frames} x {width}")
    if len(offsets) != len(names) or len(channels) != len(names):
        raise ValueError(f"{path}: every joint needs one OFFSET and one CHANNELS line")
    return Bvh(names, parents, np.array(offsets), channels, frame_time, values.reshape(frames, width))
