from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from skimage import data

from models.detector.blazepose import BlazePose, BlazePoseConfig


@pytest.fixture(scope="module")
def blazepose() -> Iterator[BlazePose]:
    det = BlazePose(BlazePoseConfig(), device="cpu")
    yield det


@pytest.fixture
def fresh(blazepose: BlazePose) -> BlazePose:
    blazepose.reset()
    return blazepose


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return data.astronaut()
