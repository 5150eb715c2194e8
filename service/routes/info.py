"""The web page, liveness and readiness, Prometheus metrics and `/v1/info` (what the service runs)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hotpose.models.detector.weights import NPM_SOURCES, WeightsError, npm_dir, npm_paths
from hotpose.models.keypoints import H36M_EDGES, H36M_JOINTS
from hotpose.service import __version__
from hotpose.service.deps import Auth, State, app_state
from hotpose.service.pipeline import COORDINATES
from hotpose.service.schemas import InfoResponse, Status, content, responses

STATIC = Path(__file__).resolve().parents[1] / "static"  # the web page, served as is (no build step)
THREE = "three"  # the npm source (`NPM_SOURCES`) of the page's 3D viewer, three.js, in the weights cache

log = logging.getLogger(__name__)

router = APIRouter()


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The web page: camera or clip in, 2D and 3D skeletons out (service/static)."""
    return FileResponse(STATIC / "index.html")


@router.get("/vendor/three/{name}", include_in_schema=False)
async def three_module(name: str, request: Request) -> FileResponse:
    """three.js's ES modules for the page's 3D viewer (the import map in index.html points here), from
    the weights cache where `hotpose fetch-weights` put them sha256-checked; not in the repository."""
    if name not in NPM_SOURCES[THREE].files:
        raise HTTPException(status_code=404, detail=f"no {name} here")
    path = npm_dir(THREE, app_state(request).settings.home) / name
    if not path.is_file():
        raise HTTPException(status_code=404, detail="three.js is missing on the server: run `hotpose fetch-weights`")
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


def check_three(home: Path) -> bool:
    """Whether the page's three.js is in the cache, verified; else a warning in the log (the page then
    says so in its 3D panel and works without it)."""
    try:
        npm_paths(THREE, home)
    except WeightsError as e:
        log.warning("the web page's 3D viewer is off: %s", e)
        return False
    return True


@router.get("/livez", response_model=Status)
async def livez() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/healthz", response_model=Status, responses=responses(503))
async def healthz(request: Request) -> dict[str, str]:
    if not app_state(request).ready:
        raise HTTPException(status_code=503, detail="models are loading")
    return {"status": "ready"}


PROMETHEUS_TEXT = content("Prometheus text format", "text/plain")


@router.get("/metrics", response_class=Response, responses=PROMETHEUS_TEXT)
async def prometheus() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/info", response_model=InfoResponse, dependencies=[Auth], responses=responses(401, 422, 503))
async def info(state: State) -> InfoResponse:
    engine, s = state.engine, state.settings
    lifter: dict[str, Any] = {
        "name": s.lifter,
        "weights": engine.lifter.info.weights if engine.lifter else None,  # the file's name: no server paths
        "trained": engine.lifter is not None,
        "flip": s.flip,
    }
    if engine.lifter is not None:
        lifter.update(engine.lifter.info.config)
    return InfoResponse(
        version=__version__, device=engine.device,
        detector=engine.describe_2d(),
        lifter=lifter, window=engine.window,
        live={"stride": s.live_stride, "flip": s.live_flip, "delay_frames": s.live_delay_frames,
              "queue": s.live_queue, "smoothing": s.live_smoothing, "emit": ["causal", "delayed"]},
        joint_names=list(H36M_JOINTS), skeleton_edges=[list(e) for e in H36M_EDGES], coordinates=COORDINATES,
        limits={"max_upload_mb": s.max_upload_mb, "max_clip_frames": s.max_clip_frames,
                "max_clip_seconds": s.max_clip_seconds, "max_frame_pixels": s.max_frame_pixels,
                "max_streams": s.max_streams, "max_streams_per_key": s.max_streams_per_key,
                "max_message_mb": s.max_message_mb, "max_pending_jobs": s.max_pending_jobs,
                "max_pending_jobs_per_key": s.max_pending_jobs_per_key, "min_upload_kbps": s.min_upload_kbps},
    )  # fmt: skip
