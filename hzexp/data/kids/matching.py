"""Label KiDS galaxies with GAMA spectroscopic redshifts (paper 2.3).

The spectroscopic catalogue (GAMA DR4 style: RA, DEC, Z, NQ; other spellings through the
same `column_map` as the photometry) is cut to secure redshifts, NQ >= 3 and z > 0.001, and
to the dataset contract's z range (z < 1.5). Each KiDS galaxy takes its nearest spectrum
within the match radius (1" in the paper), and each spectrum labels at most one galaxy: when
two galaxies claim the same spectrum the nearer keeps it and the other stays unlabelled
(no fall-back to its second-nearest spectrum, which would pair it with an object that is
closer to another galaxy).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
import pandas as pd
from astropy.coordinates import SkyCoord

from hzexp.data.kids.catalogue import column_names, read_table, resolve_columns
from hzexp.data.store import Z_SPEC_RANGE, DatasetError

SPEC_COLUMNS = ("RA", "DEC", "Z", "NQ")
MIN_NQ = 3
MIN_Z = 0.001


@dataclass(frozen=True)
class SpecCounts:
    """How many spectra were read and why some were not used for matching."""

    read: int
    low_quality: int
    z_too_low: int
    z_outside_contract: int

    @property
    def usable(self) -> int:
        return self.read - self.low_quality - self.z_too_low - self.z_outside_contract


def check_spec_columns(path: Path, column_map: dict[str, str]) -> dict[str, str]:
    """Check the spectroscopic file has every needed column; return {GAMA name: file name}."""
    return resolve_columns(column_names(path), SPEC_COLUMNS, column_map, str(path))


def read_spectra(path: Path, column_map: dict[str, str]) -> tuple[pd.DataFrame, SpecCounts]:
    """Secure spectra (columns ra, dec, z) and the counts of the quality cuts, applied in order."""
    resolved = check_spec_columns(path, column_map)
    raw = read_table(path, list(resolved.values()))
    ra, dec, z, nq = (pd.to_numeric(raw[resolved[c]]).to_numpy(dtype=float) for c in SPEC_COLUMNS)
    secure = nq >= MIN_NQ
    above = secure & (z > MIN_Z)
    inside = above & (z < Z_SPEC_RANGE[1])
    counts = SpecCounts(read=len(raw), low_quality=int((~secure).sum()),
                        z_too_low=int((secure & ~above).sum()),
                        z_outside_contract=int((above & ~inside).sum()))
    return pd.DataFrame({"ra": ra[inside], "dec": dec[inside], "z": z[inside]}), counts


@dataclass(frozen=True)
class Matches:
    """Per galaxy: the matched spectroscopic z (NaN if none) and the separation in arcsec."""

    z_spec: np.ndarray
    separation_arcsec: np.ndarray
    lost_to_nearer: int

    @property
    def matched(self) -> np.ndarray:
        return np.isfinite(self.z_spec)


def match_spectra(ra: np.ndarray, dec: np.ndarray, spectra: pd.DataFrame,
                  radius_arcsec: float) -> Matches:
    """Nearest spectrum within `radius_arcsec` per galaxy, each spectrum used at most once."""
    if not radius_arcsec > 0:
        raise DatasetError(f"match_radius_arcsec must be > 0, got {radius_arcsec}")
    n = len(ra)
    z_spec = np.full(n, np.nan)
    separation = np.full(n, np.nan)
    if n == 0 or len(spectra) == 0:
        return Matches(z_spec, separation, 0)
    galaxies = SkyCoord(ra * u.deg, dec * u.deg)
    spec = SkyCoord(spectra["ra"].to_numpy() * u.deg, spectra["dec"].to_numpy() * u.deg)
    nearest, sep, _ = galaxies.match_to_catalog_sky(spec)
    sep_arcsec = sep.to_value(u.arcsec)
    claims = np.flatnonzero(sep_arcsec <= radius_arcsec)
    # Sort claims by (spectrum, separation, galaxy row): the first claim of each spectrum wins.
    order = np.lexsort((claims, sep_arcsec[claims], nearest[claims]))
    claims = claims[order]
    first = np.ones(len(claims), dtype=bool)
    first[1:] = nearest[claims][1:] != nearest[claims][:-1]
    winners = claims[first]
    z_spec[winners] = spectra["z"].to_numpy()[nearest[winners]]
    separation[winners] = sep_arcsec[winners]
    return Matches(z_spec, separation, int((~first).sum()))
