"""Per-sample photo-z statistics: the paper's Table 1 and the flat dict logged as metrics.

Both views select the same subsamples (all, clean = not masked, red, blue) from a frame of
test galaxies, so the table a user reads and the metrics runs are compared on cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from hzexp.evaluation._checks import finite_1d, require_columns, same_length
from hzexp.evaluation.metrics import point_metrics
from hzexp.evaluation.pdfs import PdfGrid, coverage, crps, pdf_metrics
from hzexp.evaluation.seeing import seeing_metrics

REQUIRED_COLUMNS = ("z_spec", "masked", "galaxy_type", "mag_r_auto")
#: r_auto bin edges (mag): KiDS-Bright is flux-limited at r < 20.
DEFAULT_R_EDGES = tuple(np.round(np.arange(14.0, 20.01, 0.5), 2))
#: z_phot bin edges: the Hybrid-z sigmoid output lies in (0, 1).
DEFAULT_ZPHOT_EDGES = tuple(np.round(np.arange(0.0, 1.01, 0.1), 2))
#: Metric keys logged per subsample (DESIGN.md "final test metrics").
LOGGED_KEYS = ("bias_mean", "dz_mean", "sigma_dz", "smad_dz", "outlier_frac", "r2")
#: Table 1's columns for methods with PDFs (NaN for the others).
PDF_TABLE_COLUMNS = ("crps", "coverage_68", "coverage_95")
#: The smallest sample whose PDF metrics are logged.
MIN_PDF_SAMPLE = 10
TABLE_COLUMNS = (
    "sample",
    "method",
    "size",
    "mean_z_spec",
    "mean_z_phot",
    "mean_dz",
    "mean_Dz",
    "sigma_Dz",
    "smad_Dz",
    "outlier_frac",
)


def _check_frame(frame: pd.DataFrame, z_phots: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validate the frame's columns and return each z_phot as a float array aligned with it."""
    require_columns(frame, REQUIRED_COLUMNS)
    arrays = {}
    for label, z_phot in z_phots.items():
        array = finite_1d(z_phot, f"z_phot of {label!r}")
        same_length(frame=frame, **{f"z_phot of {label!r}": array})
        arrays[label] = array
    return arrays


def _subsamples(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Boolean selections of the paper's four samples; a null galaxy_type is neither colour."""
    galaxy_type = frame["galaxy_type"]
    return {
        "all": np.ones(len(frame), dtype=bool),
        "clean": ~frame["masked"].to_numpy(dtype=bool),
        "red": galaxy_type.eq("red").fillna(False).to_numpy(dtype=bool),
        "blue": galaxy_type.eq("blue").fillna(False).to_numpy(dtype=bool),
    }


def _bins(values: np.ndarray, edges: Sequence[float], name: str, decimals: int):
    """(label, selection) for each half-open bin [lo, hi) of `values`."""
    return [
        (f"{name} in [{lo:.{decimals}f}, {hi:.{decimals}f})", (values >= lo) & (values < hi))
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    ]


def _table_row(sample: str, method: str, z_spec: np.ndarray, z_phot: np.ndarray,
               pdf: tuple[np.ndarray, PdfGrid] | None = None) -> dict:
    """One row; with `pdf` (the method's PDFs of these galaxies and their grid) also the
    PDF columns, else those are NaN (a method without PDFs, or a table without them)."""
    stats = point_metrics(z_spec, z_phot)
    pdf_columns = {name: np.nan for name in PDF_TABLE_COLUMNS}
    if pdf is not None:
        pdfs, grid = pdf
        pdf_columns = {"crps": float(np.mean(crps(pdfs, grid, z_spec))),
                       "coverage_68": coverage(pdfs, grid, z_spec, 0.6827),
                       "coverage_95": coverage(pdfs, grid, z_spec, 0.9545)}
    return {
        "sample": sample,
        "method": method,
        "size": stats["n"],
        "mean_z_spec": float(z_spec.mean()),
        "mean_z_phot": float(z_phot.mean()),
        "mean_dz": stats["bias_mean"],
        "mean_Dz": stats["dz_mean"],
        "sigma_Dz": stats["sigma_dz"],
        "smad_Dz": stats["smad_dz"],
        "outlier_frac": stats["outlier_frac"],
        **pdf_columns,
    }


def photoz_table(
    frame: pd.DataFrame,
    methods: Mapping[str, np.ndarray],
    r_edges: Sequence[float] = DEFAULT_R_EDGES,
    zphot_edges: Sequence[float] = DEFAULT_ZPHOT_EDGES,
    pdfs: Mapping[str, np.ndarray] | None = None,
    grid: PdfGrid | None = None,
) -> pd.DataFrame:
    """Table 1 of the paper, extended with bins of r_auto and of z_phot, and with the PDF
    columns `crps, coverage_68, coverage_95` when `pdfs` maps methods (a subset of
    `methods`) to their PDFs on `grid`.

    `frame` holds the test galaxies (columns `z_spec`, `masked`, `galaxy_type`,
    `mag_r_auto`); `methods` maps a method label to its z_phot array aligned with `frame`.
    One block of rows per sample, one row per method within a block, in this order:
    all, clean, red, blue, "r in [lo, hi)" bins of `mag_r_auto`, "z_phot in [lo, hi)" bins
    (of each method's own z_phot, so sizes differ between methods there). Bins are
    half-open; galaxies outside all edges appear only in the first four blocks. A sample
    with no galaxies for a method is left out rather than filled with NaN.
    """
    z_phots = _check_frame(frame, methods)
    z_spec = frame["z_spec"].to_numpy(dtype=float)
    pdfs = dict(pdfs or {})

    def row(sample: str, method: str, selected: np.ndarray) -> dict:
        pdf = (pdfs[method][selected], grid) if method in pdfs else None
        return _table_row(sample, method, z_spec[selected], z_phots[method][selected], pdf)

    shared_samples = list(_subsamples(frame).items()) + _bins(
        frame["mag_r_auto"].to_numpy(dtype=float), r_edges, "r", decimals=1
    )
    rows = [
        row(sample, method, selected)
        for sample, selected in shared_samples
        for method in z_phots
        if selected.any()
    ]
    zphot_bins_by_method = {
        method: _bins(z_phot, zphot_edges, "z_phot", decimals=2)
        for method, z_phot in z_phots.items()
    }
    for index in range(len(zphot_edges) - 1):
        for method in z_phots:
            sample, selected = zphot_bins_by_method[method][index]
            if selected.any():
                rows.append(row(sample, method, selected))
    columns = [*TABLE_COLUMNS, *PDF_TABLE_COLUMNS] if pdfs else list(TABLE_COLUMNS)
    return pd.DataFrame(rows, columns=columns)


def subsample_pdf_metrics(frame: pd.DataFrame, pdf, grid: PdfGrid,
                          prefix: str = "") -> dict[str, float]:
    """The PDF metrics (`pdfs.pdf_metrics`) of the same samples as `subsample_metrics`, with
    the same keys (`crps`, `clean_pit_ks`, `baseline_knn_coverage_68`, ...). A sample of
    fewer than `MIN_PDF_SAMPLE` galaxies is left out: its PIT statistics would be noise."""
    require_columns(frame, REQUIRED_COLUMNS)
    pdf = np.asarray(pdf)
    same_length(frame=frame, pdf=pdf)
    z_spec = frame["z_spec"].to_numpy(dtype=float)
    metrics: dict[str, float] = {}
    for sample, selected in _subsamples(frame).items():
        if selected.sum() >= MIN_PDF_SAMPLE:
            key_prefix = prefix if sample == "all" else f"{prefix}{sample}_"
            metrics.update({f"{key_prefix}{name}": value for name, value
                            in pdf_metrics(pdf[selected], grid, z_spec[selected]).items()})
    return metrics


def subsample_metrics(frame: pd.DataFrame, z_phot, prefix: str = "") -> dict[str, float]:
    """Flat metric dict for MLflow: the whole test set plus `clean_`, `red_`, `blue_` samples.

    Keys are `{prefix}{sample_}{name}` with name in `bias_mean dz_mean sigma_dz smad_dz
    outlier_frac r2 n_test` (DESIGN.md) and no sample part for the whole set, e.g.
    `smad_dz`, `clean_smad_dz`, or with prefix="baseline_" `baseline_red_n_test`. An empty
    subsample contributes only its `n_test` = 0, so a missing colour is visible but no
    NaN metrics are logged. With seeing in the frame, the bias in bins of seeing
    (`hzexp.evaluation.seeing.seeing_metrics`) is added.
    """
    z_phot = _check_frame(frame, {"z_phot": z_phot})["z_phot"]
    z_spec = frame["z_spec"].to_numpy(dtype=float)
    metrics: dict[str, float] = {}
    for sample, selected in _subsamples(frame).items():
        key_prefix = prefix if sample == "all" else f"{prefix}{sample}_"
        n_selected = int(selected.sum())
        metrics[f"{key_prefix}n_test"] = n_selected
        if n_selected:
            stats = point_metrics(z_spec[selected], z_phot[selected])
            metrics.update({f"{key_prefix}{name}": stats[name] for name in LOGGED_KEYS})
    metrics.update(seeing_metrics(frame, z_phot, prefix))
    return metrics
