"""The HTTP contract's types: response bodies, the one error body, and each route's documented statuses.

Every error the service answers over HTTP has the body `{"detail": "<what is wrong>"}` (`ErrorResponse`),
its request-validation errors included (`app.py` turns FastAPI's list into that one string), so a
client reads one shape; `responses(...)` declares, per route, each status it can return.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field


class ErrorResponse(BaseModel):
    detail: str = Field(description="what is wrong, in words")


class JobResponse(BaseModel):
    job_id: str
    status: Literal["queued", "running", "done", "failed"]
    progress: float
    frames_done: int
    frames_total: int
    error: str | None
    filename: str
    created: float


class ClipAccepted(BaseModel):
    job_id: str
    status: Literal["queued"]


class JobDeleted(BaseModel):
    job_id: str
    status: Literal["deleted"]


class Status(BaseModel):
    status: Literal["alive", "ready"]


Edge = Annotated[list[int], Field(min_length=2, max_length=2)]  # [parent, child] joint indexes


class InfoResponse(BaseModel):
    version: str
    device: str
    detector: dict[str, Any]
    lifter: dict[str, Any]
    window: int
    live: dict[str, Any]
    joint_names: list[str]
    skeleton_edges: list[Edge]
    coordinates: dict[str, str]
    limits: dict[str, Any]


class PersonAngles(BaseModel):
    track_id: int
    angles: dict[str, list[float | None]] = Field(
        description="angle name -> degrees, one per frame of the clip (`frames`); null where the person is"
        " absent or was not lifted"
    )


class AnglesResponse(BaseModel):
    """A finished clip's joint angles (`hotpose_client.angles`), per person over every frame."""

    unit: Literal["degrees"]
    names: list[str] = Field(description="the angles, in order: l_knee, r_knee, l_hip, ...")
    definitions: dict[str, str] = Field(description="knee, hip, elbow, shoulder: what each angle measures")
    frames: list[int] = Field(description="the index of each frame")
    times: list[float] = Field(description="seconds of each frame")
    people: list[PersonAngles] = Field(description="everyone lifted in at least one frame, by track id")


WHY = {
    400: "the body is not a multipart form",
    401: "missing or wrong API key (when HOTPOSE_API_KEYS is set)",
    404: "no such job",
    409: "the job has no result: it is queued, running, or failed (the detail says why)",
    413: "the upload is larger than HOTPOSE_MAX_UPLOAD_MB",
    422: "the request is invalid (the detail says how)",
    429: "too many clips waiting; try again later (Retry-After)",
    503: "the models are loading",
}


def content(description: str, *media_types: str) -> dict[int | str, dict[str, Any]]:
    """A 200 whose body is not JSON (or not only): its media types, as text or bytes."""
    return {200: {"description": description, "content": {t: {"schema": {}} for t in media_types}}}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that can answer these error statuses, each with `ErrorResponse`."""
    return {code: {"model": ErrorResponse, "description": WHY[code]} for code in codes}


# The multipart body of POST /v1/clips: the route reads the form itself (to bound the upload), so
# FastAPI cannot infer it; declared here for the OpenAPI document.
CLIP_UPLOAD: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "not": {"required": ["focal_px", "fov_deg"]},  # one of the two, or neither
                    "additionalProperties": False,
                    "properties": {
                        "file": {
                            "type": "string",
                            "contentMediaType": "application/octet-stream",
                            "minLength": 1,
                            "description": "the video",
                        },
                        "focal_px": {"type": "number", "exclusiveMinimum": 0, "description": "focal length, pixels"},
                        "fov_deg": {
                            "type": "number",
                            "minimum": 1,
                            "maximum": 179,
                            "description": "horizontal field of view, degrees (instead of focal_px)",
                        },
                        "person_height_m": {
                            "type": "number",
                            "minimum": 0.3,
                            "maximum": 2.5,
                            "description": "everyone's height, metres",
                        },
                    },
                }  # fmt: skip
            }
        },
    }
}


# What a client can do with the job a clip upload created (OpenAPI links: clients and fuzzers follow them).
_JOB_ID = {"job_id": "$response.body#/job_id"}
JOB_LINKS: dict[str, Any] = {
    name: {"operationId": op, "parameters": _JOB_ID}
    for name, op in (
        ("GetJob", "get_job_v1_jobs__job_id__get"),
        ("JobResult", "job_result_v1_jobs__job_id__result_get"),
        ("JobStream", "job_stream_v1_jobs__job_id__stream_get"),
        ("DeleteJob", "delete_job_v1_jobs__job_id__delete"),
    )
}
