"""Template x band x redshift flux table, built once and cached on disk.

Synthetic photometry of every galaxy would integrate 4000-point spectra through 9 curves;
instead the per-template band fluxes are tabulated on a fine redshift grid and galaxies
interpolate (linearly in flux between neighbouring templates, which is mixing their spectra,
and linearly in redshift). The table is cached as `.npz` in `$HZEXP_CACHE_DIR` (default
`~/.cache/hzexp`), keyed by a hash of the templates, curves and grid, so any change of inputs
builds a new table; it is written to a temporary file and renamed, so concurrent runs never
read a half-written cache.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hzexp._io import atomic_file
from hzexp.data.mock.sed import FilterCurve, ab_magnitudes, load_survey_filters, load_templates

#: 0 .. 1.2 in steps of 0.0025: linear interpolation errors stay below 0.005 mag.
REDSHIFT_GRID = np.round(np.arange(0.0, 1.2001, 0.0025), 6)
#: Band of the luminosity function (rest-frame SDSS r): its index in the survey filters.
REST_FRAME_BAND = 2
CACHE_ENV = "HZEXP_CACHE_DIR"
_TABLE_FORMAT = "hzexp-mock-flux-table/1"


@dataclass(frozen=True)
class FluxTable:
    """Band fluxes per unit rest-frame r luminosity of each template.

    `flux[t, b, k]` = 10^(-0.4 (m_b(t, z_k) - M_r(t))), so that a galaxy of absolute
    magnitude M_r at redshift z has apparent flux 10^(-0.4 (M_r + DM(z))) * flux[t, b, z]:
    colours and K-corrections in one number. `effective_wavelength_a` places bands in the
    rest frame for the attenuation and SED-tilt terms.
    """

    redshifts: np.ndarray
    flux: np.ndarray
    effective_wavelength_a: np.ndarray

    def interpolate(self, sed_type: np.ndarray, z: np.ndarray) -> np.ndarray:
        """(n, n_bands) fluxes for continuous template indices `sed_type` at redshifts `z`."""
        n_templates = self.flux.shape[0]
        sed_type = np.clip(np.asarray(sed_type, float), 0.0, n_templates - 1.0)
        lower_type = np.minimum(sed_type.astype(int), n_templates - 2)
        type_weight = (sed_type - lower_type)[:, None]
        z_position = np.interp(z, self.redshifts, np.arange(len(self.redshifts)))
        lower_z = np.minimum(z_position.astype(int), len(self.redshifts) - 2)
        z_weight = (z_position - lower_z)[:, None]

        def at(t, k):
            return self.flux[t, :, k]  # fancy indexing -> (n, n_bands)

        low_type = at(lower_type, lower_z) * (1 - z_weight) + at(lower_type, lower_z + 1) * z_weight
        high_type = (at(lower_type + 1, lower_z) * (1 - z_weight)
                     + at(lower_type + 1, lower_z + 1) * z_weight)
        return low_type * (1 - type_weight) + high_type * type_weight


def build_flux_table(curves: Sequence[FilterCurve], rest_frame_curve: FilterCurve,
                     redshifts: np.ndarray = REDSHIFT_GRID) -> FluxTable:
    """Tabulate the templates through `curves`, normalised in `rest_frame_curve` at z = 0.

    Any set of curves can be used (the tests pass the real KiDS/VIKING ones); the rest-frame
    normaliser stays the luminosity-function band so fluxes from different curve sets refer
    to the same galaxies.
    """
    wavelength, flux_lambda = load_templates()
    observed = ab_magnitudes(wavelength, flux_lambda, curves, redshifts)
    rest_r = ab_magnitudes(wavelength, flux_lambda, [rest_frame_curve], np.zeros(1))[:, 0, 0]
    flux = 10.0 ** (-0.4 * (observed - rest_r[:, None, None]))
    effective = np.array([c.effective_wavelength_a for c in curves])
    return FluxTable(np.asarray(redshifts, float), flux, effective)


def cache_dir() -> Path:
    """`$HZEXP_CACHE_DIR` if set, else `~/.cache/hzexp`."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "hzexp")


def _inputs_key(curves: Sequence[FilterCurve]) -> str:
    wavelength, flux_lambda = load_templates()
    digest = hashlib.sha256(_TABLE_FORMAT.encode())
    for array in (wavelength, flux_lambda, REDSHIFT_GRID):
        digest.update(np.ascontiguousarray(array, "<f8").tobytes())
    for curve in curves:
        digest.update(curve.name.encode())
        digest.update(np.ascontiguousarray(curve.wavelength_a, "<f8").tobytes())
        digest.update(np.ascontiguousarray(curve.transmission, "<f8").tobytes())
    return digest.hexdigest()[:20]


def survey_flux_table() -> FluxTable:
    """The mock's own table (SDSS ugri + VISTA ZYJHKs), from the cache or built and cached."""
    curves = load_survey_filters()
    path = cache_dir() / f"mock_flux_table_{_inputs_key(curves)}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return FluxTable(stored["redshifts"], stored["flux"], stored["effective_wavelength_a"])
    table = build_flux_table(curves, curves[REST_FRAME_BAND])
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, redshifts=table.redshifts, flux=table.flux,
                 effective_wavelength_a=table.effective_wavelength_a)
    return table
