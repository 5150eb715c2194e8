"""hotpose-client: the Python SDK for the hotpose video 3D pose service.

A light distribution (httpx, websockets, numpy, pydantic) that never imports torch. Three uses:

    from hotpose_client import PoseClient, webcam

    with PoseClient(base_url="http://localhost:8000") as client:
        seq = client.process_clip("clip.mp4")            # POST a clip, get typed poses
        seq.joints_3d()                                   # [T, 17, 3] metres, one person, root-relative
        seq.root_trajectory()                             # [T, 3] metres: the pelvis in the camera frame
        seq.joint_angles()["r_knee"]                      # [T] degrees (hotpose_client.angles)
        seq.to_bvh("clip.bvh")

        for frame in client.stream(webcam()):             # live: a laptop camera
            print(frame.index, frame.latency_ms, [p.track_id for p in frame.people])

        job_id = client.submit_clip("long.mp4")           # frames as they are produced
        for frame in client.iter_frames(job_id):
            ...

`AsyncPoseClient` has the same calls for asyncio. Errors: `hotpose_client.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hotpose_client.bvh import read_bvh, write_bvh
from hotpose_client.errors import (
    AuthError,
    ConnectionError,
    HotposeError,
    JobFailed,
    ProtocolError,
    RequestError,
    ServerBusy,
    ServerError,
)
from hotpose_client.results import Camera, Frame, Person, PoseSequence
from hotpose_client.webcam import webcam

if TYPE_CHECKING:
    from hotpose_client.client import AsyncLiveStream, AsyncPoseClient, JobStatus, LiveStream, PoseClient

__version__ = "0.1.0"

# The HTTP and WebSocket clients load on first use, so that code using only the result types and
# formats (the server itself) imports no HTTP library.
_CLIENT = ("AsyncLiveStream", "AsyncPoseClient", "JobStatus", "LiveStream", "PoseClient")


def __getattr__(name: str) -> Any:
    if name in _CLIENT:
        from hotpose_client import client

        return getattr(client, name)
    raise AttributeError(f"module 'hotpose_client' has no attribute {name!r}")


__all__ = [
    "AsyncLiveStream",
    "AsyncPoseClient",
    "AuthError",
    "Camera",
    "ConnectionError",
    "Frame",
    "HotposeError",
    "JobFailed",
    "JobStatus",
    "LiveStream",
    "Person",
    "PoseClient",
    "PoseSequence",
    "ProtocolError",
    "RequestError",
    "ServerBusy",
    "ServerError",
    "__version__",
    "read_bvh",
    "webcam",
    "write_bvh",
]
