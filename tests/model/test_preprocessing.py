"""Preprocessing functions and the layers that carry them inside the model."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hzexp.model import (
    MagnitudeStandardiser,
    centre_crop,
    fit_magnitude_standardiser,
    minmax_normalise,
    standardise_magnitudes,
)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_minmax_on_a_known_stamp():
    stamp = np.array([2.0, 4.0, 6.0, 10.0], dtype=np.float32).reshape(1, 1, 4)  # 1x1 px, 4 bands
    # min 2, max 10: (x - 2) / 8 jointly over the bands
    np.testing.assert_allclose(_np(minmax_normalise(stamp)),
                               np.array([0.0, 0.25, 0.5, 1.0]).reshape(1, 1, 4))


def test_minmax_is_per_galaxy_and_joint_over_bands_and_pixels():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, 5, 5, 4)).astype(np.float32)
    images[1] *= 100.0
    out = _np(minmax_normalise(images))
    for galaxy, result in zip(images, out):
        np.testing.assert_allclose(result, (galaxy - galaxy.min()) / np.ptp(galaxy), atol=1e-6)


def test_minmax_maps_a_constant_stamp_to_zeros():
    images = np.stack([np.full((4, 4, 4), 7.5, np.float32), np.zeros((4, 4, 4), np.float32)])
    out = _np(minmax_normalise(images))
    assert np.isfinite(out).all() and not out.any()


def test_centre_crop_takes_the_middle_for_batches_and_single_stamps():
    images = np.arange(2 * 6 * 6 * 4, dtype=np.float32).reshape(2, 6, 6, 4)
    np.testing.assert_array_equal(_np(centre_crop(images, 2)), images[:, 2:4, 2:4, :])
    np.testing.assert_array_equal(_np(centre_crop(images[0], 3)), images[0, 1:4, 1:4, :])
    with pytest.raises(ValueError, match="cutout 7 px"):
        centre_crop(images, 7)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="tf.data feeds training on the TensorFlow backend only")
def test_functions_run_inside_a_tf_data_pipeline():
    images = np.random.default_rng(1).random((4, 8, 8, 4)).astype(np.float32)
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(images).map(
        lambda x: minmax_normalise(centre_crop(x, 4))).batch(4)
    np.testing.assert_allclose(next(iter(data)).numpy(),
                               _np(minmax_normalise(centre_crop(images, 4))), atol=1e-7)


def _train_mags():
    rng = np.random.default_rng(2)
    mags = rng.normal(21.0, 1.5, size=(50, 9))
    mags[rng.random((50, 9)) < 0.2] = np.nan
    return mags


def test_standardiser_fills_nan_with_training_median_and_matches_sklearn():
    train = _train_mags()
    fill, mean, scale = fit_magnitude_standardiser(train)
    np.testing.assert_allclose(fill, np.nanmedian(train, axis=0))
    reference = make_pipeline(SimpleImputer(strategy="median"), StandardScaler()).fit(train)
    test = _train_mags()[::-1].copy()
    expected = reference.transform(test)
    # float64 in, float64 out, except on JAX, which computes in float32 unless x64 is enabled
    tolerance = ({"rtol": 1e-12} if keras.backend.backend() != "jax"
                 else {"rtol": 1e-4, "atol": 1e-5})
    np.testing.assert_allclose(_np(standardise_magnitudes(test, fill, mean, scale)), expected,
                               **tolerance)
    layer = MagnitudeStandardiser(fill, mean, scale)
    np.testing.assert_allclose(_np(layer(test.astype(np.float32))), expected, atol=1e-5)
    nan_row = np.full((1, 9), np.nan)
    np.testing.assert_allclose(_np(standardise_magnitudes(nan_row, fill, mean, scale)),
                               ((fill - mean) / scale)[None], **tolerance)


def test_standardiser_rejects_a_band_with_no_training_values():
    train = _train_mags()
    train[:, 4] = np.nan
    with pytest.raises(ValueError, match=r"column mag_Z is NaN for every training galaxy"):
        fit_magnitude_standardiser(train)


def test_standardiser_layer_config_round_trip():
    layer = MagnitudeStandardiser([20.0] * 9, [21.0] * 9, [2.0] * 9, name="s")
    clone = MagnitudeStandardiser.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert [w.name for w in clone.non_trainable_weights] == ["fill", "mean", "scale"]
    with pytest.raises(ValueError, match="scale > 0"):
        MagnitudeStandardiser([0.0] * 9, [0.0] * 9, [0.0] * 9)
