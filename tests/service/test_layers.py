"""The service's layers: the pipeline modules import no web framework, and the models' own
defaults (for library users, who have no `Settings`) agree with the service's settings."""

from __future__ import annotations

import inspect

from hotpose.models import create_lifter
from hotpose.models.detector import create_detector
from hotpose.models.detector.topdown import TopDownConfig
from hotpose.models.detector.tracking import TrackerConfig
from hotpose.models.detector.weights import default_home
from hotpose.service.settings import Settings
from tests.conftest import modules_imported_by

# what runs the models, with no web import (docs/architecture.md)
PIPELINE = ("engine", "pipeline", "lifting", "scheduler", "video", "smoothing", "render", "stream_protocol", "jobs")
WEB = ("fastapi", "starlette", "uvicorn", "httpx", "websockets")


def test_the_pipeline_modules_import_no_web_framework() -> None:
    modules = [f"hotpose.service.{m}" for m in PIPELINE]
    loaded = modules_imported_by(modules)
    offending = [m for m in loaded if any(m == w or m.startswith(w + ".") for w in WEB)]
    assert offending == [], f"the pipeline modules pulled in {offending}"


def test_the_models_defaults_agree_with_the_settings(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for var in ("HOTPOSE_HOME", "HOTPOSE_LIFTER", "HOTPOSE_PERSON_DETECTOR", "HOTPOSE_KEYPOINTS"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    detector = inspect.signature(create_detector).parameters
    assert (detector["person_detector"].default, detector["keypoints"].default, detector["tracker"].default) == (
        s.person_detector, s.keypoints, s.tracker)  # fmt: skip
    schedule = TopDownConfig()
    assert (schedule.redetect_every, schedule.lost_redetect_every, schedule.idle_redetect_every) == (
        s.redetect_every, s.lost_redetect_every, s.idle_redetect_every)  # fmt: skip
    assert TrackerConfig().max_gap_s == s.track_max_gap_s
    assert inspect.signature(create_lifter).parameters["name"].default == s.lifter
    assert default_home() == s.home
