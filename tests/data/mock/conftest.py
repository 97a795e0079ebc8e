"""Fixtures of the mock tests: one survey model, catalogue-level draws and a small mock."""

from __future__ import annotations

import numpy as np
import pytest

from hzexp.data.mock.survey import GENERATION_BLOCK, MockSurvey, simulate
from hzexp.data.store import Dataset


@pytest.fixture(scope="module")
def survey() -> MockSurvey:
    return MockSurvey()


@pytest.fixture(scope="module")
def galaxies(survey):
    """Catalogue-level draws (no images): enough for n(z) and colour statistics."""
    return survey.draw_galaxies(np.random.default_rng(3), 6000)


@pytest.fixture(scope="module")
def small_mock(tmp_path_factory) -> Dataset:
    path = tmp_path_factory.mktemp("mock") / "m"
    simulate(path, 2 * GENERATION_BLOCK, seed=7, progress=False)
    return Dataset.open(path)
