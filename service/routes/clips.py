"""`POST /v1/clips`: upload a video (multipart field `file`; optional fields `focal_px` or `fov_deg`
and `person_height_m`, for placing people: `hotpose.service.placing`); it becomes a queued clip job.

The upload is bounded twice: by its Content-Length when given, and while it streams in (a chunked
body, or a length that understated it), so an oversized upload is refused with 413 without being
stored. One that trickles in slower than `HOTPOSE_MIN_UPLOAD_KBPS` (after `HOTPOSE_UPLOAD_GRACE_S`)
is cut off with 408 (slow-client protection). Admission counts the clips queued or running and the
uploads still being received, in all and per client (`deps.client_id`), so parallel uploads cannot
pass a limit together. No job is left behind half-written: the upload is received into the data
directory's `uploads/` and becomes a job only once whole (`Jobs.create`); any failure, a client
that goes away included, deletes what was received.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import FormData, UploadFile  # what a parsed form holds (FastAPI's subclasses it)
from starlette.types import Message, Receive

from hotpose.service.deps import Auth, Ready, State, app_state, client_id
from hotpose.service.jobs import disk_full
from hotpose.service.placing import CameraRequest
from hotpose.service.schemas import CLIP_UPLOAD, JOB_LINKS, ClipAccepted, responses

log = logging.getLogger(__name__)

UPLOAD_CHUNK = 1 << 20
FORM_OVERHEAD = 1 << 16  # multipart boundaries and headers allowed beyond the file's own limit
CAMERA_FIELDS = ("focal_px", "fov_deg", "person_height_m")

router = APIRouter()


class _UploadTooLargeError(Exception):
    pass


class _UploadTooSlowError(Exception):
    pass


class _Slot:
    """One upload being received, counted with the pending jobs until its job exists (`release`)."""

    def __init__(self, uploads: Counter[str | None], client: str | None) -> None:
        self.uploads, self.client, self.held = uploads, client, True
        uploads[client] += 1

    def release(self) -> None:
        if self.held:
            self.held = False
            self.uploads[self.client] -= 1
            if self.uploads[self.client] <= 0:
                del self.uploads[self.client]


@router.post(
    "/v1/clips", status_code=202, dependencies=[Auth], response_model=ClipAccepted, openapi_extra=CLIP_UPLOAD,
    responses={
        202: {"description": "queued", "links": JOB_LINKS}, **responses(400, 401, 408, 413, 422, 429, 503, 507)
    },
)  # fmt: skip
async def create_clip(request: Request, state: State) -> JSONResponse:
    s = state.settings
    client = client_id(s, request)
    limit = int(s.max_upload_mb * (1 << 20))
    too_large = HTTPException(status_code=413, detail=f"upload larger than {s.max_upload_mb:g} MB")
    length = request.headers.get("content-length")
    async with state.admission:  # counted and given a slot as one step: parallel uploads cannot pass a limit together
        counts = await asyncio.to_thread(_pending_jobs, state, client)  # a database query: off the event loop
        _admit(state, client, *counts)  # before reading the upload
        if length is not None and length.isdigit() and int(length) > limit + FORM_OVERHEAD:
            raise too_large
        slot = _Slot(state.uploads, client)
    try:
        form = await _read_form(request, limit + FORM_OVERHEAD, too_large)
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HTTPException(status_code=422, detail="send the video as the multipart field 'file'")
            camera = _camera_request(form)
            job_id, name, size = await _store_upload(state, upload, limit, too_large, client, camera, slot)
        finally:
            await form.close()
    finally:
        slot.release()
    log.info("job %s: %s (%d bytes) queued", job_id, name, size)
    return JSONResponse({"job_id": job_id, "status": "queued"}, status_code=202)


def _pending_jobs(state: Ready, client: str | None) -> tuple[int, int]:
    """Clips queued or running: in all, and this client's."""
    mine = len(state.jobs.with_status("queued", "running", owner=client)) if client is not None else 0
    return len(state.jobs.with_status("queued", "running")), mine


def _admit(state: Ready, client: str | None, pending_jobs: int, client_jobs: int) -> None:
    """429 when the clips queued, running or being uploaded reach the limit, in all or for this client."""
    s = state.settings
    pending = pending_jobs + sum(state.uploads.values())
    if pending >= s.max_pending_jobs:
        raise HTTPException(
            status_code=429,
            detail=f"too many clips waiting (limit {s.max_pending_jobs}); try again when one has finished",
            headers={"Retry-After": "30"},
        )
    if client is None:  # a loopback client of a server without API keys: no per-client limit
        return
    mine = client_jobs + state.uploads[client]
    if mine >= s.max_pending_jobs_per_key:
        who = "this API key" if client.startswith("key:") else "this client address"
        raise HTTPException(
            status_code=429,
            detail=f"too many clips waiting for {who} (HOTPOSE_MAX_PENDING_JOBS_PER_KEY={s.max_pending_jobs_per_key})"
            "; try again when one of them has finished",
            headers={"Retry-After": "30"},
        )


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
    s = app_state(request).settings
    receive = _limited(request.receive, limit, s.min_upload_kbps * 1000 / 8, s.upload_grace_s)
    try:
        return await Request(request.scope, receive).form(max_files=1, max_fields=8)
    except _UploadTooLargeError:  # no Content-Length (chunked), or one that understated the body
        raise too_large from None
    except _UploadTooSlowError:
        raise HTTPException(
            status_code=408,
            detail=f"upload slower than {s.min_upload_kbps:g} kbit/s (HOTPOSE_MIN_UPLOAD_KBPS) after its first "
            f"{s.upload_grace_s:g} s; nothing was kept: send it again over a faster connection",
            headers={"Connection": "close"},
        ) from None
    except OSError as e:
        if disk_full(e):  # the form's files are spooled to the temporary directory
            raise DISK_FULL from None
        raise HTTPException(status_code=400, detail=f"not a multipart form: {e}") from e
    except Exception as e:
        raise HTTPException(status_code=400, detail=f"not a multipart form: {e}") from e


DISK_FULL = HTTPException(status_code=507, detail="the server's disk is full: the upload was not kept; try again later")


async def _store_upload(
    state: Ready, upload: UploadFile, limit: int, too_large: HTTPException, client: str | None,
    camera: CameraRequest, slot: _Slot,
) -> tuple[str, str, int]:  # fmt: skip
    """Receive the upload into `uploads/`, then make it a job -> (job id, file name, bytes).
    Nothing is kept on failure; `slot` is released as the job takes its place among the pending ones."""
    name = Path(upload.filename or "upload").name
    staged = state.jobs.staging_file()
    try:
        size = await asyncio.to_thread(_copy_upload, upload, staged, limit)
        if size == 0:
            raise HTTPException(status_code=422, detail="the uploaded file is empty")
        job = await asyncio.to_thread(state.jobs.create, name, client, staged, camera)
    except _UploadTooLargeError:
        raise too_large from None
    except OSError as e:
        if disk_full(e):
            raise DISK_FULL from None
        raise
    finally:
        slot.release()
        staged.unlink(missing_ok=True)  # moved into the job, or not to be kept
    return job.job_id, name, size


def _limited(receive: Receive, limit: int, min_bytes_per_s: float = 0.0, grace_s: float = 0.0) -> Receive:
    """`receive` that raises _UploadTooLargeError once the request body passes `limit` bytes, and
    _UploadTooSlowError once it falls below `min_bytes_per_s` on average (0: no minimum) after `grace_s`:
    a message must come by `grace_s` plus one second per `min_bytes_per_s` bytes received so far."""
    received = 0
    start = time.monotonic()

    async def limited() -> Message:
        nonlocal received
        if min_bytes_per_s > 0:
            wait = start + grace_s + received / min_bytes_per_s - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), max(wait, 0.0))
            except TimeoutError:
                raise _UploadTooSlowError from None
        else:
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
