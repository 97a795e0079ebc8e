"""Photo-z bias against seeing: metrics in bins of r-band PSF FWHM, and their figure.

The images carry the seeing, the GAaP magnitudes (PSF-homogenised) barely do: a model that
reads images can drift with seeing where a magnitude-only one does not. Every run logs the
mean Dz and SMAD(Dz) in fixed bins of the r-band PSF FWHM (the band KiDS observes in its
best seeing, and whose bins are comparable from run to run), and the least-squares slope of
Dz against it; a catalogue without seeing (`psf_fwhm_r` unknown) logs none of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hzexp.evaluation.figures import residuals_vs
from hzexp.evaluation.metrics import Dz, smad

SEEING_COLUMN = "psf_fwhm_r"
#: r-band PSF FWHM bin edges (arcsec): KiDS DR4's r-band seeing runs ~0.5-1.0".
SEEING_EDGES = (0.0, 0.6, 0.7, 0.8, 0.9, 1.0, np.inf)
#: Fewest galaxies for a bin's metrics (its n is logged whatever it holds).
MIN_SEEING_BIN = 20


def seeing_bin_names() -> list[str]:
    """Metric name part of each bin: `lt0.60`, `0.60-0.70`, ..., `ge1.00`."""
    names = []
    for low, high in zip(SEEING_EDGES[:-1], SEEING_EDGES[1:]):
        if low == 0:
            names.append(f"lt{high:.2f}")
        elif np.isinf(high):
            names.append(f"ge{low:.2f}")
        else:
            names.append(f"{low:.2f}-{high:.2f}")
    return names


def seeing_metrics(frame: pd.DataFrame, z_phot: np.ndarray, prefix: str = "") -> dict[str, float]:
    """`{prefix}seeing_r_{bin}_n`, `..._dz_mean` (mean Dz) and `..._smad_dz` per bin, and
    `{prefix}seeing_r_dz_slope` (Dz per arcsec of r-band FWHM); {} without seeing."""
    if SEEING_COLUMN not in frame:
        return {}
    fwhm = frame[SEEING_COLUMN].to_numpy(dtype=float)
    known = np.isfinite(fwhm)
    if known.sum() < MIN_SEEING_BIN:
        return {}
    residuals = Dz(frame["z_spec"].to_numpy(dtype=float), z_phot)
    metrics: dict[str, float] = {}
    bins = np.digitize(fwhm, SEEING_EDGES[1:-1])
    for index, name in enumerate(seeing_bin_names()):
        selected = known & (bins == index)
        key = f"{prefix}seeing_r_{name}"
        metrics[f"{key}_n"] = int(selected.sum())
        if selected.sum() >= MIN_SEEING_BIN:
            metrics[f"{key}_dz_mean"] = float(np.mean(residuals[selected]))
            metrics[f"{key}_smad_dz"] = smad(residuals[selected])
    if np.ptp(fwhm[known]) > 0:
        metrics[f"{prefix}seeing_r_dz_slope"] = float(np.polyfit(fwhm[known],
                                                                 residuals[known], 1)[0])
    return metrics


def seeing_figure(frame: pd.DataFrame, z_phot: np.ndarray) -> go.Figure | None:
    """Dz against r-band PSF FWHM with the running median ± SMAD; None without seeing."""
    if SEEING_COLUMN not in frame or frame[SEEING_COLUMN].notna().sum() < MIN_SEEING_BIN:
        return None
    residuals = Dz(frame["z_spec"].to_numpy(dtype=float), z_phot)
    return residuals_vs(frame[SEEING_COLUMN].to_numpy(dtype=float), residuals,
                        "r-band PSF FWHM [arcsec]", running_bins=10)
