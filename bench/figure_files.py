"""What a run's figures cost on disk and in time: hzexp's pages (plotly.js from the CDN, a
static PNG embedded for offline reading, the PNG beside) against embedding plotly.js.

    python bench/figure_files.py [--n-galaxies 3000]

Prints the bytes of one run's report figures (figs. 3-7) written by `write_figures`, the
seconds it took (one headless Chromium for all PNGs), and the bytes the same figures take
with plotly.js embedded in each page. Needs `pip install 'hzexp[images]'` and a Chromium for
the PNGs; without them it measures the HTML-only pages.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hzexp.data.store import MAG_COLUMNS
from hzexp.evaluation.rendering import write_figures
from hzexp.evaluation.report import build_report


def report_figures(n: int, seed: int = 0) -> dict:
    """Figures 3-7 of a synthetic test set with a 2% photo-z scatter."""
    rng = np.random.default_rng(seed)
    z_spec = rng.uniform(0.02, 0.6, n)
    frame = pd.DataFrame({"z_spec": z_spec, "mag_r_auto": rng.uniform(15, 20, n),
                          "masked": rng.random(n) < 0.15,
                          "galaxy_type": np.where(rng.random(n) < 0.4, "red", "blue"),
                          **{c: rng.normal(20, 1, n) for c in MAG_COLUMNS}})
    z_phot = z_spec + rng.normal(0, 0.02, n) * (1 + z_spec)
    history = {"loss": list(np.geomspace(1e-3, 1e-5, 15)),
               "val_loss": list(np.geomspace(2e-3, 2e-5, 15))}
    return build_report(frame, {"Hybrid-z": z_phot, "MLP": z_phot + rng.normal(0, 0.01, n)},
                        history)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-galaxies", type=int, default=3000)
    args = parser.parse_args()
    figures = report_figures(args.n_galaxies)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        written = write_figures(figures, Path(tmp))
        seconds = time.perf_counter() - started
        ours = sum(p.stat().st_size for p in written)
        pngs = sum(p.suffix == ".png" for p in written)
        embedded = 0
        for name, figure in figures.items():
            path = Path(tmp) / f"{name}-embedded.html"
            figure.write_html(path, include_plotlyjs=True)
            embedded += path.stat().st_size
    print(f"{len(figures)} figures, {pngs} PNGs: {ours / 1e6:.2f} MB in {seconds:.1f} s; "
          f"with plotly.js embedded: {embedded / 1e6:.2f} MB ({embedded / ours:.0f}x)")


if __name__ == "__main__":
    main()
