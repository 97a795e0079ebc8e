"""Noise-free mock stamps, for tests of the rendering physics."""

from __future__ import annotations

import numpy as np

from hzexp.data.mock.images import render_stamps
from hzexp.data.mock.survey import MockSurvey
from hzexp.data.store import IMAGE_BANDS, MAG_BANDS

STAMP = 48
CENTRE = (STAMP - 1) / 2.0


def render_noiseless(survey: MockSurvey, block, fwhm_px=None, offsets=None) -> np.ndarray:
    g = block.galaxies
    n = len(g)
    bands = [MAG_BANDS.index(b) for b in IMAGE_BANDS]
    nominal = np.asarray(survey.params.psf_fwhm_median_arcsec) / survey.params.pixel_scale_arcsec
    to_px = 1.0 / survey.params.pixel_scale_arcsec
    return render_stamps(
        block.bulge_flux[:, bands], block.disk_flux[:, bands],
        g["bulge_re_arcsec"].to_numpy() * to_px, g["bulge_axis_ratio"].to_numpy(),
        g["disk_re_arcsec"].to_numpy() * to_px, g["disk_axis_ratio"].to_numpy(),
        g["position_angle"].to_numpy(), np.zeros((n, 2)) if offsets is None else offsets,
        np.tile(nominal, (n, 1)) if fwhm_px is None else fwhm_px,
        survey.params.psf_moffat_beta, STAMP)
