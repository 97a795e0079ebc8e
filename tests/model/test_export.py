"""The exported model: raw rows in, the core's prediction out, through save and load."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from hzexp.model import (
    centre_crop,
    export_model,
    fit_magnitude_standardiser,
    minmax_normalise,
    standardise_magnitudes,
)
from hzexp.model.export import takes_psf

STORED, CUTOUT = 48, 28


@pytest.fixture
def raw_rows():
    rng = np.random.default_rng(5)
    images = rng.lognormal(size=(6, STORED, STORED, 4)).astype(np.float32)
    images[2] = 3.0                                            # a constant stamp
    mags = rng.normal(21.0, 1.0, size=(6, 9)).astype(np.float32)
    mags[0, 5:] = np.nan                                       # undetected NIR bands
    return images, mags


@pytest.fixture
def exported(tiny_model, raw_rows):
    core = tiny_model(depth=3, cutout=CUTOUT)
    stats = fit_magnitude_standardiser(np.random.default_rng(6).normal(21.0, 1.0, size=(40, 9)))
    return core, stats, export_model(core, CUTOUT, STORED, *stats)


def test_export_equals_core_on_preprocessed_inputs(exported, raw_rows):
    core, stats, model = exported
    images, mags = raw_rows
    expected = core.predict([minmax_normalise(centre_crop(images, CUTOUT)),
                             standardise_magnitudes(mags, *stats)], verbose=0)
    got = model.predict({"image": images, "mags": mags}, verbose=0)
    assert got.shape == (6, 1) and np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert [t.name for t in model.inputs] == ["image", "mags"] and not takes_psf(model)
    assert model.output_names == ["z_phot"]


def test_export_survives_save_and_load(exported, raw_rows, tmp_path):
    _, _, model = exported
    images, mags = raw_rows
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict([images, mags], verbose=0),
                                  model.predict([images, mags], verbose=0))


def test_export_rejects_a_cutout_the_core_was_not_built_for(tiny_model):
    with pytest.raises(ValueError, match="built for 20 px"):
        export_model(tiny_model(cutout=20), 28, STORED, [0.0] * 9, [0.0] * 9, [1.0] * 9)


#: Loads a `.keras` file under this process's backend, predicts the saved inputs, and saves
#: the model again (so it can travel back).
CROSS_BACKEND_SCRIPT = """
import sys
import keras, numpy as np
import hzexp.model  # registers the custom layers
rows = np.load(sys.argv[2])
model = keras.saving.load_model(sys.argv[1])
z = np.asarray(model.predict({"image": rows["image"], "mags": rows["mags"]}, verbose=0))
np.save(sys.argv[3], z)
model.save(sys.argv[4])
print(keras.backend.backend())
"""


def test_a_saved_model_predicts_the_same_under_another_backend(exported, raw_rows, tmp_path):
    """Saved under this backend, loaded under the other (TensorFlow <-> JAX), and back."""
    import os
    import subprocess
    import sys

    pytest.importorskip("jax")
    other = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
    _, _, model = exported
    images, mags = raw_rows
    here = np.asarray(model.predict({"image": images, "mags": mags}, verbose=0))
    model.save(tmp_path / "here.keras")
    np.savez(tmp_path / "rows.npz", image=images, mags=mags)
    done = subprocess.run(
        [sys.executable, "-c", CROSS_BACKEND_SCRIPT, str(tmp_path / "here.keras"),
         str(tmp_path / "rows.npz"), str(tmp_path / "there.npy"), str(tmp_path / "there.keras")],
        env={**os.environ, "KERAS_BACKEND": other, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == other
    np.testing.assert_allclose(np.load(tmp_path / "there.npy"), here, rtol=1e-5, atol=1e-6)
    back = keras.saving.load_model(tmp_path / "there.keras")
    np.testing.assert_allclose(back.predict({"image": images, "mags": mags}, verbose=0), here,
                               rtol=1e-5, atol=1e-6)


def test_a_core_with_psf_inputs_exports_a_psf_fwhm_input_filled_like_a_magnitude(
        tiny_model, raw_rows, tmp_path):
    """The PSF FWHMs are standardised with the magnitudes; unknown seeing (NaN) is the
    training median; the seeing changes the answer; save and load keep all of it."""
    core = tiny_model(depth=3, cutout=CUTOUT, psf_inputs=True)
    rng = np.random.default_rng(6)
    train = np.concatenate([rng.normal(21.0, 1.0, (40, 9)), rng.uniform(0.6, 1.1, (40, 4))], 1)
    stats = fit_magnitude_standardiser(train)
    model = export_model(core, CUTOUT, STORED, *stats)
    assert [t.name for t in model.inputs] == ["image", "mags", "psf_fwhm"] and takes_psf(model)
    images, mags = raw_rows
    psf = np.tile(np.float32([1.0, 0.85, 0.7, 0.8]), (6, 1))
    expected = core.predict([minmax_normalise(centre_crop(images, CUTOUT)),
                             standardise_magnitudes(np.concatenate([mags, psf], 1), *stats)],
                            verbose=0)
    got = model.predict({"image": images, "mags": mags, "psf_fwhm": psf}, verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    unknown = model.predict({"image": images, "mags": mags,
                             "psf_fwhm": np.full_like(psf, np.nan)}, verbose=0)
    median = model.predict({"image": images, "mags": mags,
                            "psf_fwhm": np.tile(stats[0][9:].astype(np.float32), (6, 1))},
                           verbose=0)
    np.testing.assert_allclose(unknown, median, rtol=1e-6)
    assert not np.allclose(got, median, rtol=1e-4)
    model.save(tmp_path / "psf.keras")
    loaded = keras.models.load_model(tmp_path / "psf.keras")
    np.testing.assert_allclose(loaded.predict({"image": images, "mags": mags, "psf_fwhm": psf},
                                              verbose=0), got, rtol=1e-6)
