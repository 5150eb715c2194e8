"""Clip jobs: status, deletion, the result in four formats, joint angles, and the frames as they are written.

`GET /v1/jobs/{id}`, `DELETE /v1/jobs/{id}`, `GET /v1/jobs/{id}/result?format=json|npz|csv|bvh`
(409 while the job waits or runs, and when it failed: `job is failed: <why>`),
`GET /v1/jobs/{id}/angles?format=json|csv` (knee, hip, elbow and shoulder angles per person and frame,
computed by the SDK's `hotpose_client.angles`, as `PoseSequence.joint_angles` does; 409 likewise),
`GET /v1/jobs/{id}/stream` (NDJSON, one frame a line, ending with the job; a failed job's last line is
`{"error": ...}`).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Header, HTTPException
from fastapi.responses import Response, StreamingResponse

from hotpose.models.keypoints import H36M_JOINTS
from hotpose.service.deps import Auth, Ready, State
from hotpose.service.jobs import Job, Jobs
from hotpose.service.pipeline import COORDINATES
from hotpose.service.schemas import AnglesResponse, JobDeleted, JobResponse, PersonAngles, content, responses
from hotpose.service.stores.base import iter_frame_lines
from hotpose_client import PoseSequence, angles, formats, schema

router = APIRouter(prefix="/v1/jobs", dependencies=[Auth])

TAIL_POLL_S = 0.1  # how often `/stream` looks for new frames of a running job


# the JSON result is `schema.Result`; NPZ and BVH are bytes, CSV text (`hotpose_client.formats`)
RESULT_TYPES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": schema.Result,
        "description": "the result: JSON (`Result`), NPZ or BVH (bytes), CSV",
        "content": {"application/octet-stream": {"schema": {}}, "text/csv": {"schema": {}}},
    }
}
NDJSON = content(
    "one frame per line (`Frame`), as the job writes them; a failed job's last line: `JobStreamError`",
    "application/x-ndjson",
)


@router.get("/{job_id}", response_model=JobResponse, responses=responses(401, 404, 422, 503))
async def get_job(job_id: str, state: State) -> JobResponse:
    return JobResponse(**(await _job_or_404(state.jobs, job_id)).public())


@router.delete("/{job_id}", response_model=JobDeleted, responses=responses(401, 404, 422, 503))
async def delete_job(job_id: str, state: State) -> JobDeleted:
    await _job_or_404(state.jobs, job_id)
    await asyncio.to_thread(state.jobs.delete, job_id)  # a worker running it stops at its next frame or update
    return JobDeleted(job_id=job_id, status="deleted")


@router.get(
    "/{job_id}/result", response_class=Response, responses={**RESULT_TYPES, **responses(401, 404, 409, 422, 503)}
)
async def job_result(
    job_id: str, state: State, format: Literal["json", "npz", "csv", "bvh"] = "json", track_id: int | None = None
) -> Response:
    meta, lines = await _result_or_409(state.jobs, job_id)
    if format == "json":
        return StreamingResponse(_json_result(meta, lines), media_type="application/json")
    if format == "csv":
        csv = _csv_result(lines, meta.get("camera"))
        return StreamingResponse(csv, media_type="text/csv", headers=_attachment(f"{job_id}.csv"))
    if format == "bvh":
        try:
            bvh = await asyncio.to_thread(_bvh_result, meta, lines, track_id)
        except (ValueError, KeyError) as e:
            raise HTTPException(status_code=422, detail=str(e).strip("'\"")) from None
        return Response(bvh, media_type="application/octet-stream", headers=_attachment(f"{job_id}.bvh"))
    data = await asyncio.to_thread(_npz_result, meta, lines)
    return Response(data, media_type="application/octet-stream", headers=_attachment(f"{job_id}.npz"))


ANGLES_CSV: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON (`AnglesResponse`), or CSV with `format=csv` or `Accept: text/csv`: one row per"
        " person and frame with 3D, columns frame, time, track_id and the angles",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


@router.get(
    "/{job_id}/angles", response_model=AnglesResponse, responses={**ANGLES_CSV, **responses(401, 404, 409, 422, 503)}
)
async def job_angles(
    job_id: str,
    state: State,
    format: Literal["json", "csv"] | None = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response | AnglesResponse:
    """Knee, hip, elbow and shoulder angles in degrees (definitions: `hotpose_client.angles`)."""
    meta, lines = await _result_or_409(state.jobs, job_id)
    if format == "csv" or (format is None and "text/csv" in (accept or "")):
        csv = (chunk.encode() for chunk in angles.angles_csv_chunks(_frames(lines)))
        return StreamingResponse(csv, media_type="text/csv", headers=_attachment(f"{job_id}_angles.csv"))
    return await asyncio.to_thread(_angles_result, meta, lines)


@router.get("/{job_id}/stream", response_class=StreamingResponse, responses={**NDJSON, **responses(401, 404, 422, 503)})
async def job_stream(job_id: str, state: State) -> StreamingResponse:
    await _job_or_404(state.jobs, job_id)
    return StreamingResponse(_tail(state, job_id), media_type="application/x-ndjson")


async def _job_or_404(jobs: Jobs, job_id: str) -> Job:
    job = await asyncio.to_thread(jobs.get, job_id)  # a database round trip: never on the event loop
    if job is None:
        raise HTTPException(status_code=404, detail=f"no job {job_id}")
    return job


async def _result_or_409(jobs: Jobs, job_id: str) -> tuple[dict[str, Any], Lines]:
    """A finished job's meta and its frames' lines; 409 while it waits or runs, and when it failed."""
    job = await _job_or_404(jobs, job_id)
    if job.status != "done":
        detail = f"job is {job.status}" + (f": {job.error}" if job.error else "")
        raise HTTPException(status_code=409, detail=detail)  # no result in this state: queued, running or failed
    meta = await asyncio.to_thread(jobs.meta, job_id)
    if meta is None:  # deleted between the two reads
        raise HTTPException(status_code=404, detail=f"no job {job_id}")
    return meta, Lines(jobs, job_id, job.attempts)


class Lines:
    """A finished job's NDJSON frame lines, read from its result store each time they are iterated."""

    def __init__(self, jobs: Jobs, job_id: str, attempt: int) -> None:
        self.jobs, self.job_id, self.attempt = jobs, job_id, attempt

    def __iter__(self) -> Iterator[bytes]:
        return iter_frame_lines(self.jobs.files, self.job_id, self.attempt)


def _angles_result(meta: dict[str, Any], lines: Lines) -> AnglesResponse:
    seq = PoseSequence.from_wire(schema.ResultHead.model_validate(meta), _frames(lines))
    lifted = sorted({p.track_id for f in seq.frames for p in f.people if p.joints_3d is not None})
    people = []
    for tid in lifted:
        values = seq.joint_angles(tid)  # name -> [T] degrees, NaN where absent
        people.append(
            PersonAngles(
                track_id=tid,
                angles={n: [None if np.isnan(v) else round(float(v), 2) for v in a] for n, a in values.items()},
            )
        )
    return AnglesResponse(
        unit="degrees", names=list(angles.ANGLE_NAMES), definitions=angles.DEFINITIONS,
        frames=[f.index for f in seq.frames], times=[f.time for f in seq.frames], people=people,
    )  # fmt: skip


def _attachment(filename: str) -> dict[str, str]:
    return {"content-disposition": f'attachment; filename="{filename}"'}


def _json_result(meta: dict[str, Any], lines: Lines) -> Iterator[bytes]:
    yield formats.json_head({**meta, "coordinates": COORDINATES}).encode()
    for i, line in enumerate(lines):
        yield (b"," if i else b"") + line.rstrip(b"\n")
    yield b"]}"


def _frames(lines: Lines) -> Iterator[schema.Frame]:
    for line in lines:
        yield schema.Frame.model_validate_json(line)


def _csv_result(lines: Lines, camera: dict[str, Any] | None) -> Iterator[bytes]:
    for chunk in formats.csv_chunks(_frames(lines), H36M_JOINTS, camera=camera):
        yield chunk.encode()


def _npz_result(meta: dict[str, Any], lines: Lines) -> bytes:
    """One row per person-frame (`hotpose_client.formats.NPZ_ARRAYS`)."""
    data: bytes = formats.npz_bytes(formats.npz_arrays({**meta, "coordinates": COORDINATES}, _frames(lines)))
    return data


def _bvh_result(meta: dict[str, Any], lines: Lines, track_id: int | None) -> bytes:
    """One person's animation (`hotpose_client.bvh`); `track_id` may be omitted when there is one person."""
    ids: set[int] = set()

    def frames() -> Iterator[schema.Frame]:  # one at a time, keeping only the person asked for (long clips)
        for f in _frames(lines):
            ids.update(p.track_id for p in f.people)
            if track_id is not None:
                f.people = [p for p in f.people if p.track_id == track_id]
            yield f

    seq = PoseSequence.from_wire(schema.ResultHead.model_validate(meta), frames())
    if track_id is not None and track_id not in ids:
        raise ValueError(f"no person with track_id {track_id} (have {sorted(ids)})")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "result.bvh"
        seq.to_bvh(path, track_id)
        return path.read_bytes()


async def _tail(state: Ready, job_id: str) -> AsyncIterator[bytes]:
    """The job's frames as NDJSON, as they are written (read from the result store, so any server of a
    shared store answers for any job); ends when the job ends. A job taken again by another worker
    (its first worker died) writes its frames afresh: the lines already sent are skipped in the new
    attempt's, so the client sees each frame once, in order."""
    jobs, attempt, cursor, sent, skip = state.jobs, -1, 0, 0, 0
    while True:
        job = await asyncio.to_thread(jobs.get, job_id)  # before reading: a job done now has all its frames
        if job is None:
            return
        if job.attempts != attempt:
            attempt, cursor, skip = job.attempts, 0, sent
        chunk, cursor = await asyncio.to_thread(jobs.files.read_frames, job_id, cursor, attempt)
        if chunk:
            if skip:
                lines = chunk.splitlines(keepends=True)
                chunk, skip = b"".join(lines[skip:]), max(skip - len(lines), 0)
            if chunk:
                sent += chunk.count(b"\n")
                yield chunk
            continue
        if job.status in ("done", "failed"):
            if job.status == "failed":
                last = schema.JobStreamError(error=job.error or "failed, no reason recorded")
                yield (last.model_dump_json() + "\n").encode()
            return
        await asyncio.sleep(TAIL_POLL_S)
