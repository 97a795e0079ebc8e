"""Evaluation of photo-z models: metrics, Table-1 statistics, figures and baselines.

Plain functions on numpy arrays and pandas frames; nothing here talks to MLflow, Optuna or
TensorFlow, so the caller decides what gets logged where.
"""

from hzexp.evaluation.baselines import fit_knn_baseline, fit_mlp_baseline, magnitude_features
from hzexp.evaluation.figures import (
    dz_histogram,
    loss_curves,
    nz_comparison,
    residual_panels,
    residuals_vs,
    running_stat,
    zphot_vs_zspec,
)
from hzexp.evaluation.metrics import (
    Dz,
    dz,
    fit_dz_distribution,
    gaussian_pdf,
    lorentzian_pdf,
    point_metrics,
    smad,
)
from hzexp.evaluation.tables import photoz_table, subsample_metrics

__all__ = [
    "Dz",
    "dz",
    "dz_histogram",
    "fit_dz_distribution",
    "fit_knn_baseline",
    "fit_mlp_baseline",
    "gaussian_pdf",
    "loss_curves",
    "lorentzian_pdf",
    "magnitude_features",
    "nz_comparison",
    "photoz_table",
    "point_metrics",
    "residual_panels",
    "residuals_vs",
    "running_stat",
    "smad",
    "subsample_metrics",
    "zphot_vs_zspec",
]
