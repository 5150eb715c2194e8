"""Backends (`hotpose.service.backends`) over Ray Serve deployment handles: what the Ingress and the
ClipWorkers use instead of this process's schedulers. Frames travel as encoded bytes (a live frame as
the client sent it, a clip frame as JPEG at `backends.JPEG_QUALITY`); each stream's tracking state
stays with its caller and travels with its frame. Calls block: make them from worker threads (the
live sessions' executor, the clip workers), never from an event loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hotpose.models.detector import Person
from hotpose.models.detector.topdown import StreamState
from hotpose.service.backends import BackendError, LifterInfo, StreamDetect, encode_jpeg

CALL_TIMEOUT_S = 120.0  # one call waiting for a replica at most (Serve queues calls while it restarts one)


def _result(response: Any, what: str) -> Any:
    """A handle call's result; Ray's failures (a replica that died, a timeout) as BackendError."""
    from ray.exceptions import RayError
    from ray.serve.exceptions import RayServeException

    try:
        return response.result(timeout_s=CALL_TIMEOUT_S)
    except (RayError, RayServeException, TimeoutError) as e:
        raise BackendError(f"{what}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e


class RayDetector:
    """The 2D stage as the `Detector` deployment."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.device = "?"
        self._describe: dict[str, object] = {}

    def start(self) -> None:
        self.device = _result(self.handle.device.remote(), "the Detector deployment")
        self._describe = _result(self.handle.describe.remote(), "the Detector deployment")

    def new_stream(self) -> StreamDetect:
        """A stream's detect function; its tracking state comes from the deployment at its first frame
        (this may be called on an event loop, where a blocking call is not allowed)."""
        state: StreamState | None = None
        handle = self.handle

        def detect(frame: np.ndarray, t: float, encoded: bytes | None = None) -> list[Person]:
            nonlocal state
            if state is None:
                state = _result(handle.new_stream.remote(), "the Detector deployment")
            data = encoded if encoded is not None else encode_jpeg(frame)
            people, state = _result(handle.detect.remote((data, state, t)), "the Detector deployment")
            return list(people)

        return detect

    def describe(self) -> dict[str, object]:
        return self._describe

    def close(self) -> None:
        pass


class RayLifter:
    """The lifter as the `Lifter` deployment (one call per window: the deployment batches them)."""

    def __init__(self, handle: Any, info: LifterInfo) -> None:
        self.handle = handle
        self._info = info
        self.device = "?"

    def start(self) -> None:
        self.device = _result(self.handle.device.remote(), "the Lifter deployment")

    @property
    def info(self) -> LifterInfo:
        return self._info

    def lift(self, windows: np.ndarray, flip: bool) -> np.ndarray:
        responses = [self.handle.lift.remote((np.ascontiguousarray(w), flip)) for w in windows]
        return np.stack([_result(r, "the Lifter deployment") for r in responses])

    def close(self) -> None:
        pass
