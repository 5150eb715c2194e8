"""The HTTP and WebSocket routes, one router per resource; `hotpose.service.app` includes them all."""

from hotpose.service.routes import clips, info, jobs, stream

ROUTERS = (info.router, clips.router, jobs.router, stream.router)

__all__ = ["ROUTERS"]
