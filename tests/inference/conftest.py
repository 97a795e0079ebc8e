"""The inference tests share one registry whose champion is a 1-epoch smoke training."""

import pytest

from tests.helpers.inference import registered_champion


@pytest.fixture(scope="package")
def champion(smoke_pipeline, tmp_path_factory):
    yield from registered_champion(smoke_pipeline, tmp_path_factory)
