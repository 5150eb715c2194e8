"""The wire format, typed once: what the server sends and the SDK reads (and the SDK sends, the server reads).

pydantic v2 models for every body the service answers over HTTP and every WebSocket message, in
both directions. The server serialises with them, the SDK parses with them, and the OpenAPI
document shows them (`/openapi.json`); docs/websocket.md lists the same messages (a test checks).

- results: `Result` = `ResultHead` (fps, size, joints, skeleton, units, `Camera`) + `Frame`s, each
  `Frame` a list of `Person`s; `GET /v1/jobs/{id}/result` writes it, `GET /v1/jobs/{id}/stream`
  one `Frame` per NDJSON line (a failed job's last line: `JobStreamError`);
- jobs: `JobResponse`, `ClipAccepted`, `JobDeleted`; joint angles: `AnglesResponse`;
- errors: every HTTP error body is `ErrorResponse` (`{"detail": "..."}`);
- WebSocket `/v1/stream`: the client sends `ConfigMessage`, `FrameTimeMessage`, `EndMessage` (and
  binary images); the server answers `ReadyMessage`, `PoseMessage`, `DroppedMessage`,
  `AckMessage`, `ErrorMessage`. `parse_client_message` / `parse_server_message` read one text
  message; the `CLOSE_*` codes are the stream's close codes.

Units and axes (the server's `/v1/info` and each result's `coordinates` say the same):
`keypoints_2d` [J][3] image pixels (x right, y down, origin at the top-left corner) and a 0..1
score; `joints_3d` [J][3] metres, camera frame (x right, y down, z away from the camera),
root-relative (pelvis = 0); `root_3d` [3] metres, the pelvis in that camera frame; `time` / `t`
seconds from the first frame. J is `len(joint_names)` (Human3.6M-17 from this server).

Unknown keys are ignored on reading (a newer server may add some); missing or mistyped ones raise
`pydantic.ValidationError`, which names the field.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

__all__ = [
    "CLOSE_INTERNAL",
    "CLOSE_NORMAL",
    "CLOSE_OVERLOADED",
    "CLOSE_POLICY",
    "CLOSE_TOO_BIG",
    "CLIENT_MESSAGES",
    "SERVER_MESSAGES",
    "AckMessage",
    "AnglesResponse",
    "Camera",
    "ClientMessage",
    "ClipAccepted",
    "ConfigMessage",
    "DroppedMessage",
    "EndMessage",
    "ErrorMessage",
    "ErrorResponse",
    "Frame",
    "FrameTimeMessage",
    "JobDeleted",
    "JobResponse",
    "JobStreamError",
    "Person",
    "PersonAngles",
    "PoseMessage",
    "ReadyMessage",
    "Result",
    "ResultHead",
    "ServerMessage",
    "parse_client_message",
    "parse_server_message",
]

# WebSocket close codes of `/v1/stream`
CLOSE_NORMAL = 1000  # after the client's `end`, every held frame answered
CLOSE_POLICY = 1008  # a bad config, a wrong API key, an idle stream
CLOSE_TOO_BIG = 1009  # a message over the server's size limit (closed by uvicorn, not by hotpose's code)
CLOSE_INTERNAL = 1011  # a failure inside the models
CLOSE_OVERLOADED = 1013  # "try again later": too many streams, models loading

# Lists with a fixed length (not tuples: JSON Schema 3.1 writes those as `prefixItems`, and the server
# builds lists, which serialise without conversion)
Point = Annotated[list[float], Field(min_length=3, max_length=3)]  # x, y, z or x, y, score
Box = Annotated[list[float], Field(min_length=4, max_length=4, description="x0, y0, x1, y1 pixels")]
Edge = Annotated[list[int], Field(min_length=2, max_length=2)]  # [parent, child] joint indexes
Emit = Literal["causal", "delayed"]


class _Wire(BaseModel):
    # NaN and infinities written as json.dumps writes them (NaN, Infinity), not as null
    model_config = ConfigDict(extra="ignore", ser_json_inf_nan="constants")


# --- results -------------------------------------------------------------------------------


class Camera(_Wire):
    """The pinhole camera people were placed with (`root_3d`), in the video's pixels."""

    focal_px: float = Field(description="focal length, pixels")
    cx: float = Field(description="principal point x, pixels")
    cy: float = Field(description="principal point y, pixels")
    width: int = Field(description="image width, pixels")
    height: int = Field(description="image height, pixels")
    assumed: bool = Field(
        description="true when the client gave neither focal_px nor fov_deg: a 70-degree horizontal field of view"
    )


class Person(_Wire):
    """One person in one frame."""

    track_id: int = Field(description="the same person keeps the same id across frames")
    bbox: Box
    score: float = Field(description="the detector's confidence, 0..1")
    keypoints_2d: list[Point] = Field(description="[J][x, y, score]: pixels, and a 0..1 score per joint")
    joints_3d: list[Point] | None = Field(
        description="[J][x, y, z] metres, camera frame, root-relative (pelvis = 0); null when not lifted (yet)"
    )
    root_3d: Point | None = Field(
        default=None,
        description="[x, y, z] metres, camera frame: the pelvis; null where not solved (absent in older results)",
    )


class Frame(_Wire):
    """One video frame's people: a result's frame, one NDJSON line of `/v1/jobs/{id}/stream`."""

    index: int = Field(ge=0, description="the frame's number in the video, from 0")
    time: float = Field(description="seconds from the first frame")
    people: list[Person]


class ResultHead(_Wire):
    """Everything a result holds besides its frames; written first, so frames can stream after it."""

    fps: float = Field(description="the video's frame rate, as its container states it")
    width: int = Field(description="pixels")
    height: int = Field(description="pixels")
    joint_names: list[str] = Field(description="the joints of keypoints_2d and joints_3d, in order")
    skeleton_edges: list[Edge] = Field(default_factory=list, description="[parent, child] joint indexes")
    coordinates: dict[str, str] = Field(default_factory=dict, description="units and axes of each field")
    camera: Camera | None = Field(default=None, description="absent in results written before root_3d")

    def head_dict(self) -> dict[str, Any]:
        """The head as JSON values, `camera` left out when there is none."""
        return self.model_dump(mode="json", exclude_none=True)


class Result(ResultHead):
    """A finished clip: `GET /v1/jobs/{id}/result` (JSON)."""

    frames: list[Frame]


class JobStreamError(_Wire):
    """The last NDJSON line of `GET /v1/jobs/{id}/stream` when the job failed."""

    error: str = Field(description="why the job failed")


# --- jobs and errors ------------------------------------------------------------------------


class ErrorResponse(_Wire):
    """The body of every HTTP error the service answers, request-validation errors included."""

    detail: str = Field(description="what is wrong, in words")


class JobResponse(_Wire):
    """`GET /v1/jobs/{id}`: a clip job's state."""

    job_id: str
    status: Literal["queued", "running", "done", "failed"]
    progress: float = Field(description="0..1")
    frames_done: int
    frames_total: int = Field(description="the container's frame count (0 until known)")
    error: str | None = Field(description="why the job failed; null otherwise")
    filename: str = Field(description="the uploaded file's name")
    created: float = Field(description="Unix time of the upload")


class ClipAccepted(_Wire):
    """`POST /v1/clips`: the job the upload became."""

    job_id: str
    status: Literal["queued"]


class JobDeleted(_Wire):
    """`DELETE /v1/jobs/{id}`."""

    job_id: str
    status: Literal["deleted"]


class PersonAngles(_Wire):
    track_id: int
    angles: dict[str, list[float | None]] = Field(
        description="angle name -> degrees, one per frame of the clip (`frames`); null where the person is"
        " absent or was not lifted"
    )


class AnglesResponse(_Wire):
    """A finished clip's joint angles (`hotpose_client.angles`), per person over every frame."""

    unit: Literal["degrees"]
    names: list[str] = Field(description="the angles, in order: l_knee, r_knee, l_hip, ...")
    definitions: dict[str, str] = Field(description="knee, hip, elbow, shoulder: what each angle measures")
    frames: list[int] = Field(description="the index of each frame")
    times: list[float] = Field(description="seconds of each frame")
    people: list[PersonAngles] = Field(description="everyone lifted in at least one frame, by track id")


# --- WebSocket /v1/stream: client to server ------------------------------------------------------


class ConfigMessage(_Wire):
    """Optional, first: the stream's settings; every field optional (the server's settings are the
    defaults). Bounds that depend on the server's lifter (delay_frames < window, stride <= window) are
    the server's to check."""

    type: Literal["config"] = "config"
    emit: Emit | None = Field(default=None, description="causal (lowest latency) or delayed (smoother)")
    delay_frames: int | None = Field(default=None, ge=1, description="the delay of delayed emission, 30 fps frames")
    stride: int | None = Field(default=None, ge=1, description="the lifter runs every this many grid frames")
    smoothing: bool | None = Field(default=None, description="one-euro filter on the 2D sent")
    fps: float | None = Field(default=None, gt=0, le=240, description="frame rate to time frames by without t")
    ack: bool = Field(default=False, description="send an ack for each processed frame")
    focal_px: float | None = Field(default=None, gt=0, description="the camera's focal length, pixels")
    fov_deg: float | None = Field(default=None, ge=1, le=179, description="horizontal field of view, degrees")
    person_height_m: float | None = Field(default=None, ge=0.3, le=2.5, description="everyone's height, metres")


class FrameTimeMessage(_Wire):
    """Optional, before a binary frame: that frame's capture time."""

    type: Literal["frame"] = "frame"
    t: float = Field(description="seconds, a finite number")

    @field_validator("t")
    @classmethod
    def _finite(cls, t: float) -> float:
        if not math.isfinite(t):
            raise ValueError("t must be a finite number of seconds")
        return t


class EndMessage(_Wire):
    """Last: answer every held frame, then close with 1000."""

    type: Literal["end"] = "end"


# --- WebSocket /v1/stream: server to client ------------------------------------------------------


class ReadyMessage(_Wire):
    """Once, first, in answer to the client's first message: the stream's settings."""

    type: Literal["ready"] = "ready"
    stream_id: str
    emit: Emit
    stride: int
    delay_frames: int = Field(description="0 for causal")
    window: int = Field(description="the lifter's frames (0 without a lifter)")
    smoothing: bool
    queue: int = Field(description="how many unprocessed frames the server keeps")
    lifter: bool = Field(description="false on a server without lifter weights (2D only)")
    flip: bool = Field(description="flip augmentation in the live lifter")
    root_lag_frames: int = Field(description="frames the roots wait for their centred smoothing (0 when causal)")


class PoseMessage(_Wire):
    """One per processed frame, in index order: a `Frame` with `t` for `time`, and the stream's figures."""

    type: Literal["pose"] = "pose"
    index: int = Field(ge=0)
    t: float = Field(description="seconds: the time used for the frame")
    people: list[Person]
    # the server always sends these three; servers before them did not (read as None)
    latency_ms: float | None = Field(default=None, description="frame received to pose sent")
    dropped: int | None = Field(default=None, description="frames of this stream dropped so far")
    camera: Camera | None = Field(default=None, description="the camera people are placed with")


class DroppedMessage(_Wire):
    """Frames the server dropped unprocessed (a full queue: backpressure)."""

    type: Literal["dropped"] = "dropped"
    indexes: list[int]
    dropped: int = Field(description="frames of this stream dropped so far")


class AckMessage(_Wire):
    """With `ack: true`: frame `index` has been processed (its pose may still wait for context)."""

    type: Literal["ack"] = "ack"
    index: int


class ErrorMessage(_Wire):
    """A frame the server could not use (`index`), or, with `index: null`, something about the stream."""

    type: Literal["error"] = "error"
    index: int | None
    message: str


ClientMessage = Annotated[ConfigMessage | FrameTimeMessage | EndMessage, Field(discriminator="type")]
ServerMessage = Annotated[
    ReadyMessage | PoseMessage | DroppedMessage | AckMessage | ErrorMessage, Field(discriminator="type")
]
CLIENT_MESSAGES: tuple[type[BaseModel], ...] = (ConfigMessage, FrameTimeMessage, EndMessage)
SERVER_MESSAGES: tuple[type[BaseModel], ...] = (ReadyMessage, PoseMessage, DroppedMessage, AckMessage, ErrorMessage)

_CLIENT = TypeAdapter[ClientMessage](ClientMessage, config=ConfigDict(title="client message"))
_SERVER = TypeAdapter[ServerMessage](ServerMessage, config=ConfigDict(title="server message"))


def parse_client_message(text: str | bytes | dict[str, Any]) -> ConfigMessage | FrameTimeMessage | EndMessage:
    """One message from a client (its JSON text, or the text parsed); `pydantic.ValidationError` names
    what is wrong."""
    return _CLIENT.validate_python(text) if isinstance(text, dict) else _CLIENT.validate_json(text)


def parse_server_message(
    text: str | bytes | dict[str, Any],
) -> ReadyMessage | PoseMessage | DroppedMessage | AckMessage | ErrorMessage:
    """One message from the server (its JSON text, or the text parsed); `pydantic.ValidationError` names
    what is wrong."""
    return _SERVER.validate_python(text) if isinstance(text, dict) else _SERVER.validate_json(text)
