"""Component fluxes and catalogue photometry: colours, scatter, NIR gaps, zero points."""

from __future__ import annotations

import dataclasses

import numpy as np
from sklearn.mixture import GaussianMixture

from hzexp.data.mock.parameters import MockParameters
from hzexp.data.mock.survey import MockSurvey
from hzexp.data.store import IMAGE_BANDS, MAG_BANDS
from tests.helpers.mock_stamps import STAMP


def test_g_minus_r_is_bimodal(galaxies):
    """Red sequence and blue cloud at 0.15 < z < 0.25: a two-Gaussian mixture fits better
    than one (BIC) with Ashman et al. (1994) separation D > 2, the criterion for two
    distinct populations (a histogram dip is too sample-dependent at this size)."""
    z = galaxies.galaxies["z"].to_numpy()
    in_slice = (z > 0.15) & (z < 0.25)
    colour = (galaxies.catalogue["mag_g"] - galaxies.catalogue["mag_r"]).to_numpy()[in_slice]
    red = galaxies.galaxies["is_red"].to_numpy()[in_slice]
    assert np.median(colour[red]) - np.median(colour[~red]) > 0.35
    sample = colour[np.isfinite(colour)].reshape(-1, 1)
    one, two = (GaussianMixture(k, random_state=0).fit(sample) for k in (1, 2))
    assert two.bic(sample) < one.bic(sample) - 100
    mean, variance = two.means_.ravel(), two.covariances_.ravel()
    assert abs(mean[0] - mean[1]) / np.sqrt(variance.mean()) > 2.0


def test_sed_scatter_lives_in_the_disk(galaxies):
    """Bulges are a tight red sequence; disks carry most of the intrinsic colour scatter, so
    the total (catalogue) colour is more scattered than the bulge's."""
    g = galaxies.galaxies
    z = g["z"].to_numpy()
    gi, ri = MAG_BANDS.index("g"), MAG_BANDS.index("r")
    near = (z > 0.19) & (z < 0.21) & (g["bulge_fraction"].to_numpy() > 0.05)
    red = g["is_red"].to_numpy()
    for kind, rows in (("red", near & red), ("blue", near & ~red)):

        def colour_scatter(flux):
            colour = -2.5 * np.log10(flux[rows, gi] / flux[rows, ri])
            return 1.4826 * np.median(np.abs(colour - np.median(colour)))

        bulge = colour_scatter(galaxies.bulge_flux)
        disk = colour_scatter(galaxies.disk_flux)
        print(f"{kind}: g-r scatter at z = 0.2: bulge {bulge:.3f}, disk {disk:.3f}")
        assert bulge < 0.05
        assert disk > 2 * bulge


def test_nir_gaps_are_a_few_percent(galaxies):
    catalogue = galaxies.catalogue
    for band in ("Z", "Y", "J", "H", "Ks"):
        assert 0.01 < catalogue[f"mag_{band}"].isna().mean() < 0.06
    assert catalogue[["mag_g", "mag_r", "mag_i"]].notna().all().all()


def test_images_and_catalogue_share_the_zero_points():
    """With zero-point errors as the only large error, the u,g,r,i stamp fluxes follow the
    catalogue's (both measured on the same coadds) while both scatter around the truth."""
    params = dataclasses.replace(MockParameters(), zero_point_sigma_mag=0.2, gaap_sigma_mag=0.0,
                                 masked_extra_sigma_mag=0.0, masked_fraction=0.0,
                                 neighbour_fraction=0.0)
    survey = MockSurvey(params)
    rng = np.random.default_rng(11)
    block = survey.draw_galaxies(rng, 300)
    seeing = np.tile(np.float32(params.psf_fwhm_median_arcsec), (len(block.galaxies), 1))
    stamps = survey.render(block, seeing, rng, STAMP)
    bands = [MAG_BANDS.index(b) for b in IMAGE_BANDS]
    stamp_mag = params.image_zero_point_ab - 2.5 * np.log10(stamps.sum(axis=(1, 2)))
    catalogue_mag = block.catalogue[[f"mag_{b}" for b in IMAGE_BANDS]].to_numpy()
    true_mag = params.image_zero_point_ab - 2.5 * np.log10(
        (block.bulge_flux + block.disk_flux)[:, bands])
    bright = catalogue_mag[:, IMAGE_BANDS.index("r")] < 19.0
    stamp_error = (stamp_mag - true_mag)[bright]
    catalogue_error = (catalogue_mag - true_mag)[bright]
    assert np.all(np.median(np.abs(catalogue_error), axis=0) > 0.1)  # 0.2 mag: ~0.135
    for band in range(len(IMAGE_BANDS)):  # independent zero points would give ~0
        assert np.corrcoef(stamp_error[:, band], catalogue_error[:, band])[0, 1] > 0.8
