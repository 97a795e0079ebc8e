"""In-model augmentation: per-galaxy shifted and flipped views of the stored stamp while
training, the centre crop otherwise, and the model `fit` trains around the core."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from hzexp.config import PreprocessConfig, TrainingConfig
from hzexp.model import compile_hybrid_z, export_model, fit_magnitude_standardiser
from hzexp.model.augmentation import RandomView, max_shift_pixels, trainer
from hzexp.model.preprocessing import centre_crop, standardise_magnitudes

STORED, CUTOUT, SHIFT = 16, 10, 2


def numbered_stamps(n: int) -> np.ndarray:
    """Stamps whose every pixel value is unique, so a view tells where it was cut from."""
    return np.arange(n * STORED * STORED * 4, dtype=np.float32).reshape(n, STORED, STORED, 4)


def cut_from(stamp: np.ndarray, view: np.ndarray) -> tuple[int, int, bool, bool] | None:
    """(dy, dx, up-down flip, left-right flip) of `view` in `stamp`, None if it is none."""
    base = (STORED - CUTOUT) // 2
    for dy, dx in itertools.product(range(-SHIFT, SHIFT + 1), repeat=2):
        window = stamp[base + dy:base + dy + CUTOUT, base + dx:base + dx + CUTOUT]
        for ud, lr in itertools.product((False, True), repeat=2):
            if np.array_equal(window[::-1 if ud else 1, ::-1 if lr else 1], view):
                return dy, dx, ud, lr
    return None


def test_training_views_are_shifted_and_flipped_crops_drawn_per_galaxy():
    stamps = numbered_stamps(200)
    views = np.asarray(RandomView(CUTOUT, SHIFT, flips=True, seed=1)(stamps, training=True))
    assert views.shape == (200, CUTOUT, CUTOUT, 4)
    draws = [cut_from(stamp, view) for stamp, view in zip(stamps, views)]
    assert None not in draws  # real pixels of the galaxy's own stamp, never padding
    assert {(dy, dx) for dy, dx, _, _ in draws} == set(
        itertools.product(range(-SHIFT, SHIFT + 1), repeat=2))
    assert {(ud, lr) for _, _, ud, lr in draws} == set(itertools.product((False, True),
                                                                         repeat=2))


def test_each_step_draws_afresh_and_the_seed_repeats_the_draws():
    stamps = numbered_stamps(8)
    layer, twin = (RandomView(CUTOUT, SHIFT, flips=True, seed=7) for _ in range(2))
    first, second = (np.asarray(layer(stamps, training=True)) for _ in range(2))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(np.asarray(twin(stamps, training=True)), first)
    np.testing.assert_array_equal(np.asarray(twin(stamps, training=True)), second)
    other = np.asarray(RandomView(CUTOUT, SHIFT, flips=True, seed=8)(stamps, training=True))
    assert not np.array_equal(other, first)


def test_without_shifts_or_flips_and_outside_training_the_view_is_the_centre_crop():
    stamps = numbered_stamps(4)
    centred = np.asarray(centre_crop(stamps, CUTOUT))
    np.testing.assert_array_equal(np.asarray(RandomView(CUTOUT, SHIFT, True, seed=1)(stamps)),
                                  centred)
    still = RandomView(CUTOUT, 0, flips=False, seed=1)(stamps, training=True)
    np.testing.assert_array_equal(np.asarray(still), centred)


def test_a_shift_beyond_the_stored_margin_is_refused():
    with pytest.raises(ValueError, match="16 px stamps leave no room for 4 px shifts"):
        RandomView(CUTOUT, 4, seed=0)(numbered_stamps(1), training=True)


def test_the_largest_shift_is_the_configured_fraction_within_the_stored_margin():
    assert max_shift_pixels(PreprocessConfig(cutout=36), 48) == 2  # 5% of 36 px, rounded
    assert max_shift_pixels(PreprocessConfig(cutout=36, shift_fraction=0.3), 48) == 6
    assert max_shift_pixels(PreprocessConfig(cutout=48), 48) == 0


def test_training_the_trainer_trains_the_core_the_deployable_model_wraps(tiny_model):
    """The trainer shares the core's weights; outside training it predicts what the
    deployable model predicts from the same raw rows."""
    rng = np.random.default_rng(3)
    core = tiny_model(depth=3, cutout=CUTOUT)
    model = trainer(core, PreprocessConfig(cutout=CUTOUT, shift_fraction=0.2), STORED, seed=2)
    assert model.get_layer("random_view").max_shift == SHIFT
    compile_hybrid_z(model, TrainingConfig(learning_rate=1e-2))
    images = rng.lognormal(size=(32, STORED, STORED, 4)).astype(np.float32)
    mags = rng.normal(21.0, 1.0, size=(32, 9)).astype(np.float32)
    stats = fit_magnitude_standardiser(mags)
    standardised = np.asarray(standardise_magnitudes(mags, *stats))
    before = [w.copy() for w in core.get_weights()]
    model.fit({"image": images, "mags": standardised}, rng.uniform(0.05, 0.6, 32),
              batch_size=16, epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, core.get_weights()))
    deployable = export_model(core, CUTOUT, STORED, *stats)
    np.testing.assert_allclose(
        model.predict({"image": images, "mags": standardised}, verbose=0),
        deployable.predict({"image": images, "mags": mags}, verbose=0), rtol=1e-5, atol=1e-6)


def test_the_layer_survives_save_and_load(tmp_path):
    stamps = numbered_stamps(3)
    inputs = keras.Input((STORED, STORED, 4))
    model = keras.Model(inputs, RandomView(CUTOUT, SHIFT, True, seed=4)(inputs))
    model.save(tmp_path / "view.keras")
    loaded = keras.models.load_model(tmp_path / "view.keras")
    assert loaded.layers[-1].get_config()["max_shift"] == SHIFT
    np.testing.assert_array_equal(np.asarray(loaded(stamps)), np.asarray(model(stamps)))
