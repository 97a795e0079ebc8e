"""Seeing augmentation: a Gaussian PSF grows by the asked factor, flux and sky noise stay."""

import numpy as np
import pytest

from hzexp.data.seeing import FWHM_TO_SIGMA, degrade_seeing, kernel_sigma_px, sky_sigma

SIZE = 48
FWHM_PX = np.array([5.0, 4.3, 3.5, 4.0])


def gaussian_stars(fwhm_px: np.ndarray, n: int = 2) -> np.ndarray:
    y, x = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    sigma = fwhm_px * FWHM_TO_SIGMA
    star = np.exp(-(x**2 + y**2)[:, :, None] / (2 * sigma**2))
    return np.repeat(star[None], n, axis=0).astype(np.float32)


def measured_fwhm(images: np.ndarray) -> np.ndarray:
    """(n, bands) FWHM from the second moment (exact for a Gaussian)."""
    y, x = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    r2 = (x**2 + y**2)[None, :, :, None]
    variance = (r2 * images).sum(axis=(1, 2)) / images.sum(axis=(1, 2)) / 2
    return np.sqrt(variance) / FWHM_TO_SIGMA


@pytest.mark.parametrize("growth", [0.1, 0.2, 0.5])
def test_a_gaussian_psf_grows_by_the_factor_and_keeps_its_flux(growth):
    stars = gaussian_stars(FWHM_PX)
    out = degrade_seeing(stars, np.tile(FWHM_PX, (2, 1)), np.full((2, 4), growth),
                         np.random.default_rng(0))
    np.testing.assert_allclose(measured_fwhm(out), (1 + growth) * measured_fwhm(stars),
                               rtol=2e-3)
    np.testing.assert_allclose(out.sum(axis=(1, 2)), stars.sum(axis=(1, 2)), rtol=1e-4)


def test_no_growth_or_unknown_seeing_leaves_the_stamp_alone():
    stars = gaussian_stars(FWHM_PX)
    fwhm = np.tile(FWHM_PX, (2, 1))
    fwhm[1, 2] = np.nan
    growth = np.full((2, 4), 0.3)
    growth[0] = 0.0
    out = degrade_seeing(stars, fwhm, growth, np.random.default_rng(0))
    np.testing.assert_allclose(out[0], stars[0], atol=1e-6)
    np.testing.assert_allclose(out[1, ..., 2], stars[1, ..., 2], atol=1e-6)
    assert kernel_sigma_px(np.array([4.0]), np.array([0.0]))[0] == 0.0


def test_the_sky_noise_keeps_its_level_after_the_blur():
    rng = np.random.default_rng(1)
    sky = rng.normal(0.0, 0.7, (64, SIZE, SIZE, 4)).astype(np.float32)
    out = degrade_seeing(sky, np.full((64, 4), 4.0), np.full((64, 4), 0.4), rng)
    np.testing.assert_allclose(sky_sigma(out).mean(), 0.7, rtol=0.03)
    np.testing.assert_allclose(out.std(), 0.7, rtol=0.03)


def test_sky_sigma_ignores_a_bright_source_crossing_the_border():
    rng = np.random.default_rng(2)
    sky = rng.normal(0.0, 1.0, (8, SIZE, SIZE, 4)).astype(np.float32)
    sky[:, :6, :6] += 50.0  # 5% of the border: the plain std would be ~11
    estimate = sky_sigma(sky)
    assert abs(estimate.mean() - 1.0) < 0.12 and estimate.max() < 1.4
