"""Magnitude-only baselines on a toy survey where z is a smooth function of the colours."""

import pickle
import warnings

import numpy as np
import pytest

from hzexp.evaluation.baselines import fit_knn_baseline, fit_mlp_baseline, magnitude_features
from hzexp.evaluation.metrics import point_metrics


def _toy_survey(n, seed):
    """r in 15-20 and 8 adjacent colours that are smooth in z, with 0.02 mag noise."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.02, 0.6, n)
    slopes = np.array([2.0, 1.5, 0.8, 0.5, 0.3, 0.2, 0.15, 0.1])
    colours = slopes * (3 * z[:, None] + 0.2 * np.sin(5 * z[:, None]))
    colours += rng.normal(0.0, 0.02, colours.shape)
    mags = np.empty((n, 9))
    mags[:, 2] = rng.uniform(15.0, 20.0, n)  # r
    mags[:, 1] = mags[:, 2] + colours[:, 1]  # g = r + (g - r)
    mags[:, 0] = mags[:, 1] + colours[:, 0]  # u = g + (u - g)
    for band in range(3, 9):
        mags[:, band] = mags[:, band - 1] - colours[:, band - 1]
    return mags, z


@pytest.fixture(scope="module")
def survey():
    train, val, test = _toy_survey(3000, 0), _toy_survey(800, 1), _toy_survey(800, 2)
    # ~10% of galaxies undetected in u (or Ks) in every split
    for mags, _ in (train, val, test):
        mags[::10, 0] = np.nan
        mags[5::23, 8] = np.nan
    return train, val, test


@pytest.fixture(scope="module")
def mlp(survey):
    (train_mags, z_train), (val_mags, z_val), _ = survey
    return fit_mlp_baseline(train_mags, z_train, val_mags, z_val, seed=0)


@pytest.fixture(scope="module")
def knn(survey):
    (train_mags, z_train), (val_mags, z_val), _ = survey
    return fit_knn_baseline(train_mags, z_train, val_mags, z_val)


def test_magnitude_features_are_magnitudes_then_adjacent_colours():
    mags = np.arange(18.0).reshape(2, 9)
    mags[1] = [22.0, 21.0, 20.5, 20.0, 19.8, 19.7, 19.6, 19.5, 19.45]
    features = magnitude_features(mags)
    assert features.shape == (2, 17)
    np.testing.assert_array_equal(features[:, :9], mags)
    np.testing.assert_allclose(features[0, 9:], -1.0)
    np.testing.assert_allclose(features[1, 9:], [1.0, 0.5, 0.5, 0.2, 0.1, 0.1, 0.1, 0.05])
    with pytest.raises(ValueError, match=r"shape \(N, 9\)"):
        magnitude_features(np.zeros((3, 8)))


@pytest.mark.parametrize("model_name", ["mlp", "knn"])
def test_baseline_beats_a_constant_predictor(survey, model_name, request):
    model = request.getfixturevalue(model_name)
    (_, z_train), _, (test_mags, z_test) = survey
    z_phot = model.predict(test_mags)
    assert z_phot.shape == z_test.shape
    assert np.all(np.isfinite(z_phot))  # NaN magnitudes are imputed, not propagated
    metrics = point_metrics(z_test, z_phot)
    constant = point_metrics(z_test, np.full_like(z_test, np.median(z_train)))
    assert metrics["smad_dz"] < 0.02
    assert metrics["smad_dz"] < 0.1 * constant["smad_dz"]
    assert metrics["mse"] < 0.01 * constant["mse"]
    assert abs(metrics["dz_mean"]) < 0.005


@pytest.mark.parametrize("model_name", ["mlp", "knn"])
def test_nan_magnitudes_become_the_training_median_of_their_band(survey, model_name, request):
    model = request.getfixturevalue(model_name)
    (train_mags, _), _, (test_mags, _) = survey
    np.testing.assert_allclose(model["impute"].statistics_, np.nanmedian(train_mags, axis=0))
    one = test_mags[:1].copy()
    one[0, 0] = np.nan
    imputed = one.copy()
    imputed[0, 0] = np.nanmedian(train_mags[:, 0])
    assert model.predict(one)[0] == pytest.approx(model.predict(imputed)[0])


def test_knn_picks_k_from_the_candidates(knn):
    assert knn["knn"].n_neighbors in (5, 10, 20, 40)
    assert knn["knn"].weights == "distance"


def test_mlp_is_deterministic_for_a_seed(survey, mlp):
    (train_mags, z_train), (val_mags, z_val), (test_mags, _) = survey
    again = fit_mlp_baseline(train_mags, z_train, val_mags, z_val, seed=0)
    np.testing.assert_array_equal(again.predict(test_mags), mlp.predict(test_mags))


def test_invalid_inputs_are_rejected(survey):
    (train_mags, z_train), (val_mags, z_val), _ = survey
    with pytest.raises(ValueError, match="train magnitudes must have shape"):
        fit_knn_baseline(train_mags[:, :8], z_train, val_mags, z_val)
    with pytest.raises(ValueError, match="length mismatch"):
        fit_mlp_baseline(train_mags, z_train[:-1], val_mags, z_val)
    with pytest.raises(ValueError, match="validation z has 1 non-finite"):
        fit_knn_baseline(train_mags, z_train, val_mags, np.r_[np.nan, z_val[1:]])
    with pytest.raises(ValueError, match="no k in"):
        fit_knn_baseline(train_mags[:3], z_train[:3], val_mags, z_val, k_values=(5,))


def test_fitted_baseline_survives_pickling(survey, knn):
    """The tracking layer logs baselines as sklearn models, i.e. by pickling them."""
    _, _, (test_mags, _) = survey
    restored = pickle.loads(pickle.dumps(knn))
    np.testing.assert_array_equal(restored.predict(test_mags), knn.predict(test_mags))


def test_baselines_fit_a_smoke_test_sized_split_without_warnings():
    (train_mags, z_train), (val_mags, z_val) = _toy_survey(60, 3), _toy_survey(15, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mlp = fit_mlp_baseline(train_mags, z_train, val_mags, z_val, seed=1, max_epochs=5)
        knn = fit_knn_baseline(train_mags, z_train, val_mags, z_val)
    assert knn["knn"].n_neighbors <= 40
    assert np.all(np.isfinite(mlp.predict(val_mags)))
