"""The HTTP contract's route metadata: each route's documented statuses, the upload's body, links.

The bodies themselves (results, jobs, angles, the one error body) are the wire format, shared with
the SDK: `hotpose_client.schema`, re-exported here. Every error the service answers over HTTP has
the body `{"detail": "<what is wrong>"}` (`ErrorResponse`), its request-validation errors included
(`app.py` turns FastAPI's list into that one string), so a client reads one shape; `responses(...)`
declares, per route, each status it can return. `/v1/info` and the health bodies, which only the
server answers, are typed here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from hotpose_client.schema import (
    AnglesResponse,
    ClipAccepted,
    Edge,
    ErrorResponse,
    JobDeleted,
    JobResponse,
    PersonAngles,
)

__all__ = [
    "CLIP_UPLOAD",
    "JOB_LINKS",
    "WHY",
    "AnglesResponse",
    "ClipAccepted",
    "ErrorResponse",
    "InfoResponse",
    "JobDeleted",
    "JobResponse",
    "PersonAngles",
    "Status",
    "content",
    "responses",
]


class Status(BaseModel):
    status: Literal["alive", "ready"]


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


WHY = {
    400: "the body is not a multipart form",
    401: "missing or wrong API key (when HOTPOSE_API_KEYS is set)",
    404: "no such job",
    408: "the upload was slower than HOTPOSE_MIN_UPLOAD_KBPS after HOTPOSE_UPLOAD_GRACE_S; nothing was kept",
    409: "the job has no result: it is queued, running, or failed (the detail says why)",
    413: "the upload is larger than HOTPOSE_MAX_UPLOAD_MB",
    422: "the request is invalid (the detail says how)",
    429: "too many clips waiting, in all or for this API key; try again later (Retry-After)",
    503: "the models are loading",
    507: "the server's disk is full; nothing was kept",
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
