"""The evaluation report of one run: the Table-1 layout and the paper's figures.

Pure: predictions and a catalogue frame in, a table and plotly figures out; the caller
decides where they go (MLflow artifacts for a run, files for `hzexp evaluate`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hzexp.evaluation.figures import (
    dz_histogram,
    loss_curves,
    nz_comparison,
    residual_panels,
    zphot_vs_zspec,
)
from hzexp.evaluation.metrics import Dz
from hzexp.evaluation.pdf_figures import coverage_curve, example_pdfs, pit_histogram, stacked_nz
from hzexp.evaluation.pdfs import PdfGrid
from hzexp.evaluation.seeing import seeing_figure
from hzexp.evaluation.tables import photoz_table


def build_report(frame: pd.DataFrame, z_phots: Mapping[str, np.ndarray],
                 history: Mapping[str, Sequence[float]] | None = None,
                 pdfs: Mapping[str, np.ndarray] | None = None, grid: PdfGrid | None = None,
                 ) -> tuple[pd.DataFrame, dict[str, go.Figure]]:
    """Table 1 for every method and figures 3-7 (the first method is the main one); with
    `pdfs` (methods' PDFs on `grid`) also Table 1's PDF columns, the PIT histogram, the
    coverage curve, example PDFs of the main method and the stacked n(z); with seeing in
    `frame`, Dz of the main method against it."""
    main = next(iter(z_phots))
    z_spec = frame["z_spec"].to_numpy(dtype=float)
    pdfs = dict(pdfs or {})
    figures = {
        "zphot_vs_zspec": zphot_vs_zspec(z_spec, z_phots[main]),
        "residuals": residual_panels(frame, z_phots[main]),
        "dz_histogram": dz_histogram({label: Dz(z_spec, z) for label, z in z_phots.items()}),
        "nz": nz_comparison(z_spec, z_phots, stacked={label: stacked_nz(pdf, grid)
                                                      for label, pdf in pdfs.items()}),
    }
    by_seeing = seeing_figure(frame, z_phots[main])
    if by_seeing is not None:
        figures["residuals_vs_seeing"] = by_seeing
    if pdfs:
        figures["pit_histogram"] = pit_histogram(pdfs, grid, z_spec)
        figures["coverage"] = coverage_curve(pdfs, grid, z_spec)
        if main in pdfs:
            figures["example_pdfs"] = example_pdfs(pdfs[main], grid, z_spec)
    curves = {k: v for k, v in (history or {}).items() if k in ("loss", "val_loss") and v}
    if curves:
        figures["loss_curves"] = loss_curves(curves)
    return photoz_table(frame, z_phots, pdfs=pdfs, grid=grid), figures
