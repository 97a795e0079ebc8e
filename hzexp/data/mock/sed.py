"""Galaxy SED templates, survey filter curves and synthetic AB photometry.

Templates: the CWW/Kinney set as extended by Benitez (2004) and shipped with BPZ
(`desc-bpz`: El, Sbc, Scd, Im, SB3, SB2 `_B2004a.sed`, wavelength in Angstrom, f_lambda),
ordered from old to star-forming so that a continuous type index can interpolate between
neighbours.

Filters: SDSS u,g,r,i (`sdss_?0`, airmass 1.3, photon response) stand in for OmegaCAM u,g,r,i
and the VISTA/VIRCAM Z,Y,J,H,Ks system responses (filter x detector x atmosphere, the
non-`_FILTER` variants) from `sedpy`. The test suite checks the mock magnitudes against the
real KiDS/VIKING curves with `ab_magnitudes`, which takes any (wavelength, transmission).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np
from astropy import constants as const
from astropy import units as u

TEMPLATE_FILES = ("El_B2004a.sed", "Sbc_B2004a.sed", "Scd_B2004a.sed", "Im_B2004a.sed",
                  "SB3_B2004a.sed", "SB2_B2004a.sed")
SEDPY_FILTER_NAMES = ("sdss_u0", "sdss_g0", "sdss_r0", "sdss_i0", "vista_vircam_Z",
                      "vista_vircam_Y", "vista_vircam_J", "vista_vircam_H", "vista_vircam_Ks")
#: Rest-frame wavelength grid (Angstrom) the templates are resampled on: log-spaced so the
#: relative resolution is the same in the UV and the NIR; 500 A covers u at z = 0.9 and the
#: templates end at 25600 A, beyond the Ks red edge at z = 0.
TEMPLATE_WAVELENGTH_A = np.geomspace(500.0, 25600.0, 4000)

_SPEED_OF_LIGHT_A_PER_S = const.c.to_value(u.AA / u.s)


@dataclass(frozen=True)
class FilterCurve:
    """A photon-counting response: wavelength (Angstrom) and transmission (any scale)."""

    name: str
    wavelength_a: np.ndarray
    transmission: np.ndarray

    @property
    def effective_wavelength_a(self) -> float:
        """Response-weighted mean wavelength, used to place a band in the rest frame."""
        return float(np.trapezoid(self.wavelength_a * self.transmission, self.wavelength_a)
                     / np.trapezoid(self.transmission, self.wavelength_a))


def load_templates() -> tuple[np.ndarray, np.ndarray]:
    """(wavelength_a, f_lambda) with f_lambda of shape (n_templates, n_wavelengths).

    Each template is resampled onto `TEMPLATE_WAVELENGTH_A` and normalised to unit mean, so
    the array does not depend on the arbitrary units of the files.
    """
    sed_dir = resources.files("desc_bpz") / "data_files" / "SED"
    fluxes = []
    for name in TEMPLATE_FILES:
        wavelength, flux = np.loadtxt(sed_dir / name, unpack=True, usecols=(0, 1))
        resampled = np.interp(TEMPLATE_WAVELENGTH_A, wavelength, flux)
        fluxes.append(resampled / resampled.mean())
    return TEMPLATE_WAVELENGTH_A.copy(), np.array(fluxes)


def load_survey_filters() -> list[FilterCurve]:
    """The nine mock bands u,g,r,i,Z,Y,J,H,Ks (see the module docstring for the choice)."""
    from sedpy import observate  # imported here: sedpy reads its filter files on import

    curves = []
    for sedpy_filter in observate.load_filters(list(SEDPY_FILTER_NAMES)):
        curves.append(FilterCurve(sedpy_filter.name, np.asarray(sedpy_filter.wavelength, float),
                                  np.asarray(sedpy_filter.transmission, float)))
    return curves


def ab_magnitudes(wavelength_a: np.ndarray, flux_lambda: np.ndarray,
                  curves: Sequence[FilterCurve], redshifts: np.ndarray) -> np.ndarray:
    """AB magnitudes (n_templates, n_bands, n_redshifts) of rest-frame templates.

    A template is a luminosity density L_lambda (arbitrary units); at redshift z the observed
    f_lambda(lambda) = L_lambda(lambda / (1+z)) / (1+z), i.e. the distance modulus (with the
    luminosity distance) is left out, so m(z) - m(0) in one band is the K-correction in the
    convention of Hogg et al. (2002). Photon-counting bands: <f_nu> = int f_lambda T lambda
    dlambda / int T c/lambda dlambda. Light outside the template range counts as zero.
    """
    flux_lambda = np.atleast_2d(flux_lambda)
    redshifts = np.atleast_1d(np.asarray(redshifts, float))
    out = np.empty((flux_lambda.shape[0], len(curves), len(redshifts)))
    for band, curve in enumerate(curves):
        lam = curve.wavelength_a
        norm = np.trapezoid(curve.transmission * _SPEED_OF_LIGHT_A_PER_S / lam, lam)
        for iz, z in enumerate(redshifts):
            rest = lam / (1.0 + z)
            observed = np.array([np.interp(rest, wavelength_a, f, left=0.0, right=0.0)
                                 for f in flux_lambda]) / (1.0 + z)
            f_nu = np.trapezoid(observed * curve.transmission * lam, lam, axis=1) / norm
            out[:, band, iz] = -2.5 * np.log10(np.maximum(f_nu, 1e-300)) - 48.6
    return out
