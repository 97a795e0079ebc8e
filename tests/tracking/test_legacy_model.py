"""Models logged before the package move keep loading and predicting the same numbers.

The fixture in `tests/fixtures/legacy_model/` was logged by hzexp at a16b7bd (single-module
`hzexp/tracking.py`) with the smoke pipeline: its `pyfunc_model.py` imports
`hzexp.tracking.HybridZPyfunc`, its Keras file names layers registered under
`package="hzexp"`, and its baseline's skops file trusts
`hzexp.evaluation.baselines.magnitude_features`.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pytest

from hzexp.data.store import MAG_COLUMNS
from tests.helpers import REPO, synthetic_catalogue, synthetic_images

LEGACY = REPO / "tests" / "fixtures" / "legacy_model"


@pytest.fixture(scope="module")
def legacy_input():
    catalogue = synthetic_catalogue(16, seed=3)
    return catalogue, synthetic_images(16, 48, seed=3)


def test_a_model_logged_before_the_move_predicts_the_same(legacy_input):
    catalogue, images = legacy_input
    expected = np.load(LEGACY / "expected.npz")
    model = mlflow.pyfunc.load_model(str(LEGACY / "hybrid_z"))
    z_phot = model.predict({"image": images,
                            "mags": catalogue[list(MAG_COLUMNS)].to_numpy(np.float32)})
    np.testing.assert_allclose(np.asarray(z_phot), expected["z_phot"], rtol=0, atol=1e-6)


def test_a_baseline_logged_before_the_move_predicts_the_same(legacy_input):
    catalogue, _ = legacy_input
    expected = np.load(LEGACY / "expected.npz")
    baseline = mlflow.sklearn.load_model(str(LEGACY / "baseline_mlp"))
    np.testing.assert_allclose(baseline.predict(catalogue[list(MAG_COLUMNS)].to_numpy()),
                               expected["baseline_z"], rtol=0, atol=1e-9)
