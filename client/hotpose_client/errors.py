"""The SDK's exceptions, one tree::

    HotposeError                 anything the SDK raises on purpose
    ├── ConnectionError          the server could not be reached (also a builtin ConnectionError)
    ├── AuthError                missing or wrong API key (HTTP 401/403, WebSocket close 1008 for the key)
    ├── RequestError             the server refused the request (other 4xx: not a video, too large, no such job)
    ├── ServerError              the server failed or is not ready (5xx)
    │   └── ServerBusy           try again later: models still loading (503), too many clips waiting
    │                            (429, though not a 5xx), too many live streams (WebSocket close 1013)
    ├── JobFailed                a clip job ended in "failed"; `reason` is the server's
    └── ProtocolError            an answer the SDK does not understand (wrong server or version)

Every error carries `status_code` (HTTP status or WebSocket close code, when there is one) and
`detail` (the server's reason, when it gave one).
"""

from __future__ import annotations

import builtins

__all__ = [
    "AuthError",
    "ConnectionError",
    "HotposeError",
    "JobFailed",
    "ProtocolError",
    "RequestError",
    "ServerBusy",
    "ServerError",
]


class HotposeError(Exception):
    def __init__(self, message: str, *, status_code: int | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail


class ConnectionError(HotposeError, builtins.ConnectionError):  # noqa: A001 - the documented name
    pass


class AuthError(HotposeError):
    pass


class RequestError(HotposeError):
    pass


class ServerError(HotposeError):
    pass


class ServerBusy(ServerError):  # noqa: N818 - reads as a state, like JobFailed
    pass


class JobFailed(HotposeError):  # noqa: N818 - the documented name
    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(f"job {job_id} failed: {reason}", detail=reason)
        self.job_id = job_id
        self.reason = reason


class ProtocolError(HotposeError):
    pass
