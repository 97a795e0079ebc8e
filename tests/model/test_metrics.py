"""The streaming R2 metric."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from hzexp.model import R2


def test_r2_on_a_known_batch():
    y = np.array([0.1, 0.2, 0.3, 0.6])            # mean 0.3; SS_tot = .04 + .01 + 0 + .09 = .14
    pred = np.array([0.1, 0.3, 0.3, 0.5])         # SS_res = 0 + .01 + 0 + .01 = .02
    metric = R2()
    metric.update_state(y[:, None], pred[:, None])
    assert float(metric.result()) == pytest.approx(1 - 0.02 / 0.14, rel=1e-6)


def test_r2_accumulates_over_batches_not_averages():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(3)
    y, pred = rng.random(100), rng.random(100)
    metric = R2()
    for batch in np.array_split(np.arange(100), [7, 50]):
        metric.update_state(y[batch, None], pred[batch, None])
    assert float(metric.result()) == pytest.approx(r2_score(y, pred), rel=1e-5)
    metric.reset_state()
    metric.update_state(y[:, None], y[:, None])
    assert float(metric.result()) == pytest.approx(1.0)


def test_r2_weights_and_constant_target_follow_sklearn():
    from sklearn.metrics import r2_score

    y, pred, w = np.array([0.1, 0.4, 0.7]), np.array([0.2, 0.4, 0.5]), np.array([1.0, 2.0, 0.5])
    metric = R2()
    metric.update_state(y, pred, sample_weight=w)
    assert float(metric.result()) == pytest.approx(r2_score(y, pred, sample_weight=w), rel=1e-6)
    constant = R2()
    constant.update_state(np.zeros(3), np.array([0.0, 0.1, 0.0]))
    assert float(constant.result()) == 0.0


def test_r2_is_registered_for_deserialisation():
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(R2()))
    assert isinstance(restored, R2) and restored.name == "r2"


def test_r2_stays_accurate_in_float32_over_a_large_epoch():
    """A survey-sized epoch of redshift-like values: the naive float32 sum formula loses
    the total sum of squares to cancellation; the merged update does not."""
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(4)
    y = 0.23 + 0.01 * rng.standard_normal(200_000)
    pred = y + 0.003 * rng.standard_normal(y.size)
    metric = R2()
    for batch in np.array_split(np.arange(y.size), 400):
        metric.update_state(y[batch], pred[batch])
    assert float(metric.result()) == pytest.approx(r2_score(y, pred), abs=1e-4)
