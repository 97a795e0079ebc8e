"""Synthetic photometry against the real KiDS/VIKING transmission curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hzexp.data.mock.flux_table import REST_FRAME_BAND, build_flux_table
from hzexp.data.mock.photometry import component_fluxes
from hzexp.data.mock.sed import FilterCurve, load_survey_filters
from hzexp.data.store import MAG_BANDS

KIDS_FILTER_DIR = (Path(__file__).parents[3] / ".." / "shared" / "reference" / "filters"
                   / "kids_viking")
def _kids_curves() -> list[FilterCurve]:
    curves = []
    for band in MAG_BANDS:
        wavelength, transmission = np.loadtxt(KIDS_FILTER_DIR / f"KiDSVIKING_aibn139_{band}.res",
                                              unpack=True, usecols=(0, 1))
        curves.append(FilterCurve(band, wavelength, transmission))
    return curves


@pytest.mark.skipif(not KIDS_FILTER_DIR.is_dir(), reason="reference KiDS/VIKING curves absent")
def test_magnitudes_agree_with_real_kids_viking_curves(survey, galaxies):
    kids_table = build_flux_table(_kids_curves(), load_survey_filters()[REST_FRAME_BAND])
    block = galaxies.head(2000).galaxies
    magnitudes = {}
    for name, table in (("mock", survey.table), ("kids", kids_table)):
        bulge, disk = component_fluxes(block, table, survey.cosmology, survey.params,
                                       np.random.default_rng(11))
        magnitudes[name] = -2.5 * np.log10(bulge + disk)
    difference = np.median(magnitudes["kids"] - magnitudes["mock"], axis=0)
    print("median KiDS/VIKING - mock:",
          " ".join(f"{b}={d:+.3f}" for b, d in zip(MAG_BANDS, difference)))
    limits = np.where(np.array(MAG_BANDS) == "u", 0.2, 0.1)
    assert np.all(np.abs(difference) < limits)
