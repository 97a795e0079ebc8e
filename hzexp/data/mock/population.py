"""The mock galaxy population: redshifts, luminosities, SED types, structure.

Galaxies are drawn from evolving red and blue Schechter luminosity functions weighted by the
comoving volume element (astropy FlatLambdaCDM), which is what makes the n(z) of a
flux-limited sample rise as z^2 and fall where L* galaxies reach r = 20 (GAMA-like, mean
z ~ 0.23). Every galaxy gets a bulge and a disk: an old bulge SED and a younger disk SED, a
bulge-to-total ratio tied to the type (morphology-colour link), sizes from the Shen et al.
(2003) size-luminosity relations turned into angles with the angular-diameter distance, and
an inclination that sets both the disk axis ratio and its dust attenuation. The r < 20
selection itself needs the photometry, so this module draws candidates with a loose cut and
the caller applies the exact one (`photometry`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.cosmology import FlatLambdaCDM

from hzexp.data.mock.flux_table import REST_FRAME_BAND, FluxTable
from hzexp.data.mock.parameters import MockParameters

#: Extra depth (mag) of the candidate cut: covers the spread of K-corrections within a type,
#: dust and the r_auto error, so the exact r_auto < 20 cut loses no galaxy.
CANDIDATE_MARGIN_MAG = 1.0
#: Representative SED index per type for the candidate cut's K-correction (red, blue).
_TYPICAL_SED = {"red": 0.3, "blue": 1.6}
_Z_STEP = 0.002
_M_STEP = 0.02


@dataclass(frozen=True)
class CosmologyGrid:
    """Distance modulus, angular-diameter distance and volume element on a redshift grid.

    astropy evaluates the distance integrals; interpolating on a 0.002 grid is exact to
    < 1e-4 mag and keeps per-galaxy cost negligible.
    """

    redshifts: np.ndarray
    distance_modulus: np.ndarray
    angular_diameter_kpc: np.ndarray
    volume_element: np.ndarray  # dV / dz / dOmega in Mpc^3 / sr

    @classmethod
    def build(cls, params: MockParameters) -> CosmologyGrid:
        cosmology = FlatLambdaCDM(H0=params.hubble_constant, Om0=params.omega_matter)
        z = np.arange(_Z_STEP, params.redshift_max + _Z_STEP / 2, _Z_STEP)
        return cls(
            redshifts=z,
            distance_modulus=cosmology.distmod(z).to_value(u.mag),
            angular_diameter_kpc=cosmology.angular_diameter_distance(z).to_value(u.kpc),
            volume_element=cosmology.differential_comoving_volume(z).to_value(u.Mpc**3 / u.sr),
        )

    def distance_modulus_at(self, z: np.ndarray) -> np.ndarray:
        return np.interp(z, self.redshifts, self.distance_modulus)

    def arcsec_per_kpc(self, z: np.ndarray) -> np.ndarray:
        return (1.0 / np.interp(z, self.redshifts, self.angular_diameter_kpc)) * u.rad.to(u.arcsec)


def schechter_magnitudes(absolute_mag: np.ndarray, m_star: float, alpha: float,
                         phi_star: float) -> np.ndarray:
    """Schechter (1976) function per unit magnitude."""
    x = 10.0 ** (0.4 * (m_star - absolute_mag))
    return 0.4 * np.log(10.0) * phi_star * x ** (alpha + 1.0) * np.exp(-x)


class CandidateSampler:
    """Draws (z, M_r, type) from volume-weighted evolving LFs with a loose flux cut.

    The 2D (z, M) probability grid is built once per mock; draws pick a cell by inverse CDF
    and place the galaxy uniformly within it.
    """

    def __init__(self, params: MockParameters, cosmology: CosmologyGrid, table: FluxTable):
        self.params = params
        z = cosmology.redshifts
        m_grid = np.arange(*params.absolute_mag_range, _M_STEP)
        weights = []
        for kind in ("red", "blue"):
            m_star = getattr(params, f"{kind}_m_star") - getattr(params, f"{kind}_q_evolution") * z
            phi_star = (getattr(params, f"{kind}_phi_star")
                        * 10.0 ** (0.4 * getattr(params, f"{kind}_p_evolution") * z))
            phi = schechter_magnitudes(m_grid[None, :], m_star[:, None],
                                       getattr(params, f"{kind}_alpha"), phi_star[:, None])
            typical = np.full(len(z), _TYPICAL_SED[kind])
            k_correction = -2.5 * np.log10(table.interpolate(typical, z)[:, REST_FRAME_BAND])
            apparent = m_grid[None, :] + (cosmology.distance_modulus + k_correction)[:, None]
            visible = apparent < params.r_auto_limit + CANDIDATE_MARGIN_MAG
            weights.append(phi * cosmology.volume_element[:, None] * visible)
        stacked = np.stack(weights)  # (type, z, M)
        self._shape = stacked.shape
        self._cdf = np.cumsum(stacked.ravel())
        self._cdf /= self._cdf[-1]
        self._z_low = z - _Z_STEP / 2
        self._m_low = m_grid

    def draw(self, rng: np.random.Generator, n: int) -> pd.DataFrame:
        cell = np.searchsorted(self._cdf, rng.random(n), side="right")
        kind, iz, im = np.unravel_index(np.minimum(cell, self._cdf.size - 1), self._shape)
        z = np.maximum(self._z_low[iz] + _Z_STEP * rng.random(n), 1e-3)
        absolute_mag = self._m_low[im] + _M_STEP * rng.random(n)
        return pd.DataFrame({"z": z, "abs_mag_r": absolute_mag, "is_red": kind == 0})


def _shen_log_radius_kpc(absolute_mag: np.ndarray, is_red: np.ndarray,
                         p: MockParameters) -> tuple[np.ndarray, np.ndarray]:
    """Median log10 half-light radius and ln-scatter, Shen et al. (2003) eqs. 14-16, 18."""
    early = -0.4 * p.early_size_slope * absolute_mag + p.early_size_zero_point
    late = (-0.4 * p.late_size_alpha * absolute_mag
            + (p.late_size_beta - p.late_size_alpha)
            * np.log10(1.0 + 10.0 ** (-0.4 * (absolute_mag - p.size_m0))) + p.late_size_gamma)
    sigma_ln = p.size_sigma_bright + (p.size_sigma_faint - p.size_sigma_bright) / (
        1.0 + 10.0 ** (-0.8 * (absolute_mag - p.size_m0)))
    return np.where(is_red, early, late), sigma_ln


def add_structure(candidates: pd.DataFrame, cosmology: CosmologyGrid, p: MockParameters,
                  rng: np.random.Generator) -> pd.DataFrame:
    """SED types, bulge fraction, sizes (arcsec), axis ratios, orientation and disk dust."""
    n = len(candidates)
    red = candidates["is_red"].to_numpy()
    absolute_mag = candidates["abs_mag_r"].to_numpy()
    out = candidates.copy()

    red_bulge = np.clip(rng.normal(p.red_bulge_type_mean, p.red_bulge_type_sigma, n), 0.0, 0.8)
    red_disk = red_bulge + rng.uniform(*p.red_disk_type_offset, n)
    blue_disk = rng.uniform(*p.blue_disk_type_range, n)
    blue_bulge = np.clip(rng.normal(p.blue_bulge_type_mean, p.blue_bulge_type_sigma, n),
                         0.0, blue_disk)
    out["bulge_type"] = np.where(red, red_bulge, blue_bulge)
    out["disk_type"] = np.where(red, red_disk, blue_disk)
    red_fraction = rng.normal(p.red_bulge_fraction_mean, p.red_bulge_fraction_sigma, n)
    blue_fraction = rng.normal(
        p.blue_bulge_fraction_at_sbc + p.blue_bulge_fraction_slope * (blue_disk - 1.0),
        p.blue_bulge_fraction_sigma, n)
    out["bulge_fraction"] = np.clip(np.where(red, red_fraction, blue_fraction), 0.0, 0.95)

    log_radius, sigma_ln = _shen_log_radius_kpc(absolute_mag, red, p)
    radius_kpc = 10.0 ** log_radius * np.exp(sigma_ln * rng.standard_normal(n))
    half_light_arcsec = radius_kpc * cosmology.arcsec_per_kpc(candidates["z"].to_numpy())
    out["half_light_arcsec"] = half_light_arcsec
    out["bulge_re_arcsec"] = p.bulge_radius_fraction * half_light_arcsec
    out["disk_re_arcsec"] = p.disk_radius_fraction * half_light_arcsec

    cos_inclination = rng.random(n)
    thickness = p.disk_intrinsic_thickness
    out["disk_axis_ratio"] = np.sqrt(cos_inclination**2 * (1 - thickness**2) + thickness**2)
    out["bulge_axis_ratio"] = rng.uniform(*p.bulge_axis_ratio_range, n)
    out["position_angle"] = rng.uniform(0.0, np.pi, n)
    face_on_av = np.where(red, p.red_disk_av_face_on, p.blue_disk_av_face_on) * np.exp(
        p.disk_av_lognormal_sigma * rng.standard_normal(n))
    out["disk_av"] = face_on_av * (
        1.0 - p.disk_av_inclination_slope * np.log10(np.maximum(cos_inclination, 0.05)))
    return out
