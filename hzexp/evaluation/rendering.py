"""Figures as files that read anywhere: interactive HTML and, where a browser is found, PNG.

plotly.js is 4.6 MB and a search logs about a hundred figures, so the HTML pages load it
from its CDN instead of embedding it. Where the CDN cannot be reached (the MLflow UI on a
cluster without internet), a page would be blank; instead it shows the same figure as a
static PNG embedded in it (about 100 KB), which is also written beside it. The PNG is drawn
by kaleido in a headless Chromium (`pip install 'hzexp[images]'` and Debian's `chromium`
package); without them the figures are HTML only and an offline page says so.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

log = logging.getLogger(__name__)

#: PNG size of a figure whose layout sets none (the width of a typical browser window).
DEFAULT_SIZE = (1000, 600)
OFFLINE_ID = "hzexp-offline"
NO_IMAGE = ("plotly.js did not load from its CDN (offline?) and no static image of this "
            "figure was rendered: install Chromium and <code>pip install 'hzexp[images]'</code>"
            " so that runs also log each figure as a PNG.")


def write_pngs(figures: Mapping[str, go.Figure], directory: Path) -> dict[str, Path]:
    """`<name>.png` of each figure, drawn at its layout size in one browser session; {} with
    a warning when kaleido or a Chromium is missing: figures never fail a run."""
    paths = {name: directory / f"{name}.png" for name in figures}
    if not figures:
        return {}
    try:
        pio.write_images(list(figures.values()), list(paths.values()),
                         width=[f.layout.width or DEFAULT_SIZE[0] for f in figures.values()],
                         height=[f.layout.height or DEFAULT_SIZE[1] for f in figures.values()])
    except (ImportError, RuntimeError, ValueError) as err:
        log.warning("figures are logged as HTML only, without a static PNG (%s: %s)",
                    type(err).__name__, str(err).splitlines()[0] if str(err) else "")
        return {}
    return paths


def offline_fallback(png: bytes | None) -> str:
    """The block an HTML page shows instead of the plot when plotly.js did not load."""
    inner = (f'<img alt="static image of the figure" style="max-width:100%" '
             f'src="data:image/png;base64,{base64.b64encode(png).decode()}">' if png
             else f"<p>{NO_IMAGE}</p>")
    return (f'<div id="{OFFLINE_ID}" hidden>{inner}</div>\n'
            '<script>if (!window.Plotly) {\n'
            '  document.querySelectorAll(".plotly-graph-div").forEach(d => {\n'
            '    (d.parentElement === document.body ? d : d.parentElement).hidden = true;\n'
            '  });\n'
            f'  document.getElementById("{OFFLINE_ID}").hidden = false;\n'
            '}</script>\n')


def figure_html(figure: go.Figure, png: bytes | None) -> str:
    """A standalone page: plotly.js from the CDN, the static image when offline."""
    page = figure.to_html(include_plotlyjs="cdn", full_html=True)
    return page.replace("</body>", offline_fallback(png) + "</body>", 1)


def write_figures(figures: Mapping[str, go.Figure], directory: Path) -> list[Path]:
    """`<name>.html` for every figure and `<name>.png` where one could be rendered."""
    pngs = write_pngs(figures, directory)
    written = []
    for name, figure in figures.items():
        html = directory / f"{name}.html"
        png = pngs.get(name)
        html.write_text(figure_html(figure, png.read_bytes() if png else None), encoding="utf-8")
        written += [html, png] if png else [html]
    return written
