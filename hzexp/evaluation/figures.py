"""Plotly versions of the paper's diagnostic figures (Figs. 3-7).

Every function returns a `plotly.graph_objects.Figure`; writing it (e.g. as HTML for MLflow)
is the caller's job. Point clouds are drawn as binned density heatmaps and all curves are
binned, so a figure's size does not grow with the number of galaxies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hzexp.evaluation._checks import finite_1d, require_columns, same_length
from hzexp.evaluation.metrics import (
    OUTLIER_THRESHOLD,
    Dz,
    fit_dz_distribution,
    gaussian_pdf,
    lorentzian_pdf,
    smad,
)

DZ_TITLE = "Δz = (z_phot − z_spec) / (1 + z_spec)"
DENSITY_TITLE = "normalised counts"
MEDIAN_STYLE = {"color": "red", "width": 3}
SMAD_STYLE = {"color": "red", "width": 1}


def running_stat(x, y, bins: int | Sequence[float] = 20, min_count: int = 20) -> pd.DataFrame:
    """Median and SMAD of `y` in bins of `x`, the running lines of Figs. 4 and 5.

    `bins` is a number of equal-width bins spanning the finite range of `x`, or explicit
    edges (half-open bins, the last one closed). Pairs with a non-finite x or y are ignored
    and bins with fewer than `min_count` points are dropped, because a median of a handful
    of galaxies is noise. Returns columns `x` (bin centre), `median`, `smad`, `count`.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    same_length(x=x, y=y)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size == 0:
        raise ValueError("running_stat needs at least one pair with finite x and y")
    edges = np.histogram_bin_edges(x, bins=bins)
    index = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    inside = (x >= edges[0]) & (x <= edges[-1])
    rows = []
    for b in range(len(edges) - 1):
        in_bin = y[inside & (index == b)]
        if in_bin.size >= min_count:
            centre = 0.5 * (edges[b] + edges[b + 1])
            rows.append((centre, float(np.median(in_bin)), smad(in_bin), in_bin.size))
    return pd.DataFrame(rows, columns=["x", "median", "smad", "count"])


def _density_heatmap(x, y, x_edges, y_edges) -> go.Heatmap:
    """log10 of the 2-D counts, empty cells transparent: the compact stand-in for a scatter."""
    counts, _, _ = np.histogram2d(x, y, bins=[x_edges, y_edges])
    with np.errstate(divide="ignore"):
        log_counts = np.where(counts > 0, np.log10(counts), np.nan).astype(np.float32)
    return go.Heatmap(
        x=0.5 * (x_edges[1:] + x_edges[:-1]),
        y=0.5 * (y_edges[1:] + y_edges[:-1]),
        z=log_counts.T,
        coloraxis="coloraxis",
        name="galaxies",
        hovertemplate="x=%{x:.3g}<br>y=%{y:.3g}<br>log10 N=%{z:.2f}<extra></extra>",
    )


def _running_traces(x, y, x_edges, show_legend: bool) -> list[go.Scatter]:
    """Running median and median ± SMAD as three line traces."""
    stat = running_stat(x, y, bins=x_edges)
    return [
        go.Scatter(
            x=stat["x"], y=stat["median"], mode="lines", line=MEDIAN_STYLE,
            name="running median", legendgroup="median", showlegend=show_legend,
        ),
        go.Scatter(
            x=stat["x"], y=stat["median"] + stat["smad"], mode="lines", line=SMAD_STYLE,
            name="median ± SMAD", legendgroup="smad", showlegend=show_legend,
        ),
        go.Scatter(
            x=stat["x"], y=stat["median"] - stat["smad"], mode="lines", line=SMAD_STYLE,
            name="median − SMAD", legendgroup="smad", showlegend=False,
        ),
    ]


def _density_layout(fig: go.Figure) -> None:
    """One shared log-count colour scale for every heatmap in the figure."""
    fig.update_layout(
        coloraxis={"colorscale": "Blues", "colorbar": {"title": {"text": "log10 N"}}},
        plot_bgcolor="white",
    )


def zphot_vs_zspec(
    z_spec, z_phot, bins: int = 100, z_range: tuple[float, float] | None = None,
    running_bins: int = 25,
) -> go.Figure:
    """Fig. 4: density of z_phot against z_spec with the running median ± SMAD and 1:1 line.

    `z_range` defaults to [0, 1.05 × the 99.9th percentile of both redshifts] so a few wild
    photo-zs do not squash the plot; the running statistics use the same range.
    """
    z_spec = finite_1d(z_spec, "z_spec")
    z_phot = finite_1d(z_phot, "z_phot")
    same_length(z_spec=z_spec, z_phot=z_phot)
    if z_range is None:
        z_range = (0.0, 1.05 * float(np.quantile(np.concatenate([z_spec, z_phot]), 0.999)))
    edges = np.linspace(*z_range, bins + 1)
    fig = go.Figure(
        [
            _density_heatmap(z_spec, z_phot, edges, edges),
            *_running_traces(z_spec, z_phot, np.linspace(*z_range, running_bins + 1), True),
            go.Scatter(
                x=list(z_range), y=list(z_range), mode="lines",
                line={"color": "black", "dash": "dash", "width": 1}, name="z_phot = z_spec",
            ),
        ]
    )
    _density_layout(fig)
    fig.update_layout(
        title="Photometric vs spectroscopic redshift",
        xaxis={"title": {"text": "z_spec"}, "range": list(z_range)},
        yaxis={"title": {"text": "z_phot"}, "range": list(z_range)},
        # Inside the empty top-left corner (z_phot >> z_spec), clear of the colour bar.
        legend={"x": 0.02, "y": 0.98, "xanchor": "left", "yanchor": "top",
                "bgcolor": "rgba(255, 255, 255, 0.8)"},
        width=850, height=700,
    )
    return fig


def _residual_range(x, Dz_values) -> np.ndarray | None:
    """The x range a residual panel shows: the 0.1-99.9 percentiles of the finite x values
    (so a few extreme values do not stretch the axis), or None when there are none."""
    x = np.asarray(x, dtype=float)
    keep = np.isfinite(x) & np.isfinite(np.asarray(Dz_values, dtype=float))
    if not keep.any():
        return None
    x_range = np.quantile(x[keep], [0.001, 0.999])
    return x_range + np.array([-0.5, 0.5]) if x_range[0] == x_range[1] else x_range


def _residual_traces(
    x, Dz_values, bins: int, dz_range: float, running_bins: int, show_legend: bool
) -> list:
    """Heatmap of Dz against x plus running median ± SMAD; non-finite x are skipped, and
    no traces at all are returned when nothing is left (e.g. no galaxy detected in u)."""
    x = np.asarray(x, dtype=float)
    Dz_values = np.asarray(Dz_values, dtype=float)
    same_length(x=x, Dz=Dz_values)
    x_range = _residual_range(x, Dz_values)
    if x_range is None:
        return []
    keep = np.isfinite(x) & np.isfinite(Dz_values)
    x, Dz_values = x[keep], Dz_values[keep]
    x_edges = np.linspace(*x_range, bins + 1)
    y_edges = np.linspace(-dz_range, dz_range, bins + 1)
    return [
        _density_heatmap(x, Dz_values, x_edges, y_edges),
        *_running_traces(x, Dz_values, np.linspace(*x_range, running_bins + 1), show_legend),
    ]


def residuals_vs(
    x, Dz_values, xlabel: str, bins: int = 80, dz_range: float = OUTLIER_THRESHOLD,
    running_bins: int = 20,
) -> go.Figure:
    """One panel of Fig. 5: Dz against any quantity, with running median ± SMAD.

    The x axis spans the 0.1-99.9 percentiles of the finite x values; the Dz axis spans
    ±`dz_range` (default the outlier threshold) while the running statistics use every Dz.
    """
    traces = _residual_traces(x, Dz_values, bins, dz_range, running_bins, show_legend=True)
    if not traces:
        raise ValueError("no galaxy has both a finite x and a finite Dz")
    fig = go.Figure(traces)
    fig.add_hline(y=0.0, line={"color": "black", "width": 1, "dash": "dot"})
    _density_layout(fig)
    fig.update_layout(
        title=f"Δz vs {xlabel}",
        xaxis={"title": {"text": xlabel}},
        yaxis={"title": {"text": DZ_TITLE}, "range": [-dz_range, dz_range]},
        # above the plot, clear of the colour bar (as in `residual_panels`)
        legend={"orientation": "h", "x": 1.0, "xanchor": "right", "y": 1.02,
                "yanchor": "bottom"},
    )
    return fig


def residual_panels(
    frame: pd.DataFrame, z_phot, bins: int = 80, dz_range: float = OUTLIER_THRESHOLD,
    running_bins: int = 20,
) -> go.Figure:
    """Fig. 5: Dz against (a) z_phot, (b) z_spec, (c) r_auto and (d) u − g, in a 2 × 2 grid
    that fits a 1200 px wide window; each x axis spans its panel's data (`_residual_range`).

    `frame` needs columns `z_spec`, `mag_r_auto`, `mag_u`, `mag_g`; galaxies without a u or
    g magnitude are left out of panel (d) only (which stays empty if none has both).
    """
    require_columns(frame, ("z_spec", "mag_r_auto", "mag_u", "mag_g"))
    z_spec = frame["z_spec"].to_numpy(dtype=float)
    z_phot = finite_1d(z_phot, "z_phot")
    residuals = Dz(z_spec, z_phot)
    panels = [
        (z_phot, "z_phot"),
        (z_spec, "z_spec"),
        (frame["mag_r_auto"].to_numpy(dtype=float), "r_auto [mag]"),
        (frame["mag_u"].to_numpy(dtype=float) - frame["mag_g"].to_numpy(dtype=float),
         "u − g [mag]"),
    ]
    fig = make_subplots(rows=2, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
                        vertical_spacing=0.14)
    for index, (x, label) in enumerate(panels):
        row, col = divmod(index, 2)
        for trace in _residual_traces(x, residuals, bins, dz_range, running_bins, index == 0):
            fig.add_trace(trace, row=row + 1, col=col + 1)
        x_range = _residual_range(x, residuals)
        fig.update_xaxes(title_text=label, row=row + 1, col=col + 1,
                         range=None if x_range is None else list(x_range))
        fig.update_yaxes(range=[-dz_range, dz_range], row=row + 1, col=col + 1,
                         title_text="Δz" if col == 0 else None)
    fig.add_hline(y=0.0, line={"color": "black", "width": 1, "dash": "dot"})
    _density_layout(fig)
    fig.update_layout(title=f"Photo-z residuals {DZ_TITLE}", width=1200, height=850,
                      legend={"orientation": "h", "x": 1.0, "xanchor": "right", "y": 1.03,
                              "yanchor": "bottom"})
    return fig


def _density_histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin divided by (total count × bin width): comparable with unit-area pdfs
    even when some values fall outside the edges."""
    counts, _ = np.histogram(values, bins=edges)
    return counts / (values.size * np.diff(edges))


def _step_trace(values, edges, name: str, **kwargs) -> go.Scatter:
    return go.Scatter(
        x=0.5 * (edges[1:] + edges[:-1]), y=_density_histogram(values, edges),
        mode="lines", line_shape="hvh", name=name, **kwargs,
    )


def dz_histogram(
    residuals: Mapping[str, np.ndarray], fit_label: str | None = None,
    half_width: float = OUTLIER_THRESHOLD, bins: int = 120,
) -> go.Figure:
    """Fig. 6: Dz distributions with the Gaussian and generalised-Lorentzian fits.

    One normalised step histogram per label; the fits (`fit_dz_distribution`, parameters in
    the legend) are made to `fit_label`, by default the first label. The right-hand panel
    repeats the left one with a logarithmic y axis (the paper's inset) to show the wings.
    When the fit is impossible (too few values in the window, zero scatter) the histograms
    are drawn without curves and the title says why, so a report never fails on a figure.
    """
    if not residuals:
        raise ValueError("residuals is empty: pass at least one {label: Dz} entry")
    checked = {label: finite_1d(v, f"Dz of {label!r}") for label, v in residuals.items()}
    fit_label = next(iter(checked)) if fit_label is None else fit_label
    if fit_label not in checked:
        raise ValueError(f"fit_label {fit_label!r} is not one of {list(checked)}")
    edges = np.linspace(-half_width, half_width, bins + 1)
    grid = np.linspace(-half_width, half_width, 400)
    title = "Distribution of photo-z residuals"
    try:
        fit = fit_dz_distribution(checked[fit_label], half_width=half_width)
    except ValueError as error:  # e.g. a smoke-test model with almost nothing in the window
        curves, title = [], f"{title} (no fit: {error})"
    else:
        curves = [
            (gaussian_pdf(grid, fit["gauss_mu"], fit["gauss_sigma"]),
             f"Gaussian fit to {fit_label}: μ={fit['gauss_mu']:.2e}, σ={fit['gauss_sigma']:.4f}",
             {"color": "orange", "width": 2}),
            (lorentzian_pdf(grid, fit["lorentz_a"], fit["lorentz_s"]),
             f"Lorentzian fit to {fit_label}: a={fit['lorentz_a']:.3f}, s={fit['lorentz_s']:.4f}",
             {"color": "black", "width": 2}),
        ]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("linear", "logarithmic"))
    for col in (1, 2):
        for index, (label, values) in enumerate(checked.items()):
            fig.add_trace(
                _step_trace(values, edges, label, legendgroup=label, showlegend=col == 1,
                            line={"color": f"hsl({(220 + 140 * index) % 360}, 70%, 45%)"}),
                row=1, col=col,
            )
        for density, name, line in curves:
            fig.add_trace(
                go.Scatter(x=grid, y=density, mode="lines", name=name, line=line,
                           legendgroup=name, showlegend=col == 1),
                row=1, col=col,
            )
        fig.update_xaxes(title_text=DZ_TITLE, row=1, col=col)
    fig.update_yaxes(title_text=DENSITY_TITLE, row=1, col=1)
    fig.update_yaxes(title_text=DENSITY_TITLE, type="log", row=1, col=2)
    fig.update_layout(title=title, width=1300, height=500)
    return fig


def nz_comparison(
    z_spec, z_phots: Mapping[str, np.ndarray], bins: int = 60,
    z_range: tuple[float, float] | None = None,
    stacked: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> go.Figure:
    """Fig. 7: redshift distributions n(z) of z_spec and of each method's z_phot, and of
    each method's stacked PDFs (`stacked`: label -> (z, unit-area density), dashed).

    Step histograms normalised to unit area over the full sample; `z_range` defaults to 0 to
    1.05 × the 99.9th percentile of all redshifts shown.
    """
    z_spec = finite_1d(z_spec, "z_spec")
    checked = {label: finite_1d(v, f"z_phot of {label!r}") for label, v in z_phots.items()}
    if z_range is None:
        everything = np.concatenate([z_spec, *checked.values()])
        z_range = (0.0, 1.05 * float(np.quantile(everything, 0.999)))
    edges = np.linspace(*z_range, bins + 1)
    fig = go.Figure(
        [
            _step_trace(z_spec, edges, "z_spec", line={"color": "black", "width": 2}),
            *(_step_trace(values, edges, f"z_phot ({label})") for label, values in checked.items()),
            *(go.Scatter(x=z, y=density, mode="lines", line={"dash": "dash", "width": 2},
                         name=f"stacked PDFs ({label})")
              for label, (z, density) in (stacked or {}).items()),
        ]
    )
    fig.update_layout(
        title="Redshift distributions",
        xaxis={"title": {"text": "redshift z"}},
        yaxis={"title": {"text": "n(z) (unit area)"}},
    )
    return fig


def loss_curves(history: Mapping[str, Sequence[float]]) -> go.Figure:
    """Fig. 3: one curve per history entry (e.g. `loss`, `val_loss`) against epoch (from 1).

    The y axis is logarithmic when every value is positive, since a Huber loss with
    delta = 1e-3 drops by orders of magnitude over training.
    """
    if not history:
        raise ValueError("history is empty: pass e.g. {'loss': [...], 'val_loss': [...]}")
    curves = {name: finite_1d(values, f"history[{name!r}]") for name, values in history.items()}
    fig = go.Figure(
        [
            go.Scatter(x=np.arange(1, values.size + 1), y=values, mode="lines+markers", name=name)
            for name, values in curves.items()
        ]
    )
    all_positive = all(np.all(values > 0) for values in curves.values())
    fig.update_layout(
        title="Training history",
        xaxis={"title": {"text": "epoch"}},
        yaxis={"title": {"text": "loss"}, "type": "log" if all_positive else "linear"},
    )
    return fig
