"""The real app (`create_app`) on the stores several servers share: jobs in PostgreSQL
(`HOTPOSE_JOB_DB=postgresql://...`, a database of the test's own) and results in S3
(`HOTPOSE_RESULTS=s3://bucket/prefix`, moto's server on loopback), nothing in the data directory but
the uploads being received. Skipped with the reason where PostgreSQL or moto cannot start."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from hotpose.service.app import create_app
from hotpose.service.settings import Settings
from tests.service.stores.conftest import BUCKET, NO_PSYCOPG
from tests.service.test_app import submit, wait_job

psycopg = pytest.importorskip("psycopg", reason=NO_PSYCOPG)
boto3 = pytest.importorskip("boto3", reason="the S3 result store needs boto3: pip install 'hotpose[s3]'")

FRAMES = 30  # in `astronaut_clip`


@pytest.fixture
def results_url(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """`HOTPOSE_RESULTS` under a prefix of the test's own, the endpoint given as a deployment gives it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    return f"s3://{BUCKET}/app-{uuid.uuid4().hex[:8]}"


def s3_keys(results_url: str, under: str = "") -> list[str]:
    """Every key under the store's prefix (and then `under`), relative to the prefix."""
    prefix = results_url.removeprefix(f"s3://{BUCKET}/") + "/"
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + under)
    return sorted(o["Key"].removeprefix(prefix) for p in pages for o in p.get("Contents", []))


def job_row(job_db: str, job_id: str) -> tuple[Any, ...] | None:
    with psycopg.connect(job_db, autocommit=True) as conn:
        row: tuple[Any, ...] | None = conn.execute(
            "SELECT status, frames_done, attempts FROM jobs WHERE job_id = %s", (job_id,)
        ).fetchone()
    return row


def stream_indices(client: TestClient, job_id: str) -> list[int]:
    r = client.get(f"/v1/jobs/{job_id}/stream")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line)["index"] for line in r.text.strip().split("\n")]


def test_a_clip_job_on_postgres_and_s3(
    make_settings: Callable[..., Settings], astronaut_clip: Path, postgres_database: str, results_url: str
) -> None:
    settings = make_settings(job_db=postgres_database, results=results_url)
    with TestClient(create_app(settings)) as client:
        job_id = submit(client, astronaut_clip.read_bytes())
        job = wait_job(client, job_id, timeout=60)
        assert (job["status"], job["progress"], job["frames_done"]) == ("done", 1.0, FRAMES), job
        assert job_row(postgres_database, job_id) == ("done", FRAMES, 1)
        keys = s3_keys(results_url, f"jobs/{job_id}/")
        assert f"jobs/{job_id}/meta.json" in keys and not any("/input" in k for k in keys)  # the upload dropped
        assert any(k.startswith(f"jobs/{job_id}/frames-1/") for k in keys)  # attempt 1 wrote them
        assert f"jobs/{job_id}/frames.committed" in keys

        result = client.get(f"/v1/jobs/{job_id}/result")
        assert result.status_code == 200
        assert [f["index"] for f in result.json()["frames"]] == list(range(FRAMES))
        assert stream_indices(client, job_id) == list(range(FRAMES))
        npz = client.get(f"/v1/jobs/{job_id}/result?format=npz")
        assert npz.status_code == 200
        assert len(np.load(io.BytesIO(npz.content))["frame_index"]) == FRAMES

        assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
        assert client.get(f"/v1/jobs/{job_id}").status_code == 404
        assert job_row(postgres_database, job_id) is None
        assert s3_keys(results_url) == []  # every object of the job, and no other was made
    assert not (settings.data_dir / "jobs").exists()  # results went to S3
    assert not (settings.data_dir / "jobs.sqlite3").exists()  # and the jobs table to PostgreSQL
    assert list((settings.data_dir / "uploads").iterdir()) == []


def test_two_servers_share_their_jobs(
    make_settings: Callable[..., Settings],
    astronaut_clip: Path,
    postgres_database: str,
    results_url: str,
    tmp_path: Path,
) -> None:
    """A job posted to a server without workers is run by the other, and either answers for it."""
    front = make_settings(job_db=postgres_database, results=results_url, data_dir=tmp_path / "a", job_workers=0)
    worker = make_settings(
        job_db=postgres_database, results=results_url, data_dir=tmp_path / "b", job_workers=1, job_poll_s=0.1
    )
    with TestClient(create_app(front)) as a, TestClient(create_app(worker)) as b:
        job_id = submit(a, astronaut_clip.read_bytes())
        assert b.get(f"/v1/jobs/{job_id}").json()["status"] in ("queued", "running", "done")
        job = wait_job(a, job_id, timeout=60)
        assert job["status"] == "done", job
        assert b.get(f"/v1/jobs/{job_id}").json() == job

        from_a, from_b = a.get(f"/v1/jobs/{job_id}/result"), b.get(f"/v1/jobs/{job_id}/result")
        assert from_a.status_code == from_b.status_code == 200
        assert from_a.json() == from_b.json() and len(from_b.json()["frames"]) == FRAMES
        assert stream_indices(a, job_id) == stream_indices(b, job_id) == list(range(FRAMES))

        assert b.delete(f"/v1/jobs/{job_id}").status_code == 200
        assert a.get(f"/v1/jobs/{job_id}").status_code == 404
        assert s3_keys(results_url) == []
