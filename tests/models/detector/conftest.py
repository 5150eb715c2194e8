from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from skimage import data

from hotpose.models.detector import create_detector
from hotpose.models.detector.topdown import TopDown


def _stage(person_detector: str, keypoints: str = "blazepose_full") -> TopDown:
    stage = create_detector(person_detector, keypoints, device="cpu")
    assert isinstance(stage, TopDown)
    return stage


@pytest.fixture(scope="module")
def blazepose() -> Iterator[TopDown]:
    """BlazePose's own two models (face-anchored detector + full landmarks) as one 2D stage."""
    yield _stage("blazepose_face")


@pytest.fixture
def fresh(blazepose: TopDown) -> TopDown:
    blazepose.reset()
    return blazepose


@pytest.fixture(scope="module")
def default_stage() -> Iterator[TopDown]:
    """The default 2D stage: NanoDet-g + BlazePose full landmarks + the motion tracker."""
    yield _stage("nanodet")


@pytest.fixture
def stage(default_stage: TopDown) -> TopDown:
    default_stage.reset()
    return default_stage


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return data.astronaut()
