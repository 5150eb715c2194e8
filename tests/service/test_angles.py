"""`GET /v1/jobs/{id}/angles`: a finished clip's joint angles as JSON and CSV, from the SDK's one computation."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from hotpose.models.keypoints import H36M_EDGES, H36M_JOINTS
from hotpose.service.app import create_app
from hotpose.service.jobs import Job, Jobs
from hotpose.service.settings import Settings
from hotpose_client import PoseSequence
from hotpose_client.angles import ANGLE_NAMES, CSV_COLUMNS
from tests.client.test_angles import STANDING, sitting


def person(track_id: int, joints: np.ndarray | None) -> dict[str, Any]:
    return {"track_id": track_id, "bbox": [0, 0, 10, 10], "score": 0.9, "keypoints_2d": [[5.0, 5.0, 0.9]] * 17,
            "joints_3d": None if joints is None else joints.tolist(), "root_3d": [0.0, 0.0, 3.0]}  # fmt: skip


# person 1 stands, then sits, then is gone; person 2 appears in the last frame, not lifted in the first
FRAMES = [
    {"index": 0, "time": 0.0, "people": [person(1, STANDING), person(2, None)]},
    {"index": 1, "time": 0.1, "people": [person(1, sitting())]},
    {"index": 2, "time": 0.2, "people": [person(2, sitting())]},
]


def finished_job(client: TestClient, frames: list[dict[str, Any]]) -> str:
    """A job as a finished clip leaves it: its result head and frames in the result store, status done."""
    jobs: Jobs = client.app.state.hotpose.jobs  # type: ignore[attr-defined]
    now = time.time()
    job = Job(uuid.uuid4().hex, "done", "hand-made.mp4", now, now, 1.0, len(frames), len(frames))
    meta = {"fps": 10.0, "width": 64, "height": 48, "joint_names": list(H36M_JOINTS),
            "skeleton_edges": [list(e) for e in H36M_EDGES]}  # fmt: skip
    jobs.files.put_json(job.job_id, "meta.json", meta)
    out = jobs.files.frames_writer(job.job_id)
    for f in frames:
        out.write(json.dumps(f))
    out.commit()
    out.close()
    jobs.table.create(job)  # done: no worker takes it
    return job.job_id


def test_angles_json_and_csv_for_a_finished_clip(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings())) as client:
        job_id = finished_job(client, FRAMES)
        r = client.get(f"/v1/jobs/{job_id}/angles")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        csv = client.get(f"/v1/jobs/{job_id}/angles?format=csv")
        by_accept = client.get(f"/v1/jobs/{job_id}/angles", headers={"Accept": "text/csv"})
        result = client.get(f"/v1/jobs/{job_id}/result").json()
    assert body["unit"] == "degrees" and body["names"] == list(ANGLE_NAMES)
    assert set(body["definitions"]) == {"knee", "hip", "elbow", "shoulder"}
    assert body["frames"] == [0, 1, 2] and body["times"] == [0.0, 0.1, 0.2]
    people = {p["track_id"]: p["angles"] for p in body["people"]}
    assert sorted(people) == [1, 2]
    assert people[1]["r_knee"] == [180.0, 90.0, None] and people[1]["l_hip"] == [180.0, 90.0, None]
    assert people[2]["r_knee"] == [None, None, 90.0]  # not lifted in frame 0, absent in frame 1
    # the same numbers as the SDK's PoseSequence.joint_angles on the downloaded result
    sdk = PoseSequence.from_dict(result).joint_angles(1)
    for name in ANGLE_NAMES:
        np.testing.assert_allclose(np.array(people[1][name], float), sdk[name], atol=0.01)

    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"] and by_accept.text == csv.text
    lines = csv.text.splitlines()
    assert lines[0].split(",") == list(CSV_COLUMNS)
    rows = [line.split(",") for line in lines[1:]]
    assert [r[:3] for r in rows] == [["0", "0.0", "1"], ["1", "0.1", "1"], ["2", "0.2", "2"]]
    assert float(rows[1][CSV_COLUMNS.index("r_knee")]) == pytest.approx(90)


def test_angles_of_a_missing_or_unfinished_job(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(job_workers=0))) as client:  # no worker: the job stays queued
        assert client.get("/v1/jobs/nope/angles").status_code == 404
        job = Job(uuid.uuid4().hex, "queued", "clip.mp4", time.time(), time.time())
        client.app.state.hotpose.jobs.table.create(job)  # type: ignore[attr-defined]
        r = client.get(f"/v1/jobs/{job.job_id}/angles")
        assert r.status_code == 409 and r.json()["detail"] == "job is queued"
        assert client.get(f"/v1/jobs/{job.job_id}/angles?format=xml").status_code == 422
