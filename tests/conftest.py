"""Shared fixtures: tiny contract-valid datasets built in temporary directories."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from hzexp.data.store import DatasetWriter
from tests.helpers import REPO, synthetic_catalogue, synthetic_images, use_private_tracking


@pytest.fixture
def write_dataset(tmp_path):
    """Factory: write a synthetic dataset directory of `n` rows in chunks and return it."""

    def write(n: int = 120, chunk: int = 50, name: str = "ds", size: int = 48, seed: int = 0):
        out = tmp_path / name
        with DatasetWriter(out, stored_size=size, provenance={"synthetic": True}) as writer:
            for start in range(0, n, chunk):
                m = min(chunk, n - start)
                writer.append(synthetic_catalogue(m, start, seed + start),
                              synthetic_images(m, size, seed + start))
        return out

    return write




@pytest.fixture(scope="session")
def smoke_pipeline(tmp_path_factory):
    """pipelines/smoke.yaml pointed at a session-wide smoke mock (simulated once)."""
    import yaml

    from hzexp.config import load_pipeline
    from hzexp.data.sources import resolve_dataset

    root = tmp_path_factory.mktemp("smoke")
    data = yaml.safe_load((REPO / "pipelines" / "smoke.yaml").read_text())
    data["data"]["path"] = str(root / "mock-smoke")
    path = root / "smoke.yaml"
    path.write_text(yaml.safe_dump(data))
    resolve_dataset(load_pipeline(path).data, progress=False)
    return path


@pytest.fixture
def tracking_env(tmp_path, monkeypatch):
    """A private MLflow store (SQLite + ./mlruns) and Optuna storage in a temp directory."""
    use_private_tracking(monkeypatch, tmp_path)
    return tmp_path
