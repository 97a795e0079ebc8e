"""The PDF output: a normalised softmax over bins, its CRPS loss and the calibration layer,
through export, save and load (run under TensorFlow and JAX in CI)."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from hzexp.config import TrainingConfig
from hzexp.evaluation.pdfs import PdfGrid, crps, quantiles
from hzexp.model import (
    BinnedCRPS,
    CalibratedPdf,
    GaussianKernel,
    build_hybrid_z,
    compile_hybrid_z,
    export_model,
    fit_magnitude_standardiser,
)
from tests.model.conftest import TINY

PDF = dataclasses.replace(TINY, depth=3, output="pdf", pdf_bins=50, pdf_z_max=1.0)
STORED, CUTOUT = 24, 20


def inputs(n=16, seed=3):
    rng = np.random.default_rng(seed)
    return (rng.lognormal(size=(n, STORED, STORED, 4)).astype(np.float32),
            rng.normal(21.0, 1.0, size=(n, 9)).astype(np.float32))


@pytest.mark.parametrize("kernel_width", [0.0, 0.03])
def test_the_pdf_head_gives_normalised_non_negative_pdfs_that_train(kernel_width):
    keras.utils.set_random_seed(0)
    architecture = dataclasses.replace(PDF, pdf_kernel_width=kernel_width)
    core = build_hybrid_z(architecture, CUTOUT)
    assert core.output.shape[-1] == 50 and core.output_names == ["z_pdf"]
    assert isinstance(core.layers[-1], GaussianKernel) == (kernel_width > 0)
    compile_hybrid_z(core, TrainingConfig(learning_rate=3e-3), architecture)
    images, mags = inputs(64)
    x = [images[:, 2:22, 2:22] / images.max(), (mags - 21.0)]
    z = np.full((64, 1), 0.31, dtype=np.float32)
    before = core.evaluate(x, z, verbose=0)
    core.fit(x, z, epochs=30, batch_size=32, verbose=0)
    pdfs = core.predict(x, verbose=0)
    assert np.all(pdfs >= 0)
    np.testing.assert_allclose(pdfs.sum(axis=1), 1.0, atol=1e-5)
    assert core.evaluate(x, z, verbose=0) < before / 2
    # the mass moves from everywhere (uniform: median 0.5) to near the truth
    np.testing.assert_allclose(quantiles(pdfs, PdfGrid(1.0, 50), 0.5), 0.31, atol=0.05)


def test_the_gaussian_kernel_spreads_each_bin_into_a_normalised_gaussian():
    grid, width = PdfGrid(1.0, 200), 0.01
    one_bin = np.zeros((3, 200), dtype=np.float32)
    one_bin[0, 100] = one_bin[1, 0] = one_bin[2, 199] = 1.0
    spread = keras.ops.convert_to_numpy(GaussianKernel(width, grid.z_max)(one_bin))
    assert np.all(spread >= 0)
    np.testing.assert_allclose(spread.sum(axis=1), 1.0, atol=1e-5)  # none lost at the edges
    mean = (spread[0] * grid.centres).sum()
    std = np.sqrt((spread[0] * (grid.centres - mean) ** 2).sum())
    np.testing.assert_allclose([mean, std], [grid.centres[100], width], rtol=1e-3)
    # a comb of single bins becomes smooth: neighbouring bins differ by a few per cent
    comb = np.zeros((1, 200), dtype=np.float32)
    comb[0, 80:120:3] = 1.0 / len(range(80, 120, 3))
    smooth = keras.ops.convert_to_numpy(GaussianKernel(width, grid.z_max)(comb))[0]
    assert np.abs(np.diff(smooth[85:115])).max() < 0.1 * smooth[85:115].max()
    assert np.abs(np.diff(comb[0, 85:115])).max() == comb.max()


def test_the_loss_is_the_crps_on_the_right_bin_edges():
    grid = PdfGrid(1.0, 4)
    p = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    z = np.array([[0.3], [0.9]], dtype=np.float32)
    # CDF at the right edges .25 .5 .75 1 against [z <= edge]:
    first = 0.25 * (0.1**2 + (0.3 - 1) ** 2 + (0.6 - 1) ** 2 + 0)
    second = 0.25 * (1 + 1 + 1 + 0)
    loss = BinnedCRPS(grid.z_max, grid.n_bins, reduction=None)(z, p)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss), [first, second], rtol=1e-6)
    # the same order as the exact CRPS of the histogram, which it approximates
    exact = crps(p, grid, z.ravel())
    assert (exact[0] < exact[1]) and (first < second)


def test_calibration_tempers_and_survives_export_save_and_load(tmp_path):
    keras.utils.set_random_seed(1)
    core = build_hybrid_z(dataclasses.replace(PDF, pdf_kernel_width=0.03), CUTOUT)
    stats = fit_magnitude_standardiser(np.random.default_rng(6).normal(21.0, 1.0, (40, 9)))
    plain = export_model(core, CUTOUT, STORED, *stats, pdf=CalibratedPdf(1.0, 1.0, name="z_pdf"))
    wider = export_model(core, CUTOUT, STORED, *stats, pdf=CalibratedPdf(1.0, 3.0, name="z_pdf"))
    images, mags = inputs()
    p1 = plain.predict({"image": images, "mags": mags}, verbose=0)
    p3 = wider.predict({"image": images, "mags": mags}, verbose=0)
    assert p1.shape == (16, 50) and plain.output_names == ["z_pdf"]
    np.testing.assert_allclose(p3.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p3, p1 ** (1 / 3) / (p1 ** (1 / 3)).sum(1, keepdims=True),
                               rtol=1e-4, atol=1e-7)
    assert np.all(p3.max(axis=1) <= p1.max(axis=1) + 1e-7)  # wider: lower peaks
    wider.save(tmp_path / "pdf.keras")
    loaded = keras.saving.load_model(tmp_path / "pdf.keras")
    layer = loaded.layers[-1]
    assert isinstance(layer, CalibratedPdf) and (layer.z_max, layer.temperature) == (1.0, 3.0)
    kernel = loaded.layers[-2].layers[-1]  # the core's output layer, its spread weights saved
    assert isinstance(kernel, GaussianKernel) and kernel.width == 0.03
    np.testing.assert_allclose(loaded.predict({"image": images, "mags": mags}, verbose=0), p3,
                               rtol=1e-5, atol=1e-7)


def test_a_pdf_core_needs_its_calibration_and_a_point_core_none():
    keras.utils.set_random_seed(2)
    stats = fit_magnitude_standardiser(np.random.default_rng(6).normal(21.0, 1.0, (40, 9)))
    with pytest.raises(ValueError, match="calibration"):
        export_model(build_hybrid_z(PDF, CUTOUT), CUTOUT, STORED, *stats)
    with pytest.raises(ValueError, match="calibration"):
        export_model(build_hybrid_z(dataclasses.replace(PDF, output="point"), CUTOUT), CUTOUT,
                     STORED, *stats, pdf=CalibratedPdf(1.0, 1.0))
