"""Joint angles in degrees from 3D joints in Human3.6M-17 order: knees, hips, elbows, shoulders.

The one computation of hotpose's angles: `PoseSequence.joint_angles()` in the SDK, and the server's
`GET /v1/jobs/{id}/angles` (JSON, or CSV for a spreadsheet) that the web page plots, both call
`joint_angles` here.

Each angle is the angle between two 3D segment vectors, in [0, 180] degrees, from
`arccos(u . v / (|u| |v|))`; it has no sign (it does not say flexion from hyperextension, nor in
which plane the limb moved) and does not depend on the coordinate frame, so root-relative and
placed joints give the same values. `l_` and `r_` are the person's own left and right.

- knee (`l_knee`, `r_knee`): at the knee, between knee -> hip and knee -> ankle. A straight leg is
  180, a right angle 90; it decreases as the knee bends.
- hip (`l_hip`, `r_hip`): between the thigh, hip -> knee, and the trunk, pelvis -> thorax. Standing
  upright is 180, sitting upright (thigh forward) 90; it decreases as the hip flexes.
- elbow (`l_elbow`, `r_elbow`): at the elbow, between elbow -> shoulder and elbow -> wrist. A straight
  arm is 180, a right angle 90.
- shoulder (`l_shoulder`, `r_shoulder`): between the upper arm, shoulder -> elbow, and the trunk
  pointing down, thorax -> pelvis. The arm hanging by the side is 0, raised level (forwards or
  sideways) 90, straight overhead 180.

An angle is NaN where either segment has a missing joint (NaN) or zero length.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from hotpose_client import schema

__all__ = ["ANGLES", "ANGLE_NAMES", "CSV_COLUMNS", "DEFINITIONS", "angles_csv_chunks", "joint_angles"]

# Human3.6M-17 joint indexes (hotpose's 3D order, `PoseSequence.joint_names`)
PELVIS, R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE, THORAX = 0, 1, 2, 3, 4, 5, 6, 8
L_SHOULDER, L_ELBOW, L_WRIST, R_SHOULDER, R_ELBOW, R_WRIST = 11, 12, 13, 14, 15, 16
N_JOINTS = 17

# name -> (segment u, segment v), each segment (from joint, to joint): the angle between u and v
ANGLES: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "l_knee": ((L_KNEE, L_HIP), (L_KNEE, L_ANKLE)),
    "r_knee": ((R_KNEE, R_HIP), (R_KNEE, R_ANKLE)),
    "l_hip": ((L_HIP, L_KNEE), (PELVIS, THORAX)),
    "r_hip": ((R_HIP, R_KNEE), (PELVIS, THORAX)),
    "l_elbow": ((L_ELBOW, L_SHOULDER), (L_ELBOW, L_WRIST)),
    "r_elbow": ((R_ELBOW, R_SHOULDER), (R_ELBOW, R_WRIST)),
    "l_shoulder": ((L_SHOULDER, L_ELBOW), (THORAX, PELVIS)),
    "r_shoulder": ((R_SHOULDER, R_ELBOW), (THORAX, PELVIS)),
}
ANGLE_NAMES: tuple[str, ...] = tuple(ANGLES)

# One line per angle, for the people reading a plot or a CSV (the server sends these with the values).
DEFINITIONS: dict[str, str] = {
    "knee": "at the knee, between knee->hip and knee->ankle; straight leg 180",
    "hip": "between the thigh (hip->knee) and the trunk (pelvis->thorax); standing 180, sitting 90",
    "elbow": "at the elbow, between elbow->shoulder and elbow->wrist; straight arm 180",
    "shoulder": "between the upper arm (shoulder->elbow) and the trunk downwards (thorax->pelvis); arm down 0",
}

CSV_COLUMNS = ("frame", "time", "track_id", *ANGLE_NAMES)


def joint_angles(joints: np.ndarray) -> dict[str, np.ndarray]:
    """Joints [..., 17, 3] (Human3.6M-17 order, any one frame for all joints) -> name -> angle [...]
    in degrees (float64), for each of `ANGLE_NAMES`; NaN where a joint is NaN or a segment has zero length."""
    j = np.asarray(joints, np.float64)
    if j.ndim < 2 or j.shape[-2:] != (N_JOINTS, 3):
        raise ValueError(f"expected joints [..., {N_JOINTS}, 3] in Human3.6M-17 order, got {list(j.shape)}")
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, ((a, b), (c, d)) in ANGLES.items():
            u = j[..., b, :] - j[..., a, :]  # [..., 3]
            v = j[..., d, :] - j[..., c, :]
            norm = np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1)
            cos = np.sum(u * v, axis=-1) / np.where(norm > 0, norm, np.nan)
            out[name] = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return out


def _cell(v: float) -> str:
    return "" if np.isnan(v) else f"{v:.2f}"


def angles_csv_chunks(frames: Iterable[schema.Frame | dict[str, Any]]) -> Iterator[str]:
    """The angles as CSV text (`CSV_COLUMNS`, degrees to 0.01), header first, one chunk per frame:
    one row per person with 3D in each frame (`schema.Frame`, or a dict in its layout); empty cells
    where an angle is NaN."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    yield buf.getvalue()
    for frame in frames:
        buf.seek(0)
        buf.truncate()
        fr = schema.Frame.model_validate(frame)
        for p in fr.people:
            if p.joints_3d is None:
                continue
            angles = joint_angles(np.asarray(p.joints_3d, np.float64))
            w.writerow([fr.index, fr.time, p.track_id, *(_cell(float(angles[n])) for n in ANGLE_NAMES)])
        if buf.getvalue():
            yield buf.getvalue()
