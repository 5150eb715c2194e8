"""The result files, defined once: the server writes them and the SDK reads and writes them.

- JSON: `hotpose_client.schema.Result` (its head, `ResultHead`, then its `Frame`s, each a list of
  `Person`s); the fields, their units and which may be absent in older results are in `schema`.
- NPZ: one row per person-frame (`npz_arrays`), plus every frame's index and time.
- CSV: one row per person, frame and joint (`CSV_COLUMNS`); empty cells where there is no 3D or
  no root; the camera repeated on every row (a CSV has no header block), empty without one.

The writers take frames as `schema.Frame` models or as dicts in their JSON layout (validated into
one), so the server can stream them from its NDJSON; the readers return dicts in that layout.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from hotpose_client import schema

CSV_COLUMNS = (
    "frame", "time", "track_id", "person_score", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1",
    "joint", "x_px", "y_px", "score", "x_m", "y_m", "z_m",
    "root_x", "root_y", "root_z", "camera_focal_px", "camera_cx", "camera_cy", "camera_assumed",
)  # fmt: skip
# CSVs written before `root_3d` and `camera`: the same columns up to z_m; still read.
CSV_COLUMNS_V1 = CSV_COLUMNS[: CSV_COLUMNS.index("z_m") + 1]
_CSV_ROOT = CSV_COLUMNS.index("root_x")  # root_x, root_y, root_z
_CSV_CAMERA = CSV_COLUMNS.index("camera_focal_px")  # focal_px, cx, cy, assumed

# The `camera` object of a result header and of live `pose` messages (`schema.Camera`)
CAMERA_KEYS = tuple(schema.Camera.model_fields)

NPZ_ARRAYS = {
    "frame_index": "[F] int64: index of every frame, with or without people",
    "frame_time": "[F] float64: seconds",
    "frame": "[N] int64: frame index of each person-row",
    "time": "[N] float64",
    "track_id": "[N] int64",
    "bbox": "[N, 4] float32: x0, y0, x1, y1 pixels",
    "score": "[N] float32",
    "keypoints_2d": "[N, J, 3] float32: x, y pixels, score",
    "joints_3d": "[N, J, 3] float32: metres, root-relative, NaN where not lifted",
    "root_3d": "[N, 3] float32: pelvis in the camera frame, metres, NaN where not solved (absent in older files)",
    "joint_names": "[J] str",
    "skeleton_edges": "[E, 2] int64",
    "fps": "float64", "width": "int64", "height": "int64",
    "coordinates": "str: JSON object, units and axes of each field (absent in older files)",
    # the result's camera (absent when it has none): all six or none
    "camera_focal_px": "float64: pixels", "camera_cx": "float64: pixels", "camera_cy": "float64: pixels",
    "camera_width": "int64: pixels", "camera_height": "int64: pixels",
    "camera_assumed": "bool: the default 70-degree horizontal field of view was assumed",
}  # fmt: skip
CAMERA_NPZ_ARRAYS = tuple(f"camera_{k}" for k in CAMERA_KEYS)
OPTIONAL_NPZ_ARRAYS = {"coordinates", "root_3d", *CAMERA_NPZ_ARRAYS}
HEAD_KEYS = tuple(schema.ResultHead.model_fields)
OPTIONAL_HEAD_KEYS = {"camera"}  # written only when the meta has one (not None)
FrameLike = schema.Frame | dict[str, Any]  # a frame, or a dict in its JSON layout


# --- JSON ----------------------------------------------------------------------------


def write_json(doc: dict[str, Any], path: str | Path | IO[str] | None) -> str | None:
    if path is None:
        return json.dumps(doc)
    if isinstance(path, (str, Path)):
        with open(path, "w") as f:
            json.dump(doc, f)
    else:
        json.dump(doc, path)
    return None


def json_head(meta: dict[str, Any]) -> str:
    """The JSON result up to its first frame: `{"fps": ..., "coordinates": {...}, "frames": [`, so a
    writer can stream the frames after it (and close with `]}`). `camera` is left out when the meta
    has none."""
    if meta.get("camera") is not None:
        meta = {**meta, "camera": camera_dict(meta["camera"])}
    return json.dumps(schema.ResultHead.model_validate(meta).head_dict())[:-1] + ', "frames": ['


def camera_dict(camera: dict[str, Any]) -> dict[str, Any]:
    """A `camera` object checked and typed (`schema.Camera`); raises ValueError naming a missing key."""
    missing = [k for k in CAMERA_KEYS if k not in camera]
    if missing:
        raise ValueError(f"camera object without {missing}: expected the keys {list(CAMERA_KEYS)}")
    values = {k: camera[k] for k in CAMERA_KEYS}
    values["assumed"] = _as_bool(camera["assumed"])  # CSV cells: 1/0 (true/false)
    return schema.Camera.model_validate(values).model_dump()


def _as_bool(v: Any) -> bool:
    if isinstance(v, str):
        if v.strip().lower() not in ("1", "0", "true", "false"):
            raise ValueError(f"expected a boolean (true/false, 1/0), got {v!r}")
        return v.strip().lower() in ("1", "true")
    return bool(v)


def read_json(source: str | Path | IO[str]) -> dict[str, Any]:
    if isinstance(source, Path) or (isinstance(source, str) and not source.lstrip().startswith("{")):
        with open(source) as f:
            return dict(json.load(f))
    if isinstance(source, str):
        return dict(json.loads(source))
    return dict(json.load(source))


# --- CSV -----------------------------------------------------------------------------


def csv_rows(frame: FrameLike, joint_names: Sequence[str], camera: dict[str, Any] | None = None) -> Iterator[list[Any]]:
    """The CSV rows of one frame; `camera` (the result header's) fills the camera columns."""
    cam: list[Any] = [None] * 4
    if camera is not None:
        c = camera_dict(camera)
        cam = [c["focal_px"], c["cx"], c["cy"], int(c["assumed"])]  # 1/0: numeric, as every other column
    fr = schema.Frame.model_validate(frame)
    for p in fr.people:
        j3: list[Any] = p.joints_3d or [[None] * 3] * len(joint_names)
        head = [fr.index, fr.time, p.track_id, p.score, *p.bbox]
        root: list[Any] = p.root_3d or [None] * 3
        tail = [*root, *cam]
        for name, k2, k3 in zip(joint_names, p.keypoints_2d, j3, strict=True):
            yield [*head, name, *k2, *k3, *tail]


def csv_chunks(
    frames: Iterable[FrameLike], joint_names: Sequence[str], camera: dict[str, Any] | None = None
) -> Iterator[str]:
    """The CSV text, header first, one chunk per frame (for streaming)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for fr in frames:
        w.writerows(csv_rows(fr, joint_names, camera))
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    if buf.getvalue():
        yield buf.getvalue()


def write_csv(
    path: str | Path | IO[str],
    frames: Iterable[FrameLike],
    joint_names: Sequence[str],
    camera: dict[str, Any] | None = None,
) -> None:
    if isinstance(path, (str, Path)):
        with open(path, "w", newline="") as f:
            f.writelines(csv_chunks(frames, joint_names, camera))
    else:
        path.writelines(csv_chunks(frames, joint_names, camera))


def read_csv(path: str | Path | IO[str]) -> tuple[list[str], list[dict[str, Any]], dict[str, Any] | None]:
    """-> (joint names in file order, frame dicts, camera); frames without people are not in a CSV.

    The camera has `focal_px`, `cx`, `cy` and `assumed` only (a CSV holds no video size), None when
    the camera columns are empty or absent (CSVs written before them, `CSV_COLUMNS_V1`)."""
    if isinstance(path, (str, Path)):
        with open(path, newline="") as f:
            return _parse_csv(f)
    return _parse_csv(path)


def _parse_csv(f: IO[str]) -> tuple[list[str], list[dict[str, Any]], dict[str, Any] | None]:
    reader = csv.reader(f)
    header = next(reader, None)
    if header is None or tuple(header) not in (CSV_COLUMNS, CSV_COLUMNS_V1):
        raise ValueError(f"not a hotpose CSV: expected the columns {','.join(CSV_COLUMNS)}")
    has_root = len(header) == len(CSV_COLUMNS)
    names: list[str] = []
    frames: dict[int, dict[str, Any]] = {}
    people: dict[tuple[int, int], dict[str, Any]] = {}
    camera: dict[str, Any] | None = None
    for row in reader:
        index, t, tid = int(row[0]), float(row[1]), int(row[2])
        fr = frames.setdefault(index, {"index": index, "time": t, "people": []})
        p = people.get((index, tid))
        if p is None:
            root = None if not has_root or row[_CSV_ROOT] == "" else [float(v) for v in row[_CSV_ROOT : _CSV_ROOT + 3]]
            p = {"track_id": tid, "score": float(row[3]), "bbox": [float(v) for v in row[4:8]],
                 "keypoints_2d": [], "joints_3d": [], "root_3d": root}  # fmt: skip
            people[index, tid] = p
            fr["people"].append(p)
            if camera is None and has_root and row[_CSV_CAMERA] != "":
                focal, cx, cy, assumed = row[_CSV_CAMERA : _CSV_CAMERA + 4]
                camera = {"focal_px": float(focal), "cx": float(cx), "cy": float(cy), "assumed": _as_bool(assumed)}
        if len(frames) == 1 and len(fr["people"]) == 1:
            names.append(row[8])
        p["keypoints_2d"].append([float(v) for v in row[9:12]])
        p["joints_3d"].append(None if row[12] == "" else [float(v) for v in row[12:15]])
    for p in people.values():
        if any(j is None for j in p["joints_3d"]):
            p["joints_3d"] = None
    return names, [frames[k] for k in sorted(frames)], camera


# --- NPZ -----------------------------------------------------------------------------


def npz_arrays(meta: dict[str, Any] | schema.ResultHead, frames: Iterable[FrameLike]) -> dict[str, np.ndarray]:
    """The NPZ arrays (`NPZ_ARRAYS`) of a result's head and frames."""
    if isinstance(meta, dict) and meta.get("camera") is not None:
        meta = {**meta, "camera": camera_dict(meta["camera"])}
    head = schema.ResultHead.model_validate(meta)
    j = len(head.joint_names)
    rows: dict[str, list[Any]] = {k: [] for k in ("frame", "time", "track_id", "bbox", "score", "kp", "j3", "root")}
    frame_index, frame_time = [], []
    for frame in frames:
        fr = schema.Frame.model_validate(frame)
        frame_index.append(fr.index)
        frame_time.append(fr.time)
        for p in fr.people:
            rows["frame"].append(fr.index)
            rows["time"].append(fr.time)
            rows["track_id"].append(p.track_id)
            # as float32 arrays at once: nested lists of Python floats take ~15x the memory (long clips)
            rows["bbox"].append(np.asarray(p.bbox, np.float32))
            rows["score"].append(p.score)
            rows["kp"].append(np.asarray(p.keypoints_2d, np.float32))
            j3 = p.joints_3d
            rows["j3"].append(np.asarray(j3, np.float32) if j3 is not None else np.full((j, 3), np.nan, np.float32))
            rows["root"].append(p.root_3d or [np.nan] * 3)
    camera = head.camera
    cam = {} if camera is None else {f"camera_{k}": np.asarray(v) for k, v in camera.model_dump().items()}
    return {
        "frame_index": np.asarray(frame_index, np.int64), "frame_time": np.asarray(frame_time, np.float64),
        "frame": np.asarray(rows["frame"], np.int64), "time": np.asarray(rows["time"], np.float64),
        "track_id": np.asarray(rows["track_id"], np.int64),
        "bbox": np.asarray(rows["bbox"], np.float32).reshape(-1, 4),
        "score": np.asarray(rows["score"], np.float32),
        "keypoints_2d": np.asarray(rows["kp"], np.float32).reshape(-1, j, 3),
        "joints_3d": np.asarray(rows["j3"], np.float32).reshape(-1, j, 3),
        "root_3d": np.asarray(rows["root"], np.float32).reshape(-1, 3),
        "joint_names": np.asarray(head.joint_names),
        "skeleton_edges": np.asarray(head.skeleton_edges, np.int64).reshape(-1, 2),
        "fps": np.asarray(head.fps, np.float64), "width": np.asarray(head.width, np.int64),
        "height": np.asarray(head.height, np.int64),
        "coordinates": np.asarray(json.dumps(head.coordinates)),
        **cam,
    }  # fmt: skip


def write_npz(path: str | Path | IO[bytes], arrays: dict[str, np.ndarray]) -> None:
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    write_npz(buf, arrays)
    return buf.getvalue()


def read_npz(path: str | Path | IO[bytes]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """-> (meta, frame dicts) from an NPZ written by `npz_arrays`; values come back as float32."""
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in NPZ_ARRAYS if k not in z and k not in OPTIONAL_NPZ_ARRAYS]
        if missing:
            raise ValueError(f"not a hotpose NPZ: missing arrays {missing}")
        a = {k: z[k] for k in NPZ_ARRAYS if k in z}
    cam = [k for k in CAMERA_NPZ_ARRAYS if k in a]
    if cam and len(cam) != len(CAMERA_NPZ_ARRAYS):
        raise ValueError(f"hotpose NPZ with an incomplete camera: has {cam}, needs all of {list(CAMERA_NPZ_ARRAYS)}")
    meta = {
        "fps": float(a["fps"]), "width": int(a["width"]), "height": int(a["height"]),
        "joint_names": [str(n) for n in a["joint_names"]], "skeleton_edges": a["skeleton_edges"].tolist(),
        "coordinates": json.loads(str(a["coordinates"])) if "coordinates" in a else {},
    }  # fmt: skip
    if cam:
        meta["camera"] = camera_dict({k: a[f"camera_{k}"].item() for k in CAMERA_KEYS})
    root = a.get("root_3d")
    frames: dict[int, dict[str, Any]] = {
        int(i): {"index": int(i), "time": float(t), "people": []}
        for i, t in zip(a["frame_index"], a["frame_time"], strict=True)
    }
    for r in range(len(a["frame"])):
        j3 = a["joints_3d"][r]
        frames[int(a["frame"][r])]["people"].append({
            "track_id": int(a["track_id"][r]), "bbox": a["bbox"][r].tolist(), "score": float(a["score"][r]),
            "keypoints_2d": a["keypoints_2d"][r].tolist(),
            "joints_3d": None if np.isnan(j3).all() else j3.tolist(),
            "root_3d": None if root is None or np.isnan(root[r]).any() else root[r].tolist(),
        })  # fmt: skip
    return meta, list(frames.values())
