"""Figures build, carry the expected traces and axis titles, serialise, and stay small."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from scipy import stats

from hzexp.evaluation.figures import (
    dz_histogram,
    loss_curves,
    nz_comparison,
    residual_panels,
    residuals_vs,
    running_stat,
    zphot_vs_zspec,
)


def _test_sample(n, seed=0):
    rng = np.random.default_rng(seed)
    z_spec = rng.uniform(0.02, 0.6, n)
    residual = stats.t.rvs(df=3.7, scale=0.013, size=n, random_state=seed)
    z_phot = z_spec + residual * (1 + z_spec)
    frame = pd.DataFrame(
        {
            "z_spec": z_spec,
            "mag_r_auto": rng.uniform(14, 20, n),
            "mag_u": rng.normal(21.0, 1.0, n),
            "mag_g": rng.normal(19.5, 0.5, n),
        }
    )
    frame.loc[::20, "mag_u"] = np.nan  # undetected in u
    return frame, z_spec, z_phot, residual


def _serialises(fig):
    html = fig.to_html(include_plotlyjs="cdn")
    assert "cdn.plot.ly" in html
    return len(html)


def test_running_stat_recovers_a_known_trend_and_scatter():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, 50_000)
    y = 2 * x + rng.normal(0, 0.1, x.size)
    # narrow bins, so the trend within a bin barely adds to the 0.1 scatter
    stat = running_stat(x, y, bins=50, min_count=20)
    assert list(stat.columns) == ["x", "median", "smad", "count"]
    assert len(stat) == 50
    np.testing.assert_allclose(stat["median"], 2 * stat["x"], atol=0.02)
    np.testing.assert_allclose(stat["smad"], 0.1, rtol=0.1)
    assert stat["count"].sum() == x.size


def test_running_stat_drops_sparse_bins_and_non_finite_pairs():
    x = np.array([0.1] * 30 + [0.9] * 5 + [np.nan] * 3)
    y = np.concatenate([np.ones(30), np.zeros(5), np.zeros(3)])
    stat = running_stat(x, y, bins=[0.0, 0.5, 1.0], min_count=10)
    assert stat["x"].tolist() == [0.25]
    assert stat["median"].tolist() == [1.0]
    assert stat["count"].tolist() == [30]
    with pytest.raises(ValueError, match="finite"):
        running_stat([np.nan], [1.0])


def test_zphot_vs_zspec():
    _, z_spec, z_phot, _ = _test_sample(5000)
    fig = zphot_vs_zspec(z_spec, z_phot)
    assert isinstance(fig, go.Figure)
    assert [trace.type for trace in fig.data] == ["heatmap"] + ["scatter"] * 4
    assert fig.layout.xaxis.title.text == "z_spec"
    assert fig.layout.yaxis.title.text == "z_phot"
    median = fig.data[1]
    np.testing.assert_allclose(median.y, median.x, atol=0.02)  # unbiased by construction
    _serialises(fig)


def test_figure_size_does_not_grow_with_the_number_of_galaxies():
    small = _test_sample(2_000)
    large = _test_sample(200_000)
    size_small = _serialises(zphot_vs_zspec(small[1], small[2]))
    size_large = _serialises(zphot_vs_zspec(large[1], large[2]))
    assert size_large < 1.5 * size_small
    assert size_large < 300_000


def test_residuals_vs_single_panel():
    _, z_spec, _, residual = _test_sample(3000)
    fig = residuals_vs(z_spec, residual, "z_spec")
    assert [trace.type for trace in fig.data] == ["heatmap", "scatter", "scatter", "scatter"]
    assert fig.layout.xaxis.title.text == "z_spec"
    assert fig.layout.yaxis.title.text.startswith("Δz")
    _serialises(fig)


def test_residual_panels_has_four_panels_with_units():
    frame, _, z_phot, _ = _test_sample(5000)
    fig = residual_panels(frame, z_phot)
    assert len(fig.data) == 4 * 4
    assert sum(trace.type == "heatmap" for trace in fig.data) == 4
    titles = [fig.layout[f"xaxis{i if i > 1 else ''}"].title.text for i in range(1, 5)]
    assert titles == ["z_phot", "z_spec", "r_auto [mag]", "u − g [mag]"]
    # the legend lists the running median and SMAD once, not once per panel
    assert sum(bool(trace.showlegend) for trace in fig.data) == 2
    _serialises(fig)


def test_residual_panels_leaves_the_colour_panel_empty_without_u_band():
    frame, _, z_phot, _ = _test_sample(500)
    fig = residual_panels(frame.assign(mag_u=np.nan), z_phot)
    assert len(fig.data) == 3 * 4
    assert {trace.xaxis for trace in fig.data} == {"x", "x2", "x3"}
    with pytest.raises(ValueError, match="no galaxy has both a finite x"):
        residuals_vs(np.full(10, np.nan), np.zeros(10), "u − g [mag]")


def test_residual_panels_needs_the_colour_columns():
    frame, _, z_phot, _ = _test_sample(100)
    with pytest.raises(ValueError, match="mag_u"):
        residual_panels(frame.drop(columns="mag_u"), z_phot)


def test_dz_histogram_overlays_both_fits_in_linear_and_log_panels():
    _, _, _, residual = _test_sample(20_000)
    fig = dz_histogram({"Hybrid-z": residual, "MLP baseline": 1.3 * residual})
    assert len(fig.data) == 2 * (2 + 2)  # per panel: two histograms + two fitted curves
    names = [trace.name for trace in fig.data[:4]]
    assert names[:2] == ["Hybrid-z", "MLP baseline"]
    assert names[2].startswith("Gaussian fit to Hybrid-z: μ=")
    assert names[3].startswith("Lorentzian fit to Hybrid-z: a=")
    assert fig.layout.yaxis2.type == "log"
    assert fig.layout.yaxis.title.text == "normalised counts"
    # histogram and fitted densities share one normalisation (unit area)
    histogram, lorentzian = fig.data[0], fig.data[3]
    assert np.max(histogram.y) == pytest.approx(np.max(lorentzian.y), rel=0.1)
    _serialises(fig)


def test_dz_histogram_without_a_possible_fit_still_draws_the_histograms():
    # a smoke-test model: only 5 residuals inside the +-0.15 window, too few to fit
    residual = np.r_[np.linspace(-0.05, 0.05, 5), np.linspace(0.3, 0.9, 30)]
    fig = dz_histogram({"Hybrid-z": residual, "kNN": residual / 2})
    assert len(fig.data) == 2 * 2
    assert "no fit: only 5 of 35 Dz values" in fig.layout.title.text
    _serialises(fig)


def test_dz_histogram_rejects_unknown_fit_label():
    with pytest.raises(ValueError, match="fit_label"):
        dz_histogram({"a": np.zeros(10)}, fit_label="b")
    with pytest.raises(ValueError, match="empty"):
        dz_histogram({})


def test_nz_comparison():
    _, z_spec, z_phot, _ = _test_sample(5000)
    fig = nz_comparison(z_spec, {"Hybrid-z": z_phot, "kNN": z_spec})
    assert [trace.name for trace in fig.data] == ["z_spec", "z_phot (Hybrid-z)", "z_phot (kNN)"]
    assert fig.layout.xaxis.title.text == "redshift z"
    width = np.diff(fig.data[0].x)[0]
    assert np.sum(fig.data[0].y) * width == pytest.approx(1.0, abs=0.01)
    _serialises(fig)


def test_loss_curves():
    fig = loss_curves({"loss": [3e-3, 1e-3, 8e-4], "val_loss": [4e-3, 2e-3, 1e-3]})
    assert [trace.name for trace in fig.data] == ["loss", "val_loss"]
    assert list(fig.data[0].x) == [1, 2, 3]
    assert fig.layout.yaxis.type == "log"
    assert fig.layout.xaxis.title.text == "epoch"
    assert loss_curves({"r2": [-0.5, 0.9]}).layout.yaxis.type == "linear"
    _serialises(fig)
    with pytest.raises(ValueError, match="history is empty"):
        loss_curves({})



def test_residual_panel_axes_span_their_data_in_a_grid_that_fits_1400_px():
    frame, z_spec, z_phot, _ = _test_sample(5000)
    fig = residual_panels(frame, z_phot)
    colour = (frame["mag_u"] - frame["mag_g"]).dropna()
    for axis, x in (("xaxis", z_phot), ("xaxis2", z_spec), ("xaxis3", frame["mag_r_auto"]),
                    ("xaxis4", colour)):
        low, high = fig.layout[axis].range
        assert np.min(x) <= low < high <= np.max(x), axis
        assert high - low > 0.9 * (np.quantile(x, 0.99) - np.quantile(x, 0.01)), axis
    assert fig.layout.width <= 1400
