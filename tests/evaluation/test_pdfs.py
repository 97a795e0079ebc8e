"""PDF summaries, PIT, CRPS, coverage, CDE loss and calibration, against hand-computed and
analytic values."""

import numpy as np
import pytest
from scipy import stats

from hzexp.evaluation.pdfs import (
    SUMMARY_COLUMNS,
    PdfGrid,
    cde_loss,
    coverage,
    crps,
    fit_temperature,
    pdf_metrics,
    pit,
    quantiles,
    summaries,
    temper,
)

GRID = PdfGrid(z_max=1.0, n_bins=200)


def gaussian_pdfs(mu, sigma, grid=GRID):
    """Bin probabilities of Gaussians N(mu, sigma) on the grid."""
    edges = grid.edges
    return np.diff(stats.norm.cdf((edges[None, :] - np.asarray(mu)[:, None]) / sigma), axis=1)


@pytest.fixture(scope="module")
def calibrated():
    """3000 Gaussian PDFs of width 0.03 and truths drawn from them (fixed seed)."""
    rng = np.random.default_rng(0)
    mu = rng.uniform(0.15, 0.75, 3000)
    return mu, mu + 0.03 * rng.standard_normal(mu.size)


def test_a_hand_computed_histogram_pdf():
    grid = PdfGrid(z_max=1.0, n_bins=4)  # bins [0, .25) [.25, .5) [.5, .75) [.75, 1]
    pdf = np.array([[0.0, 0.5, 0.5, 0.0]])  # uniform on [0.25, 0.75]
    np.testing.assert_allclose(quantiles(pdf, grid, 0.5), [0.5])
    np.testing.assert_allclose(quantiles(pdf, grid, 0.25), [0.375])
    np.testing.assert_allclose(pit(pdf, grid, [0.3]), [0.1])
    # CRPS of U(a, b) at z inside: ((z-a)^3 + (b-z)^3) / (3 (b-a)^2)
    z = 0.3
    np.testing.assert_allclose(crps(pdf, grid, [z]),
                               [((z - .25) ** 3 + (.75 - z) ** 3) / (3 * .25)])
    # beyond the support (and the grid): int_a^b F^2 = (b - a) / 3, then 1 up to z
    np.testing.assert_allclose(crps(pdf, grid, [1.2]), [0.5 / 3 + (1.2 - 0.75)], atol=1e-12)
    # p(z) = 2 inside: int p^2 = 2, p(0.3) = 2, so 2 - 2 * 2
    assert cde_loss(pdf, grid, [0.3]) == pytest.approx(-2.0)
    frame = summaries(pdf, grid)
    assert list(frame.columns) == list(SUMMARY_COLUMNS)
    assert frame["z_phot_err"][0] == pytest.approx(0.25 * 0.6827, abs=1e-4)


def test_coverage_counts_truths_inside_central_intervals():
    grid = PdfGrid(z_max=1.0, n_bins=4)
    pdf = np.tile([0.0, 0.5, 0.5, 0.0], (4, 1))
    # central 50% of U(.25, .75) is [.375, .625]
    assert coverage(pdf, grid, [0.4, 0.6, 0.3, 0.7], 0.5) == 0.5


def test_summaries_are_ordered_and_find_the_centre_of_gaussians(calibrated):
    mu, _ = calibrated
    frame = summaries(gaussian_pdfs(mu, 0.03), GRID)
    assert np.all(frame["z_phot_lo68"] <= frame["z_phot"])
    assert np.all(frame["z_phot"] <= frame["z_phot_hi68"])
    np.testing.assert_allclose(frame["z_phot"], mu, atol=2e-4)
    np.testing.assert_allclose(frame["z_phot_err"], 0.03, atol=2e-4)
    np.testing.assert_allclose(frame["z_phot_mode"], mu, atol=GRID.width / 2 + 1e-6)


def test_crps_of_gaussians_matches_the_closed_form(calibrated):
    mu, z = calibrated
    w = (z - mu) / 0.03
    closed = 0.03 * (w * (2 * stats.norm.cdf(w) - 1) + 2 * stats.norm.pdf(w) - 1 / np.sqrt(np.pi))
    # the histogram's linear CDF differs from the Gaussian's inside each 0.005 bin: per
    # galaxy by < 0.5% of the score, and the differences cancel in the mean
    scores = crps(gaussian_pdfs(mu, 0.03), GRID, z)
    np.testing.assert_allclose(scores, closed, rtol=5e-3)
    assert np.mean(scores) == pytest.approx(np.mean(closed), rel=1e-4)


def test_calibrated_pdfs_give_a_flat_pit_and_over_confident_ones_a_u(calibrated):
    mu, z = calibrated
    good = pdf_metrics(gaussian_pdfs(mu, 0.03), GRID, z)
    assert good["pit_ks"] < 0.025 and good["pit_outlier_frac"] == 0
    assert abs(good["coverage_68"] - 0.6827) < 0.025 and abs(good["coverage_95"] - 0.9545) < 0.01
    narrow = gaussian_pdfs(mu, 0.01)
    bad = pdf_metrics(narrow, GRID, z)
    assert bad["pit_ks"] > 0.2 and bad["coverage_68"] < 0.35 and bad["crps"] > good["crps"]
    counts, _ = np.histogram(pit(narrow, GRID, z), bins=10, range=(0, 1))
    assert counts[0] > 2 * counts[4] and counts[-1] > 2 * counts[5]  # U-shaped
    # qp's PIT (which computes the statistics) agrees with ours
    from qp.metrics.pit import PIT

    from hzexp.evaluation.pdfs import qp_ensemble

    np.testing.assert_allclose(np.ravel(PIT(qp_ensemble(narrow, GRID), z).pit_samps),
                               pit(narrow, GRID, z), atol=1e-9)


def test_the_fitted_temperature_recovers_a_known_widening(calibrated):
    mu, z = calibrated
    # tempering a Gaussian by T widens it by sqrt(T): PDFs 2x too narrow need T = 4
    fitted = fit_temperature(gaussian_pdfs(mu, 0.015), GRID, z)
    assert fitted == pytest.approx(4.0, rel=0.1)
    widened = temper(gaussian_pdfs(mu, 0.015), GRID, fitted)
    assert abs(coverage(widened, GRID, z, 0.6827) - 0.6827) < 0.03
    np.testing.assert_allclose(temper(gaussian_pdfs(mu, 0.03), GRID, 1.0),
                               gaussian_pdfs(mu, 0.03) / gaussian_pdfs(mu, 0.03).sum(1)[:, None],
                               atol=1e-12)


@pytest.mark.parametrize("bad, message", [(np.full((2, 200), -0.1), "non-negative"),
                                         (np.zeros((2, 200)), "positive total"),
                                         (np.ones((2, 7)), r"shape \(N, 200\)")])
def test_unusable_pdfs_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        summaries(bad, GRID)
