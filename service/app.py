"""The FastAPI application.

Models load in the lifespan (never at import) and a warm-up inference runs
before `/healthz` reports ready. Clip jobs and live streams arrive with the
service issue; this app serves readiness, liveness and model information.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import torch
from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel

from models import Lifter, create_lifter, default_weights
from models.keypoints import H36M_EDGES, H36M_JOINTS
from service import __version__
from service.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class AppState:
    settings: Settings
    lifter: Lifter | None = None
    device: str = "cpu"
    weights: str | None = None
    ready: bool = False


class InfoResponse(BaseModel):
    version: str
    device: str
    lifter: dict[str, Any]
    joint_names: list[str]
    skeleton_edges: list[tuple[int, int]]


def _load_and_warm(state: AppState) -> None:
    s = state.settings
    weights = s.lifter_weights or default_weights(s.lifter)
    if weights is None:
        # No 3D is served yet (clip jobs and streams arrive with the service issue); /v1/info says
        # plainly that this lifter is untrained.
        log.warning("no trained weights for lifter %r: set HOTPOSE_LIFTER_WEIGHTS to a checkpoint", s.lifter)
    lifter = create_lifter(s.lifter, weights=weights, device=s.device)
    cfg = lifter.config
    with torch.inference_mode():
        lifter(torch.zeros(1, cfg.frames, cfg.joints, 2, device=next(lifter.parameters()).device))
    state.lifter = lifter
    state.device = str(next(lifter.parameters()).device)
    state.weights = str(weights) if weights else None
    state.ready = True
    log.info("lifter %s (%s) ready on %s", s.lifter, weights, state.device)


def create_app(settings: Settings | None = None) -> FastAPI:
    state = AppState(settings=settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(_load_and_warm, state)
        yield

    app = FastAPI(title="hotpose", version=__version__, lifespan=lifespan)
    app.state.hotpose = state
    _add_routes(app)
    return app


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.hotpose
    return state


State = Annotated[AppState, Depends(get_state)]


def _add_routes(app: FastAPI) -> None:
    @app.get("/livez")
    async def livez() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/healthz")
    async def healthz(state: State) -> dict[str, str]:
        if not state.ready:
            raise HTTPException(status_code=503, detail="models are loading")
        return {"status": "ready"}

    @app.get("/v1/info", response_model=InfoResponse)
    async def info(state: State) -> InfoResponse:
        if state.lifter is None:
            raise HTTPException(status_code=503, detail="models are loading")
        return InfoResponse(
            version=__version__,
            device=state.device,
            lifter={
                "name": state.settings.lifter, "weights": state.weights, "trained": state.weights is not None,
                **state.lifter.config.to_dict(),
            },
            joint_names=list(H36M_JOINTS),
            skeleton_edges=list(H36M_EDGES),
        )
