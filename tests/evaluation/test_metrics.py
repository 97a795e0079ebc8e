"""Point metrics against hand-computed values, input errors, and Dz-distribution fits."""

import numpy as np
import pytest
from scipy import integrate, stats

from hzexp.evaluation.metrics import (
    Dz,
    dz,
    fit_dz_distribution,
    gaussian_pdf,
    lorentzian_pdf,
    point_metrics,
    smad,
)

# Dz = [0, 0.01, -0.02, 0.2] by construction: dz = Dz * (1 + z_spec) = [0, 0.012, -0.026, 0.28]
Z_SPEC = np.array([0.1, 0.2, 0.3, 0.4])
Z_PHOT = np.array([0.1, 0.212, 0.274, 0.68])


def test_dz_and_normalised_dz_by_hand():
    np.testing.assert_allclose(dz(Z_SPEC, Z_PHOT), [0.0, 0.012, -0.026, 0.28], atol=1e-12)
    np.testing.assert_allclose(Dz(Z_SPEC, Z_PHOT), [0.0, 0.01, -0.02, 0.2], atol=1e-12)


def test_smad_by_hand():
    # median 0.005; |x - median| = [0.005, 0.005, 0.025, 0.195]; their median 0.015
    assert smad([0.0, 0.01, -0.02, 0.2]) == pytest.approx(1.4826 * 0.015)
    # odd length: median 2, deviations [1, 0, 8] -> median 1
    assert smad([1.0, 2.0, 10.0]) == pytest.approx(1.4826)


def test_smad_converges_to_sigma_for_a_gaussian():
    draws = np.random.default_rng(3).normal(0.0, 0.02, 200_000)
    assert smad(draws) == pytest.approx(0.02, rel=0.01)


def test_point_metrics_by_hand():
    metrics = point_metrics(Z_SPEC, Z_PHOT)
    assert set(metrics) == {
        "bias_mean", "dz_mean", "sigma_dz", "smad_dz", "outlier_frac", "r2", "mae", "mse", "n",
    }
    assert metrics["bias_mean"] == pytest.approx(0.266 / 4)
    assert metrics["dz_mean"] == pytest.approx(0.19 / 4)
    # deviations from 0.0475: -0.0475, -0.0375, -0.0675, 0.1525 -> squares sum to 0.031475
    assert metrics["sigma_dz"] == pytest.approx(np.sqrt(0.031475 / 4))
    assert metrics["smad_dz"] == pytest.approx(1.4826 * 0.015)
    assert metrics["outlier_frac"] == 0.25  # only |0.2| > 0.15
    assert metrics["mae"] == pytest.approx(0.318 / 4)
    assert metrics["mse"] == pytest.approx(0.07922 / 4)
    # SS_res = 0.07922, SS_tot around mean 0.25 = 0.05
    assert metrics["r2"] == pytest.approx(1 - 0.07922 / 0.05)
    assert metrics["n"] == 4
    assert all(type(value) in (float, int) for value in metrics.values())


def test_perfect_predictions():
    metrics = point_metrics(Z_SPEC, Z_SPEC)
    assert metrics["r2"] == 1.0
    assert metrics["smad_dz"] == metrics["sigma_dz"] == metrics["outlier_frac"] == 0.0


def test_r2_is_nan_when_z_spec_is_constant():
    assert np.isnan(point_metrics([0.3, 0.3], [0.2, 0.4])["r2"])


@pytest.mark.parametrize(
    ("z_spec", "z_phot", "message"),
    [
        ([0.1, 0.2], [0.1], "length mismatch"),
        ([], [], "z_spec is empty"),
        ([0.1, np.nan], [0.1, 0.2], "z_spec has 1 non-finite"),
        ([0.1, 0.2], [np.inf, 0.2], "z_phot has 1 non-finite"),
        ([[0.1, 0.2]], [[0.1, 0.2]], "z_spec must be 1-D"),
        ([-1.0, 0.2], [0.1, 0.2], "z_spec must be > -1"),
    ],
)
def test_invalid_input_is_rejected_with_a_named_reason(z_spec, z_phot, message):
    with pytest.raises(ValueError, match=message):
        point_metrics(z_spec, z_phot)


def test_smad_rejects_empty_and_nan():
    with pytest.raises(ValueError, match="empty"):
        smad([])
    with pytest.raises(ValueError, match="non-finite"):
        smad([0.1, np.nan])


def _generalised_lorentzian_draws(a, s, size, seed):
    """Eq. 10 is a Student-t with nu = 2a - 1 and scale s * sqrt(2a / (2a - 1))."""
    nu = 2 * a - 1
    return stats.t.rvs(df=nu, scale=s * np.sqrt(2 * a / nu), size=size, random_state=seed)


def test_lorentzian_pdf_is_normalised_and_has_the_eq10_shape():
    a, s = 2.332, 0.0116
    area, _ = integrate.quad(lambda x: lorentzian_pdf(x, a, s), -np.inf, np.inf)
    assert area == pytest.approx(1.0, abs=1e-8)
    x = np.linspace(-0.1, 0.1, 11)
    shape = (1 + x**2 / (2 * a * s**2)) ** -a
    np.testing.assert_allclose(lorentzian_pdf(x, a, s) / lorentzian_pdf(0.0, a, s), shape)


def test_lorentzian_pdf_tends_to_a_gaussian_of_width_s():
    x = np.linspace(-0.05, 0.05, 21)
    np.testing.assert_allclose(lorentzian_pdf(x, 1e6, 0.01), gaussian_pdf(x, 0.0, 0.01), rtol=1e-4)


def test_lorentzian_pdf_rejects_unnormalisable_parameters():
    with pytest.raises(ValueError, match="a > 0.5"):
        lorentzian_pdf(0.0, 0.5, 0.01)
    with pytest.raises(ValueError, match="s > 0"):
        lorentzian_pdf(0.0, 2.0, 0.0)


def test_fit_recovers_gaussian_parameters():
    draws = np.random.default_rng(7).normal(2.56e-4, 0.0145, 50_000)
    fit = fit_dz_distribution(draws)
    assert fit["gauss_sigma"] == pytest.approx(0.0145, rel=0.05)
    assert fit["gauss_mu"] == pytest.approx(2.56e-4, abs=3e-4)
    # a Gaussian is the a -> infinity limit of eq. 10, with s -> sigma
    assert fit["lorentz_s"] == pytest.approx(0.0145, rel=0.05)
    assert fit["lorentz_a"] > 10


def test_fit_recovers_generalised_lorentzian_parameters():
    draws = _generalised_lorentzian_draws(a=2.332, s=0.0116, size=50_000, seed=11)
    fit = fit_dz_distribution(draws)
    assert fit["lorentz_a"] == pytest.approx(2.332, rel=0.10)
    assert fit["lorentz_s"] == pytest.approx(0.0116, rel=0.10)
    # the wings make the Gaussian a much worse (and wider) description, as in the paper
    assert fit["lorentz_deviance"] < 0.1 * fit["gauss_deviance"]
    assert fit["gauss_sigma"] > fit["lorentz_s"]


def test_fit_is_insensitive_to_outliers_outside_the_window():
    core = np.random.default_rng(5).normal(0.0, 0.015, 20_000)
    outliers = np.random.default_rng(6).uniform(0.3, 0.8, 400)
    with_outliers = fit_dz_distribution(np.concatenate([core, outliers]))
    assert with_outliers["gauss_sigma"] == pytest.approx(0.015, rel=0.05)


def test_fit_needs_data_in_the_window():
    with pytest.raises(ValueError, match="too few to fit"):
        fit_dz_distribution(np.random.default_rng(0).normal(0.5, 0.01, 1000))
    with pytest.raises(ValueError, match="zero SMAD"):
        fit_dz_distribution(np.zeros(100))
