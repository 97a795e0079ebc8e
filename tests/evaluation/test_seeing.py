"""Bias in bins of seeing: hand-checked values, the figure, and nothing without seeing."""

import numpy as np
import pandas as pd
import pytest

from hzexp.evaluation.metrics import smad
from hzexp.evaluation.seeing import seeing_bin_names, seeing_figure, seeing_metrics


def frame_with_seeing_bias(n: int = 400, slope: float = 0.02, seed: int = 0):
    """z_phot whose Dz grows by `slope` per arcsec of r-band FWHM above 0.7"."""
    rng = np.random.default_rng(seed)
    z_spec = rng.uniform(0.05, 0.6, n)
    fwhm = rng.uniform(0.5, 1.1, n)
    residual = slope * (fwhm - 0.7) + rng.normal(0, 0.005, n)
    frame = pd.DataFrame({"z_spec": z_spec, "psf_fwhm_r": fwhm})
    return frame, z_spec + residual * (1 + z_spec), residual


def test_bin_metrics_are_the_mean_and_smad_of_dz_in_each_bin():
    frame, z_phot, residual = frame_with_seeing_bias()
    metrics = seeing_metrics(frame, z_phot, prefix="val_")
    assert seeing_bin_names() == ["lt0.60", "0.60-0.70", "0.70-0.80", "0.80-0.90",
                                  "0.90-1.00", "ge1.00"]
    inside = (frame["psf_fwhm_r"] >= 0.8) & (frame["psf_fwhm_r"] < 0.9)
    assert metrics["val_seeing_r_0.80-0.90_n"] == inside.sum()
    assert metrics["val_seeing_r_0.80-0.90_dz_mean"] == pytest.approx(residual[inside].mean())
    assert metrics["val_seeing_r_0.80-0.90_smad_dz"] == pytest.approx(smad(residual[inside]))
    assert metrics["val_seeing_r_dz_slope"] == pytest.approx(0.02, abs=0.003)
    assert sum(metrics[f"val_seeing_r_{b}_n"] for b in seeing_bin_names()) == len(frame)


def test_a_sparse_bin_logs_its_count_only_and_unknown_seeing_logs_nothing():
    frame, z_phot, _ = frame_with_seeing_bias()
    frame.loc[frame["psf_fwhm_r"] < 0.6, "psf_fwhm_r"] = np.nan
    frame.loc[frame.index[:5], "psf_fwhm_r"] = 0.55
    metrics = seeing_metrics(frame, z_phot)
    assert metrics["seeing_r_lt0.60_n"] == 5 and "seeing_r_lt0.60_dz_mean" not in metrics
    unknown = frame.assign(psf_fwhm_r=np.nan)
    assert seeing_metrics(unknown, z_phot) == {} and seeing_figure(unknown, z_phot) is None
    assert seeing_metrics(frame.drop(columns="psf_fwhm_r"), z_phot) == {}


def test_the_figure_plots_dz_against_seeing_with_its_running_median():
    frame, z_phot, _ = frame_with_seeing_bias()
    figure = seeing_figure(frame, z_phot)
    names = {trace.name for trace in figure.data}
    assert "running median" in names
    assert figure.layout.xaxis.title.text == "r-band PSF FWHM [arcsec]"
