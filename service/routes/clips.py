"""`POST /v1/clips`: upload a video (multipart field `file`; optional fields `focal_px` or `fov_deg`
and `person_height_m`, for placing people: `hotpose.service.placing`); it becomes a queued clip job.

The upload is bounded twice: by its Content-Length when given, and while it streams in (a chunked
body, or a length that understated it), so an oversized upload is refused with 413 without being
stored. No job is left behind half-written: any failure while copying deletes it.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import FormData, UploadFile  # what a parsed form holds (FastAPI's subclasses it)
from starlette.types import Message, Receive

from hotpose.service.deps import Auth, Ready, State
from hotpose.service.jobs import write_camera_request
from hotpose.service.placing import CameraRequest
from hotpose.service.schemas import CLIP_UPLOAD, JOB_LINKS, ClipAccepted, responses

log = logging.getLogger(__name__)

UPLOAD_CHUNK = 1 << 20
FORM_OVERHEAD = 1 << 16  # multipart boundaries and headers allowed beyond the file's own limit
CAMERA_FIELDS = ("focal_px", "fov_deg", "person_height_m")

router = APIRouter()


class _UploadTooLargeError(Exception):
    pass


@router.post(
    "/v1/clips", status_code=202, dependencies=[Auth], response_model=ClipAccepted, openapi_extra=CLIP_UPLOAD,
    responses={202: {"description": "queued", "links": JOB_LINKS}, **responses(400, 401, 413, 422, 429, 503)},
)  # fmt: skip
async def create_clip(request: Request, state: State) -> JSONResponse:
    s = state.settings
    if len(state.store.with_status("queued", "running")) >= s.max_pending_jobs:  # before reading the upload
        raise HTTPException(
            status_code=429,
            detail=f"too many clips waiting (limit {s.max_pending_jobs}); try again when one has finished",
            headers={"Retry-After": "30"},
        )
    limit = int(s.max_upload_mb * (1 << 20))
    too_large = HTTPException(status_code=413, detail=f"upload larger than {s.max_upload_mb:g} MB")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit + FORM_OVERHEAD:
        raise too_large
    form = await _read_form(request, limit + FORM_OVERHEAD, too_large)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(status_code=422, detail="send the video as the multipart field 'file'")
        camera = _camera_request(form)
        job_id, name, size = await _store_upload(state, upload, limit, too_large)
        write_camera_request(state.store, job_id, camera)
    finally:
        await form.close()
    state.runner.submit(job_id)
    log.info("job %s: %s (%d bytes) queued", job_id, name, size)
    return JSONResponse({"job_id": job_id, "status": "queued"}, status_code=202)


def _camera_request(form: FormData) -> CameraRequest:
    """The optional fields `focal_px`, `fov_deg` (horizontal, degrees), `person_height_m` (metres)."""
    unknown = sorted(set(form.keys()) - {"file", *CAMERA_FIELDS})
    if unknown:
        names = ", ".join(repr(k[:40]) for k in unknown[:5])
        known = ", ".join(("file", *CAMERA_FIELDS))
        raise HTTPException(status_code=422, detail=f"unknown form fields {names}; known: {known}")
    values: dict[str, float] = {}
    for name in CAMERA_FIELDS:
        raw = form.get(name)
        if raw is None or raw == "":
            continue
        try:
            values[name] = float(str(raw))
        except ValueError:
            raise HTTPException(status_code=422, detail=f"{name} must be a number, got {str(raw)[:40]!r}") from None
    try:
        return CameraRequest(**values)
    except ValueError as e:
        raise HTTPException(status_code=422, detail=str(e)) from None


async def _read_form(request: Request, limit: int, too_large: HTTPException) -> FormData:
    try:
        return await Request(request.scope, _limited(request.receive, limit)).form(max_files=1, max_fields=8)
    except _UploadTooLargeError:  # no Content-Length (chunked), or one that understated the body
        raise too_large from None
    except Exception as e:
        raise HTTPException(status_code=400, detail=f"not a multipart form: {e}") from e


async def _store_upload(state: Ready, upload: UploadFile, limit: int, too_large: HTTPException) -> tuple[str, str, int]:
    """Copy the upload into a new job's folder -> (job id, file name, bytes); the job is gone on failure."""
    name = Path(upload.filename or "upload").name
    job = state.store.create(name)
    suffix = Path(name).suffix.lower()
    dest = state.store.dir(job.job_id) / f"input{suffix if len(suffix) <= 6 else ''}"
    try:
        size = await asyncio.to_thread(_copy_upload, upload, dest, limit)
    except _UploadTooLargeError:
        state.store.delete(job.job_id)
        raise too_large from None
    except BaseException:  # a full disk, a cancelled request: no job is left behind half-written
        state.store.delete(job.job_id)
        raise
    if size == 0:
        state.store.delete(job.job_id)
        raise HTTPException(status_code=422, detail="the uploaded file is empty")
    return job.job_id, name, size


def _limited(receive: Receive, limit: int) -> Receive:
    """`receive` that raises _UploadTooLargeError once the request body passes `limit` bytes."""
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _UploadTooLargeError
        return message

    return limited


def _copy_upload(upload: UploadFile, dest: Path, limit: int) -> int:
    size = 0
    with open(dest, "wb") as out:
        while chunk := upload.file.read(UPLOAD_CHUNK):
            size += len(chunk)
            if size > limit:
                raise _UploadTooLargeError
            out.write(chunk)
    return size
