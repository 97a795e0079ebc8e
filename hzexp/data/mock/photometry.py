"""Fluxes of the bulge and disk of every galaxy, and the catalogue's measurement of them.

The error budget is split so that the images are never a shortcut:
(a) intrinsic SED variation -- template mixing, inclination-dependent disk dust, a smooth
    age/metallicity tilt and emission-line-like per-band scatter, each component with its
    own (tight for the old bulge, broad for the disk) -- is part of the true component
    fluxes, which both the images and the catalogue see; the catalogue sees only their sum;
(b) zero-point errors (`zero_point_factors`) scale the fluxes seen by the images and the
    catalogue alike (GAaP is measured on the same coadds);
(c) GAaP aperture-photometry errors and sky noise from the KiDS/VIKING depths are added to
    the catalogue only (`observe_catalogue`);
(d) PSF jitter and pixel noise are applied to the images only (`images`).
Fluxes are in image units: flux = 10^(-0.4 (m_AB - zero_point)), zero point 30 by default.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.polynomial import legendre

from hzexp.data.mock.flux_table import REST_FRAME_BAND, FluxTable
from hzexp.data.mock.parameters import MockParameters
from hzexp.data.mock.population import CosmologyGrid
from hzexp.data.store import MAG_BANDS

#: Calzetti et al. (2000) total-to-selective attenuation of the starburst law.
CALZETTI_RV = 4.05
_NIR_BANDS = [MAG_BANDS.index(b) for b in ("Z", "Y", "J", "H", "Ks")]
#: 2.5 / ln 10: converts a fractional flux error into a magnitude error.
_MAG_PER_FRACTION = 2.5 / np.log(10.0)


def calzetti_k(wavelength_a: np.ndarray) -> np.ndarray:
    """k(lambda) = A_lambda / E(B-V) of Calzetti et al. (2000) eq. 4, extended linearly in
    1/lambda beyond its 0.12-2.2 micron range (only reached by Ks at z ~ 0)."""
    x = 1.0e4 / np.asarray(wavelength_a, float)  # inverse micron
    uv_optical = 2.659 * (-2.156 + 1.509 * x - 0.198 * x**2 + 0.011 * x**3) + CALZETTI_RV
    red = 2.659 * (-1.857 + 1.040 * x) + CALZETTI_RV
    return np.where(x > 1.0 / 0.63, uv_optical, red)


def _sed_variation(tilt_basis: np.ndarray, tilt_sigma: tuple[float, float, float],
                   line_sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, bands) flux factors of one component: a smooth SED tilt (zero at rest-frame r)
    times independent per-band emission-line-like scatter of `line_sigma` (n, 1) mag."""
    n = tilt_basis.shape[0]
    tilt = np.einsum("nbk,nk->nb", tilt_basis, rng.normal(0.0, tilt_sigma, (n, 3)))
    lines = line_sigma * rng.standard_normal(tilt.shape)
    return 10.0 ** (-0.4 * (tilt + lines))


def component_fluxes(galaxies: pd.DataFrame, table: FluxTable, cosmology: CosmologyGrid,
                     p: MockParameters, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """True (noiseless) bulge and disk fluxes, each (n, n_table_bands), in image units.

    Per unit rest-frame r luminosity each component has its template's K-corrected colours;
    the disk is attenuated relative to rest-frame r (so M_r stays the observed, attenuated
    luminosity the LFs describe). Each component gets its own SED tilt and line scatter:
    small for the old bulge (red-sequence-like), large for the disk, so the intrinsic colour
    scatter of the total light lives mostly in the disk.
    """
    n = len(galaxies)
    z = galaxies["z"].to_numpy()
    red = galaxies["is_red"].to_numpy()
    rest_wavelength = table.effective_wavelength_a[None, :] / (1.0 + z[:, None])
    reference_wavelength = table.effective_wavelength_a[REST_FRAME_BAND]

    colour_excess = galaxies["disk_av"].to_numpy() / CALZETTI_RV
    disk_attenuation = colour_excess[:, None] * (calzetti_k(rest_wavelength)
                                                 - calzetti_k(reference_wavelength))
    tilt_x = np.log10(rest_wavelength / reference_wavelength) / np.log10(4.0)
    tilt_basis = legendre.legvander(tilt_x, 3)[..., 1:] - legendre.legvander(0.0, 3)[..., 1:]
    bulge_variation = _sed_variation(tilt_basis, p.bulge_sed_tilt_sigma_mag,
                                     np.full((n, 1), p.bulge_line_scatter_mag), rng)
    disk_line_sigma = np.where(red, p.red_disk_line_scatter_mag,
                               p.blue_disk_line_scatter_mag)[:, None]
    disk_variation = _sed_variation(tilt_basis, p.disk_sed_tilt_sigma_mag, disk_line_sigma, rng)

    luminosity = 10.0 ** (-0.4 * (galaxies["abs_mag_r"].to_numpy()
                                  + cosmology.distance_modulus_at(z) - p.image_zero_point_ab))
    bulge_fraction = galaxies["bulge_fraction"].to_numpy()
    bulge = table.interpolate(galaxies["bulge_type"].to_numpy(), z) * bulge_variation
    disk = (table.interpolate(galaxies["disk_type"].to_numpy(), z) * disk_variation
            * 10.0 ** (-0.4 * disk_attenuation))
    return (luminosity[:, None] * bulge_fraction[:, None] * bulge,
            luminosity[:, None] * (1.0 - bulge_fraction[:, None]) * disk)


def zero_point_factors(n: int, p: MockParameters, rng: np.random.Generator) -> np.ndarray:
    """(n, 9) multiplicative calibration errors of the survey bands: each galaxy sits on
    its own tile, so its zero points scatter independently by `zero_point_sigma_mag`."""
    return 10.0 ** (-0.4 * p.zero_point_sigma_mag * rng.standard_normal((n, len(MAG_BANDS))))


def flux_noise_sigma(half_light_arcsec: np.ndarray, p: MockParameters) -> np.ndarray:
    """(n, 9) 1-sigma flux errors from the 5-sigma point-source depths.

    The depth is defined in a 2" aperture; an extended galaxy needs a proportionally larger
    (GAaP-like) aperture, so the sky noise grows as sqrt(1 + (r_50 / r_aperture)^2).
    """
    limit_flux = 10.0 ** (-0.4 * (np.asarray(p.depth_5sigma) - p.image_zero_point_ab))
    aperture_radius = p.depth_aperture_diameter_arcsec / 2.0
    growth = np.sqrt(1.0 + (np.asarray(half_light_arcsec) / aperture_radius) ** 2)
    return growth[:, None] * limit_flux[None, :] / 5.0


def _magnitudes(flux: np.ndarray, sigma: np.ndarray, zero_point: float):
    """AB magnitude and error; a non-positive measured flux is a non-detection (NaN)."""
    detected = flux > 0
    safe = np.where(detected, flux, 1.0)
    magnitude = np.where(detected, zero_point - 2.5 * np.log10(safe), np.nan)
    error = np.where(detected, _MAG_PER_FRACTION * sigma / safe, np.nan)
    return magnitude, error


def observe_catalogue(true_flux: np.ndarray, half_light_arcsec: np.ndarray, masked: np.ndarray,
                      p: MockParameters, rng: np.random.Generator) -> pd.DataFrame:
    """Catalogue magnitudes (9 bands), their errors and the r_auto selection magnitude.

    `true_flux` already carries the zero-point errors (b). Adds (c): sky noise, a per-band
    GAaP aperture-photometry error (extra for masked galaxies, whose photometry KiDS flags
    as unreliable) and VIKING gaps (NaN). `magerr_*` holds the statistical error only, as
    in KiDS. `mag_r_auto` is an independent total-flux measurement with its own error
    (SExtractor AUTO is not GAaP).
    """
    n, n_bands = true_flux.shape
    sigma = flux_noise_sigma(half_light_arcsec, p)
    aperture_sigma = np.hypot(p.gaap_sigma_mag,
                              np.where(masked, p.masked_extra_sigma_mag, 0.0))[:, None]
    aperture = 10.0 ** (-0.4 * aperture_sigma * rng.standard_normal((n, n_bands)))
    measured = true_flux * aperture + sigma * rng.standard_normal((n, n_bands))
    magnitude, error = _magnitudes(measured, sigma, p.image_zero_point_ab)

    missing = np.zeros((n, n_bands), dtype=bool)
    missing[:, _NIR_BANDS] = ((rng.random(n) < p.nir_all_missing_fraction)[:, None]
                              | (rng.random((n, len(_NIR_BANDS))) < p.nir_band_missing_fraction))
    magnitude[missing] = np.nan
    error[missing] = np.nan

    r = MAG_BANDS.index("r")
    auto_flux = (true_flux[:, r] * 10.0 ** (-0.4 * p.r_auto_sigma_mag * rng.standard_normal(n))
                 + sigma[:, r] * rng.standard_normal(n))
    r_auto, _ = _magnitudes(auto_flux, sigma[:, r], p.image_zero_point_ab)

    columns = {f"mag_{b}": magnitude[:, i] for i, b in enumerate(MAG_BANDS)}
    columns |= {f"magerr_{b}": error[:, i] for i, b in enumerate(MAG_BANDS)}
    columns["mag_r_auto"] = r_auto
    return pd.DataFrame(columns)
