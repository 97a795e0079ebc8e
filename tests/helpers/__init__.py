"""Test helpers shared across the suite: synthetic contract-valid data and a private
MLflow store. Fixtures built on them live in `tests/conftest.py`."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from hzexp.data.store import MAG_COLUMNS, MAGERR_COLUMNS, PSF_COLUMNS

REPO = Path(__file__).parents[2]


def synthetic_catalogue(n: int, first_id: int = 0, seed: int = 0) -> pd.DataFrame:
    """A contract-valid catalogue whose magnitudes carry the redshift (for fast fits)."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.02, 0.6, n)
    base = 17.0 + 4.0 * z + rng.normal(0, 0.3, n)
    columns = {"object_id": np.arange(first_id, first_id + n), "ra": rng.uniform(129, 141, n),
               "dec": rng.uniform(-2, 3, n), "z_spec": z}
    for k, (mag, err) in enumerate(zip(MAG_COLUMNS, MAGERR_COLUMNS)):
        columns[mag] = base - 0.3 * k * (1 + 2 * z) + rng.normal(0, 0.02, n)
        columns[err] = np.full(n, 0.02)
    columns["mag_r_auto"] = columns["mag_r"] - 0.1
    columns["masked"] = rng.random(n) < 0.15
    columns["galaxy_type"] = np.where(rng.random(n) < 0.4, "red", "blue")
    for k, psf in enumerate(PSF_COLUMNS):  # u worst, r best, as in KiDS
        columns[psf] = rng.uniform(0.6, 1.0, n) + 0.1 * (k == 0) - 0.1 * (k == 2)
    return pd.DataFrame(columns)


def synthetic_images(n: int, size: int = 48, seed: int = 0) -> np.ndarray:
    """Gaussian blobs on noise, one per row, float32 (n, size, size, 4)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    width = rng.uniform(1.5, 4.0, n)[:, None, None, None]
    blob = np.exp(-(x**2 + y**2)[None, :, :, None] / (2 * width**2))
    return (blob * rng.uniform(1, 3, (n, 1, 1, 4)) + rng.normal(0, 0.05, (n, size, size, 4))
            ).astype(np.float32)


def use_private_tracking(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Track to `root` (SQLite + ./mlruns there), via the environment and in-process: an
    earlier test's run may have left MLflow's global tracking URI pointing at its own
    store, which a bare `MlflowClient()` would use."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(root)
    mlflow.set_tracking_uri(uri)
