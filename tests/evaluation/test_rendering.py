"""Figures in a real headless browser (Debian's `chromium`): they draw, offline too, and
their layouts fit a 1400 px window without the legend on the colour bar."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hzexp.evaluation.figures import residual_panels, zphot_vs_zspec
from hzexp.evaluation.rendering import OFFLINE_ID, write_figures
from tests.helpers import synthetic_catalogue

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not "
                                    "installed (apt-get install chromium); .ci/run installs it")
WINDOW = (1400, 900)


def chromium(page: Path, *action: str) -> subprocess.CompletedProcess:
    """Open `page` headless with every host unresolvable (offline, whatever the machine)."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}",
             "--host-resolver-rules=MAP * ~NOTFOUND",
             f"--window-size={WINDOW[0]},{WINDOW[1]}", "--virtual-time-budget=15000", *action,
             page.as_uri()], capture_output=True, text=True, timeout=120, check=True)


@pytest.fixture(scope="module")
def galaxies():
    frame = synthetic_catalogue(3000, seed=1)
    z_spec = frame["z_spec"].to_numpy()
    z_phot = z_spec + np.random.default_rng(0).normal(0, 0.02, len(frame)) * (1 + z_spec)
    return frame, z_phot


def drawn_fraction(png: Path) -> float:
    """Fraction of pixels that are not the page's white background."""
    pixels = np.asarray(Image.open(png).convert("L"))
    return float(np.mean(pixels < 240))


@needs_chromium
def test_a_logged_figure_page_shows_the_plot_offline(galaxies, tmp_path):
    """Without the CDN the page shows the figure's static image, not a blank page."""
    frame, z_phot = galaxies
    written = write_figures({"zphot_vs_zspec": zphot_vs_zspec(frame["z_spec"], z_phot)},
                            tmp_path)
    assert [p.name for p in written] == ["zphot_vs_zspec.html", "zphot_vs_zspec.png"]
    dom = chromium(tmp_path / "zphot_vs_zspec.html", "--dump-dom").stdout
    offline = re.search(rf'<div id="{OFFLINE_ID}"([^>]*)>\s*<img', dom)
    assert offline and "hidden" not in offline.group(1)
    shot = tmp_path / "page.png"
    chromium(tmp_path / "zphot_vs_zspec.html", f"--screenshot={shot}")
    assert drawn_fraction(shot) > 0.02
    # The static image is the figure: its own size, and mostly drawn on.
    with Image.open(tmp_path / "zphot_vs_zspec.png") as image:
        assert image.size == (850, 700)
    assert drawn_fraction(tmp_path / "zphot_vs_zspec.png") > 0.02


def box(dom: str, group: str, rect: str) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the rect `rect` inside the SVG group whose class starts `group`."""
    found = re.search(rf'<g class="{group}[^"]*"[^>]*transform="translate\(([-\d.]+),([-\d.]+)\)"'
                      rf'.*?<rect class="{rect}"([^>]*)>', dom, re.S)
    assert found, f"no {group} / {rect} in the drawn page"
    attrs = dict(re.findall(r'(x|y|width|height)="([-\d.]+)"', found.group(3)))
    x = float(found.group(1)) + float(attrs.get("x", 0))
    y = float(found.group(2)) + float(attrs.get("y", 0))
    return x, y, x + float(attrs["width"]), y + float(attrs["height"])


@needs_chromium
def test_zphot_vs_zspec_draws_with_the_legend_clear_of_the_colour_bar(galaxies, tmp_path):
    frame, z_phot = galaxies
    page = tmp_path / "interactive.html"
    zphot_vs_zspec(frame["z_spec"], z_phot).write_html(page, include_plotlyjs=True)
    dom = chromium(page, "--dump-dom").stdout
    assert 'class="main-svg"' in dom and 'class="hm"' in dom  # the density heatmap drew
    assert len(re.findall(r'class="trace scatter', dom)) == 4  # median, ±SMAD, 1:1
    legend, colour_bar = box(dom, "legend", "bg"), box(dom, "cbcoloraxis", "cbbg")
    apart = (legend[2] <= colour_bar[0] or colour_bar[2] <= legend[0]
             or legend[3] <= colour_bar[1] or colour_bar[3] <= legend[1])
    assert apart, f"legend {legend} overlaps the colour bar {colour_bar}"


@needs_chromium
def test_residual_panels_fit_a_1400_px_window(galaxies, tmp_path):
    frame, z_phot = galaxies
    page = tmp_path / "residuals.html"
    residual_panels(frame, z_phot).write_html(page, include_plotlyjs=True)
    dom = chromium(page, "--dump-dom").stdout
    width = float(re.search(r'class="main-svg"[^>]*width="([\d.]+)"', dom).group(1))
    assert width <= WINDOW[0]
    assert len(re.findall(r'class="hm"', dom)) == 4
    for title in ("z_phot", "z_spec", "r_auto [mag]", "u − g [mag]"):
        assert f">{title}</text>" in dom, title


def test_without_a_browser_figures_are_html_saying_why_offline(galaxies, tmp_path,
                                                               monkeypatch):
    def no_browser(*args, **kwargs):
        raise RuntimeError("no Chromium found")

    monkeypatch.setattr("plotly.io.write_images", no_browser)
    frame, z_phot = galaxies
    written = write_figures({"zphot_vs_zspec": zphot_vs_zspec(frame["z_spec"], z_phot)},
                            tmp_path)
    assert [p.name for p in written] == ["zphot_vs_zspec.html"]
    page = written[0].read_text()
    assert "cdn.plot.ly" in page and "hzexp[images]" in page and "data:image/png" not in page


@needs_chromium
@pytest.mark.parametrize("name", ["pit_histogram", "coverage", "example_pdfs"])
def test_the_pdf_figures_draw_offline_and_fit_the_window(name, tmp_path):
    from scipy import stats

    from hzexp.evaluation.pdf_figures import coverage_curve, example_pdfs, pit_histogram
    from hzexp.evaluation.pdfs import PdfGrid

    grid = PdfGrid(1.0, 200)
    rng = np.random.default_rng(2)
    mu = rng.uniform(0.1, 0.7, 1000)
    z_spec = mu + 0.03 * rng.standard_normal(mu.size)
    pdfs = np.diff(stats.norm.cdf((grid.edges[None, :] - mu[:, None]) / 0.03), axis=1)
    figure = {"pit_histogram": lambda: pit_histogram({"Hybrid-z": pdfs}, grid, z_spec),
              "coverage": lambda: coverage_curve({"Hybrid-z": pdfs}, grid, z_spec),
              "example_pdfs": lambda: example_pdfs(pdfs, grid, z_spec)}[name]()
    assert figure.layout.width <= WINDOW[0]
    write_figures({name: figure}, tmp_path)
    shot = tmp_path / "page.png"
    chromium(tmp_path / f"{name}.html", f"--screenshot={shot}")
    assert drawn_fraction(shot) > 0.02
    assert drawn_fraction(tmp_path / f"{name}.png") > 0.02


@needs_chromium
def test_the_seeing_figure_draws_offline_with_the_legend_clear_of_the_colour_bar(galaxies,
                                                                                  tmp_path):
    from hzexp.evaluation.seeing import seeing_figure

    frame, z_phot = galaxies
    figure = seeing_figure(frame, z_phot)
    write_figures({"residuals_vs_seeing": figure}, tmp_path)
    shot = tmp_path / "page.png"
    chromium(tmp_path / "residuals_vs_seeing.html", f"--screenshot={shot}")
    assert drawn_fraction(shot) > 0.02
    assert drawn_fraction(tmp_path / "residuals_vs_seeing.png") > 0.02
    page = tmp_path / "interactive.html"
    figure.write_html(page, include_plotlyjs=True)
    dom = chromium(page, "--dump-dom").stdout
    assert 'class="hm"' in dom  # the density heatmap drew
    legend, colour_bar = box(dom, "legend", "bg"), box(dom, "cbcoloraxis", "cbbg")
    apart = (legend[2] <= colour_bar[0] or colour_bar[2] <= legend[0]
             or legend[3] <= colour_bar[1] or colour_bar[3] <= legend[1])
    assert apart, f"legend {legend} overlaps the colour bar {colour_bar}"
