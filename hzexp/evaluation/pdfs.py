"""Photo-z PDFs on a fixed redshift grid: summaries, calibration and the field's metrics.

A PDF here is what Hybrid-z's PDF head gives: the probabilities of `n_bins` equal redshift
bins on [0, z_max] (`PdfGrid`), uniform inside each bin, so its CDF is piecewise linear and
every summary, PIT value and CRPS below is exact for that histogram rather than sampled.
The PIT goodness-of-fit statistics come from `qp` (LSST-DESC's PDF library, which RAIL
uses), so hzexp's numbers mean what RAIL's do; CRPS, coverage and the CDE loss, which qp
either lacks or computes on a resampled grid, are written out here.

Pure numpy on (N, n_bins) arrays, like `metrics`: training runs, predictions and
benchmarks compute the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize

from hzexp.evaluation._checks import finite_1d, same_length

#: Summary columns of a PDF, in output order: the median (the point estimate every point
#: metric, the search objective and Table 1 use), the mode, half the central 68% interval
#: and that interval's ends.
SUMMARY_COLUMNS = ("z_phot", "z_phot_mode", "z_phot_err", "z_phot_lo68", "z_phot_hi68")
#: PIT values below this or above 1 - this are outliers (RAIL's convention).
PIT_OUTLIER_EPS = 1e-4
#: Interval levels of the coverage curve: expected vs observed fraction inside.
COVERAGE_LEVELS = np.round(np.arange(0.1, 0.95, 0.1), 2)


@dataclass(frozen=True)
class PdfGrid:
    """`n_bins` equal redshift bins on [0, z_max]."""

    z_max: float
    n_bins: int

    @property
    def width(self) -> float:
        return self.z_max / self.n_bins

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(0.0, self.z_max, self.n_bins + 1)

    @property
    def centres(self) -> np.ndarray:
        return (self.edges[:-1] + self.edges[1:]) / 2


def _probabilities(pdf, grid: PdfGrid) -> np.ndarray:
    """`pdf` as (N, n_bins) float64 bin probabilities, renormalised (float32 softmax sums
    drift by ~1e-7)."""
    p = np.asarray(pdf, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != grid.n_bins:
        raise ValueError(f"PDFs must have shape (N, {grid.n_bins}), got {p.shape}")
    if np.any(~np.isfinite(p)) or np.any(p < 0):
        raise ValueError("PDFs must be finite and non-negative")
    total = p.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("every PDF needs positive total probability")
    return p / total


def _cdf_at_edges(p: np.ndarray) -> np.ndarray:
    """(N, n_bins + 1): the CDF at every bin edge, 0 at the first and 1 at the last."""
    return np.concatenate([np.zeros((len(p), 1)), np.minimum(np.cumsum(p, axis=1), 1.0)],
                          axis=1)


def quantiles(pdf, grid: PdfGrid, q: float) -> np.ndarray:
    """The redshift below which each PDF holds probability `q` (0 < q < 1)."""
    p = _probabilities(pdf, grid)
    cdf = _cdf_at_edges(p)
    # the first bin whose right-edge CDF reaches q; empty bins are never chosen
    k = np.argmax(cdf[:, 1:] >= q - 1e-12, axis=1)
    rows = np.arange(len(p))
    inside = (q - cdf[rows, k]) / np.where(p[rows, k] > 0, p[rows, k], 1.0)
    return grid.edges[k] + np.clip(inside, 0.0, 1.0) * grid.width


def summaries(pdf, grid: PdfGrid) -> pd.DataFrame:
    """The `SUMMARY_COLUMNS` of each PDF, float32 like the point model's `z_phot`."""
    p = _probabilities(pdf, grid)
    lo, median, hi = (quantiles(p, grid, q) for q in (0.15865, 0.5, 0.84135))
    mode = grid.centres[np.argmax(p, axis=1)]
    values = (median, mode, (hi - lo) / 2, lo, hi)
    return pd.DataFrame({name: v.astype(np.float32) for name, v in zip(SUMMARY_COLUMNS, values)})


def pit(pdf, grid: PdfGrid, z_spec) -> np.ndarray:
    """Probability integral transform: each PDF's CDF at its galaxy's z_spec (0 below the
    grid, 1 above it)."""
    p = _probabilities(pdf, grid)
    z = finite_1d(z_spec, "z_spec")
    same_length(pdf=p, z_spec=z)
    cdf = _cdf_at_edges(p)
    k = np.clip(np.floor(z / grid.width).astype(int), 0, grid.n_bins - 1)
    rows = np.arange(len(p))
    inside = np.clip((z - grid.edges[k]) / grid.width, 0.0, 1.0)
    return np.clip(cdf[rows, k] + p[rows, k] * inside, 0.0, 1.0)


def crps(pdf, grid: PdfGrid, z_spec) -> np.ndarray:
    """Continuous ranked probability score per galaxy, `int (F(z) - H(z - z_spec))^2 dz`,
    exact for the histogram PDF (its CDF is linear in each bin, so each bin's integral of
    F^2 or (1 - F)^2 is Simpson's rule), including the stretch between the grid and a z_spec
    outside it."""
    p = _probabilities(pdf, grid)
    z = finite_1d(z_spec, "z_spec")
    same_length(pdf=p, z_spec=z)
    cdf = _cdf_at_edges(p)
    a, b = cdf[:, :-1], cdf[:, 1:]
    below = grid.width / 3 * (a * a + a * b + b * b)              # int F^2 over a bin
    above = grid.width / 3 * ((1 - a) ** 2 + (1 - a) * (1 - b) + (1 - b) ** 2)
    left, right = grid.edges[:-1], grid.edges[1:]
    total = (np.where(right <= z[:, None], below, 0.0).sum(axis=1)
             + np.where(left >= z[:, None], above, 0.0).sum(axis=1))
    k = np.floor(z / grid.width).astype(int)
    inside = (k >= 0) & (k < grid.n_bins)
    if np.any(inside):
        rows, kk = np.nonzero(inside)[0], k[inside]
        start, f_start = left[kk], a[rows, kk]
        f_z = f_start + p[rows, kk] * (z[rows] - start) / grid.width
        f_end = b[rows, kk]
        total[rows] += ((z[rows] - start) / 3 * (f_start ** 2 + f_start * f_z + f_z ** 2)
                        + (right[kk] - z[rows]) / 3
                        * ((1 - f_z) ** 2 + (1 - f_z) * (1 - f_end) + (1 - f_end) ** 2))
    total += np.maximum(z - grid.z_max, 0.0) + np.maximum(-z, 0.0)
    return total


def coverage(pdf, grid: PdfGrid, z_spec, level: float) -> float:
    """Fraction of galaxies whose z_spec lies inside their central `level` interval (for a
    calibrated PDF, `level` itself)."""
    values = pit(pdf, grid, z_spec)
    half = level / 2
    return float(np.mean((values >= 0.5 - half) & (values <= 0.5 + half)))


def cde_loss(pdf, grid: PdfGrid, z_spec) -> float:
    """Conditional density estimation loss, `E[int p(z)^2 dz] - 2 E[p(z_spec)]` (Izbicki &
    Lee 2017, as RAIL reports it; lower is better)."""
    p = _probabilities(pdf, grid)
    z = finite_1d(z_spec, "z_spec")
    same_length(pdf=p, z_spec=z)
    density = p / grid.width
    k = np.floor(z / grid.width).astype(int)
    on_grid = (k >= 0) & (k < grid.n_bins)
    at_truth = np.where(on_grid, density[np.arange(len(p)), np.clip(k, 0, grid.n_bins - 1)], 0)
    return float(np.mean((density ** 2).sum(axis=1) * grid.width) - 2 * np.mean(at_truth))


def temper(pdf, grid: PdfGrid, temperature: float) -> np.ndarray:
    """PDFs widened (temperature > 1) or sharpened (< 1): `p^(1/T)` renormalised, which for
    a softmax head is `softmax(logits / T)`."""
    p = _probabilities(pdf, grid)
    log_p = np.log(np.maximum(p, 1e-300)) / temperature
    tempered = np.exp(log_p - log_p.max(axis=1, keepdims=True))
    return tempered / tempered.sum(axis=1, keepdims=True)


def fit_temperature(pdf, grid: PdfGrid, z_spec, bounds: tuple[float, float] = (0.02, 50.0)
                    ) -> float:
    """The temperature that makes the PIT of `pdf` against `z_spec` closest to uniform (the
    least Cramer-von Mises distance): one number fitted on the validation split, applied to
    every later prediction. The PIT's uniformity is what calibration means, and is what the
    coverage and PIT metrics judge; a CRPS-optimal temperature also trades calibration for
    sharpness (on the quick mock it left 68% intervals holding 78% of the truths)."""
    p = _probabilities(pdf, grid)
    z = finite_1d(z_spec, "z_spec")
    expected = (2 * np.arange(1, len(z) + 1) - 1) / (2 * len(z))

    def distance(log_t: float) -> float:
        return float(np.sum((np.sort(pit(temper(p, grid, np.exp(log_t)), grid, z))
                             - expected) ** 2))

    result = optimize.minimize_scalar(distance, bounds=np.log(bounds), method="bounded",
                                      options={"xatol": 1e-3})
    return float(np.exp(result.x))


def qp_ensemble(pdf, grid: PdfGrid):
    """The PDFs as a `qp` histogram ensemble (densities on the bin edges), the form RAIL's
    estimators return and its evaluators take."""
    import qp

    return qp.Ensemble(qp.hist, data={"bins": grid.edges,
                                      "pdfs": _probabilities(pdf, grid) / grid.width})


def pit_statistics(pdf, grid: PdfGrid, z_spec) -> dict[str, float]:
    """KS, CvM and Anderson-Darling statistics of the PIT against the uniform distribution,
    by qp's PIT metric class (as RAIL reports them), and the PIT outlier fraction counted on
    its PIT values (qp's own outlier rate is read off 100 quantiles)."""
    import warnings

    from qp.metrics.pit import PIT

    z = finite_1d(z_spec, "z_spec")
    with warnings.catch_warnings():
        # scipy's anderson_ksamp notes that its p-value is capped; only the statistic is kept
        warnings.simplefilter("ignore", UserWarning)
        # qp's PIT quantile grid (100 points by default) no finer than the sample
        result = PIT(qp_ensemble(pdf, grid), z, eval_grid=np.linspace(0, 1, min(100, len(z))))
        values = np.asarray(result.pit_samps, dtype=np.float64).reshape(-1)
        statistics = {"pit_ks": float(result.evaluate_PIT_KS().statistic),
                      "pit_cvm": float(result.evaluate_PIT_CvM().statistic),
                      "pit_ad": float(result.evaluate_PIT_anderson_ksamp().statistic)}
    outliers = (values < PIT_OUTLIER_EPS) | (values > 1 - PIT_OUTLIER_EPS)
    return {**statistics, "pit_outlier_frac": float(np.mean(outliers))}


def pdf_metrics(pdf, grid: PdfGrid, z_spec) -> dict[str, float]:
    """Every PDF metric a run logs (names without prefix): PIT statistics, mean CRPS, 68%
    and 95% coverage, CDE loss."""
    return {**pit_statistics(pdf, grid, z_spec), "crps": float(np.mean(crps(pdf, grid, z_spec))),
            "coverage_68": coverage(pdf, grid, z_spec, 0.6827),
            "coverage_95": coverage(pdf, grid, z_spec, 0.9545),
            "cde_loss": cde_loss(pdf, grid, z_spec)}
