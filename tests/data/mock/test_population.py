"""Luminosity functions and structure: magnitudes and sizes against redshift and type."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from hzexp.data.mock.photometry import component_fluxes
from hzexp.data.store import MAG_BANDS


def test_galaxies_get_fainter_with_redshift_at_fixed_luminosity(survey):
    z = np.linspace(0.02, 0.7, 40)
    params = dataclasses.replace(survey.params, bulge_sed_tilt_sigma_mag=(0, 0, 0),
                                 disk_sed_tilt_sigma_mag=(0, 0, 0), bulge_line_scatter_mag=0.0,
                                 red_disk_line_scatter_mag=0.0, blue_disk_line_scatter_mag=0.0)
    for sed in (0.0, 3.0):
        same = pd.DataFrame({"z": z, "abs_mag_r": -21.0, "is_red": sed < 1, "bulge_type": sed,
                             "disk_type": sed, "bulge_fraction": 0.5, "disk_av": 0.3})
        bulge, disk = component_fluxes(same, survey.table, survey.cosmology, params,
                                       np.random.default_rng(0))
        r_flux = (bulge + disk)[:, MAG_BANDS.index("r")]
        assert np.all(np.diff(r_flux) < 0)


def test_median_r_rises_with_redshift(galaxies):
    z = galaxies.galaxies["z"].to_numpy()
    r = galaxies.catalogue["mag_r"].to_numpy()
    edges = [0.02, 0.1, 0.2, 0.3, 0.45]
    medians = [np.median(r[(z >= lo) & (z < hi)]) for lo, hi in zip(edges[:-1], edges[1:])]
    assert np.all(np.diff(medians) > 0)


def test_bulges_are_compact_and_tied_to_type(galaxies):
    g = galaxies.galaxies
    assert np.all(g["bulge_re_arcsec"] < 0.5 * g["disk_re_arcsec"])
    red = g["is_red"].to_numpy()
    bulge_fraction = g["bulge_fraction"].to_numpy()
    assert np.median(bulge_fraction[red]) > 0.6
    assert np.median(bulge_fraction[~red]) < 0.35
    late = ~red & (g["disk_type"].to_numpy() > 3)
    early = ~red & (g["disk_type"].to_numpy() < 2)
    assert np.median(bulge_fraction[late]) < np.median(bulge_fraction[early]) - 0.15
