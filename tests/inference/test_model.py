"""Looking up the prediction model: fail fast, create nothing."""

import time

import pytest

from hzexp.inference import (
    PredictionError,
    predict_catalogue,
)
from tests.helpers.inference import leftovers


def test_an_unreachable_registry_fails_fast(champion, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    started = time.perf_counter()
    with pytest.raises(PredictionError, match=r"registry at http://127.0.0.1:9 cannot be "
                                              r"reached \(ConnectionError\)"):
        predict_catalogue(champion["dataset"].path, tmp_path / "photoz.parquet",
                          progress=False)
    assert time.perf_counter() - started < 15
    assert leftovers(tmp_path) == []


def test_a_missing_sqlite_store_is_reported_not_created(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'nowhere.db'}")
    with pytest.raises(PredictionError, match="nowhere.db does not exist"):
        predict_catalogue(tmp_path / "data", tmp_path / "photoz.parquet", progress=False)
    assert leftovers(tmp_path) == []
