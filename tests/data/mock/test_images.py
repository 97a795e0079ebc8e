"""Rendered stamps: flux, PSF, centring and colour gradients."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import curve_fit

from hzexp.data.mock.images import moffat_alpha, render_stamps
from hzexp.data.store import IMAGE_BANDS
from tests.helpers.mock_stamps import CENTRE, STAMP, render_noiseless


def test_stamp_flux_matches_catalogue_for_isolated_galaxies(small_mock, survey):
    catalogue = small_mock.catalogue
    clean = ~catalogue["masked"].to_numpy()
    rows = np.flatnonzero(clean)
    images = small_mock.read_images(rows)
    stamp_r = images[..., IMAGE_BANDS.index("r")].sum(axis=(1, 2))
    catalogue_r = 10.0 ** (-0.4 * (catalogue["mag_r"].to_numpy()[rows]
                                   - survey.params.image_zero_point_ab))
    ratio = stamp_r / catalogue_r
    assert abs(np.median(ratio) - 1.0) < 0.03
    assert np.mean(np.abs(ratio - 1.0) < 0.15) > 0.9


def test_point_source_fwhm_matches_psf_spec(survey):
    n = len(IMAGE_BANDS)
    point = np.zeros((1, n))
    nominal_px = np.asarray(survey.params.psf_fwhm_median_arcsec) / survey.params.pixel_scale_arcsec
    stamp = render_stamps(np.ones((1, n)) * 1000.0, point, np.array([0.01]), np.array([1.0]),
                          np.array([1.0]), np.array([1.0]), np.array([0.0]),
                          np.full((1, 2), 0.5), nominal_px[None, :], survey.params.psf_moffat_beta,
                          STAMP)[0]
    y, x = np.indices((STAMP, STAMP))
    radius = np.hypot(y - (CENTRE + 0.5), x - (CENTRE + 0.5)).ravel()  # offset +0.5: a pixel centre
    beta = survey.params.psf_moffat_beta

    def moffat(r, amplitude, alpha):
        return amplitude * (1 + (r / alpha) ** 2) ** -beta

    for band, spec in enumerate(nominal_px):
        (amplitude, alpha), _ = curve_fit(moffat, radius, stamp[..., band].ravel(),
                                          p0=(stamp[..., band].max(), 2.0))
        measured = 2 * alpha * np.sqrt(2 ** (1 / beta) - 1)
        print(f"{IMAGE_BANDS[band]}: FWHM {measured:.2f} px (spec {spec:.2f})")
        assert abs(measured / spec - 1) < 0.1
    assert moffat_alpha(2.0, 3.0) == pytest.approx(1.0 / np.sqrt(2 ** (1 / 3) - 1))


def test_light_is_centred(survey, galaxies):
    block = galaxies.head(200)
    stamps = render_noiseless(survey, block)
    r_band = stamps[..., IMAGE_BANDS.index("r")]
    y, x = np.indices((STAMP, STAMP))
    total = r_band.sum(axis=(1, 2))
    centroid_x = (r_band * x).sum(axis=(1, 2)) / total
    centroid_y = (r_band * y).sum(axis=(1, 2)) / total
    assert np.max(np.hypot(centroid_x - CENTRE, centroid_y - CENTRE)) < 0.5


def test_bulges_are_redder_than_disks(survey, galaxies):
    """Colour gradient: the inner (bulge-dominated) light is redder in g-i than the outskirts."""
    block = galaxies.head(300)
    stamps = render_noiseless(survey, block)
    y, x = np.indices((STAMP, STAMP))
    radius = np.hypot(x - CENTRE, y - CENTRE)
    g, i = IMAGE_BANDS.index("g"), IMAGE_BANDS.index("i")
    inner = stamps[:, radius < 2]
    outer = stamps[:, (radius > 4) & (radius < 10)]
    gradient = (-2.5 * np.log10(inner[..., g].sum(1) / inner[..., i].sum(1))
                + 2.5 * np.log10(outer[..., g].sum(1) / outer[..., i].sum(1)))
    two_component = (block.galaxies["bulge_fraction"].between(0.2, 0.8)).to_numpy()
    assert np.median(gradient[two_component]) > 0.02
