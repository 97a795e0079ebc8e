"""Figures of photo-z PDFs: PIT histogram, coverage curve and a page of example PDFs.

Like `figures`, each function returns a plotly figure whose size does not grow with the
number of galaxies; the stacked n(z) of the PDFs is drawn in `figures.nz_comparison`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hzexp.evaluation.pdfs import COVERAGE_LEVELS, PdfGrid, coverage, pit, quantiles

UNIFORM_STYLE = {"color": "black", "width": 2, "dash": "dash"}


def _colour(index: int) -> str:
    return f"hsl({(220 + 140 * index) % 360}, 70%, 45%)"


def pit_histogram(pdfs: Mapping[str, np.ndarray], grid: PdfGrid, z_spec,
                  bins: int = 20) -> go.Figure:
    """PIT histogram of each method against its uniform expectation: a U shape means
    over-confident PDFs, a hump under-confident ones, a slope a biased median."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 1], mode="lines", line=UNIFORM_STYLE,
                               name="uniform (calibrated)"))
    for index, (label, pdf) in enumerate(pdfs.items()):
        counts, _ = np.histogram(pit(pdf, grid, z_spec), bins=edges)
        density = counts / (counts.sum() * np.diff(edges))
        # steps over the whole bins, the last one drawn to PIT = 1
        fig.add_trace(go.Scatter(x=edges, y=np.append(density, density[-1]), mode="lines",
                                 line_shape="hv", name=label, line={"color": _colour(index)}))
    fig.update_layout(title="Probability integral transform", width=800, height=550,
                      xaxis={"title": {"text": "PIT = CDF(z_spec)"}, "range": [0, 1]},
                      yaxis={"title": {"text": "density"}, "rangemode": "tozero"},
                      legend={"orientation": "h", "x": 0, "y": -0.18})
    return fig


def coverage_curve(pdfs: Mapping[str, np.ndarray], grid: PdfGrid, z_spec) -> go.Figure:
    """Observed against expected fraction of z_spec inside central intervals of 10-90%:
    on the diagonal for calibrated PDFs, below it for over-confident ones."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=UNIFORM_STYLE,
                               name="expected"))
    for index, (label, pdf) in enumerate(pdfs.items()):
        observed = [coverage(pdf, grid, z_spec, level) for level in COVERAGE_LEVELS]
        fig.add_trace(go.Scatter(x=COVERAGE_LEVELS, y=observed, mode="lines+markers",
                                 name=label, line={"color": _colour(index)}))
    fig.update_layout(title="Coverage of central intervals", width=700, height=600,
                      xaxis={"title": {"text": "interval probability"}, "range": [0, 1]},
                      yaxis={"title": {"text": "fraction of z_spec inside"}, "range": [0, 1]},
                      legend={"x": 0.02, "y": 0.98})
    return fig


def example_pdfs(pdf, grid: PdfGrid, z_spec, n: int = 12, seed: int = 0) -> go.Figure:
    """`n` PDFs drawn at random (fixed seed) with their z_spec and 68% interval, each on its
    own panel zoomed to where the PDF and the truth lie."""
    z_spec = np.asarray(z_spec, dtype=float)
    rows = np.sort(np.random.default_rng(seed).choice(len(z_spec), min(n, len(z_spec)),
                                                      replace=False))
    lo, hi = quantiles(pdf[rows], grid, 0.005), quantiles(pdf[rows], grid, 0.995)
    n_cols = 4
    n_rows = max(1, -(-len(rows) // n_cols))
    fig = make_subplots(rows=n_rows, cols=n_cols,
                        subplot_titles=[f"z_spec {z_spec[r]:.3f}" for r in rows])
    density = np.asarray(pdf[rows], dtype=float) / grid.width
    interval = np.stack([quantiles(pdf[rows], grid, q) for q in (0.15865, 0.84135)], axis=1)
    for i, row in enumerate(rows):
        at = {"row": i // n_cols + 1, "col": i % n_cols + 1}
        fig.add_trace(go.Scatter(x=grid.centres, y=density[i], mode="lines", line_shape="hvh",
                                 line={"color": _colour(0)}, name="PDF", showlegend=i == 0,
                                 legendgroup="pdf"), **at)
        fig.add_vrect(x0=interval[i, 0], x1=interval[i, 1], fillcolor="lightblue",
                      opacity=0.4, line_width=0, **at)
        fig.add_vline(x=z_spec[row], line={"color": "red", "width": 2}, **at)
        margin = 0.02
        fig.update_xaxes(range=[min(lo[i], z_spec[row]) - margin,
                                max(hi[i], z_spec[row]) + margin], **at)
    fig.update_layout(title="Example PDFs (red: z_spec; shaded: central 68%)",
                      width=1300, height=260 * n_rows + 100, showlegend=False)
    return fig


def stacked_nz(pdf, grid: PdfGrid) -> tuple[np.ndarray, np.ndarray]:
    """The sample's n(z) from its PDFs, (bin centres, unit-area density): the mean PDF,
    which is what a cosmological analysis stacks."""
    p = np.asarray(pdf, dtype=float)
    p = p / p.sum(axis=1, keepdims=True)
    return grid.centres, p.mean(axis=0) / grid.width
