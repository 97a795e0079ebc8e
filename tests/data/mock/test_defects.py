"""Neighbours and masked artefacts."""

from __future__ import annotations

import numpy as np

from hzexp.data.mock.defects import add_artefacts
from hzexp.data.store import IMAGE_BANDS
from tests.helpers.mock_stamps import CENTRE, STAMP


def test_masked_fraction_and_artefacts(small_mock, survey):
    masked = small_mock.catalogue["masked"].to_numpy()
    assert 0.10 < masked.mean() < 0.20
    images = small_mock.read_images(np.arange(len(masked)))
    y, x = np.indices((STAMP, STAMP))
    corners = np.hypot(x - CENTRE, y - CENTRE) > 22  # beyond all but the largest galaxies
    peak_sigma = (images[:, corners] / survey.sky_sigma).max(axis=(1, 2))
    assert np.mean(peak_sigma[masked] > 10) > 0.9
    assert np.mean(peak_sigma[~masked] > 10) < 0.15


def test_every_artefact_is_visible(survey):
    stamps = np.zeros((40, STAMP, STAMP, len(IMAGE_BANDS)), dtype=np.float32)
    fwhm_px = np.tile(np.asarray(survey.params.psf_fwhm_median_arcsec) / 0.2, (40, 1))
    add_artefacts(stamps, np.ones(40, bool), fwhm_px, survey.sky_sigma,
                  survey.params.image_zero_point_ab, np.random.default_rng(0))
    assert np.all((stamps / survey.sky_sigma).max(axis=(1, 2, 3)) > 5)
