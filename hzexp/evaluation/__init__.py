"""Evaluation of photo-z models: plain functions on numpy arrays and pandas frames.

- `metrics`: dz, Dz, SMAD, the point statistics of paper eqs. 3-9, Gaussian and
  generalised-Lorentzian (eq. 10) fits to the Dz distribution
- `tables`: the paper's Table 1 per sample / magnitude / z_phot bin, and the flat
  per-subsample metric dict that runs log
- `figures`: plotly versions of the paper's Figs. 3-7
- `baselines`: magnitude-only MLP and kNN baselines on the same split

Nothing here talks to MLflow, Optuna or TensorFlow. The package imports no submodule, so
`from hzexp.evaluation.metrics import smad` does not pull in plotly or scikit-learn.
"""
