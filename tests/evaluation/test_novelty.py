"""The out-of-coverage flag: about 1 - quantile of training-like galaxies flagged, galaxies
unlike the training set flagged, and the same answers after saving and loading."""

import numpy as np
import pytest

from hzexp.evaluation.novelty import TrainingCoverage


def galaxies(n, seed, shift=0.0):
    """Magnitudes on a tight colour sequence (like a training sample), optionally shifted."""
    rng = np.random.default_rng(seed)
    r = rng.uniform(16.0, 20.0, n)
    colour = rng.normal(0.0, 0.2, n)
    bands = np.arange(9) - 4
    return r[:, None] + (colour[:, None] + shift) * bands[None, :] + rng.normal(0, 0.03, (n, 9))


@pytest.fixture(scope="module")
def coverage():
    return TrainingCoverage.fit(galaxies(3000, seed=0), k=10, quantile=0.99)


def test_galaxies_like_the_training_set_are_flagged_at_the_chosen_rate(coverage):
    inside = coverage.flags(galaxies(3000, seed=1))
    assert 0.97 <= inside.mean() <= 1.0
    assert coverage.rule() == {"coverage_k": 10, "coverage_quantile": 0.99,
                               "coverage_threshold": coverage.threshold}


def test_galaxies_unlike_the_training_set_are_flagged(coverage):
    assert coverage.flags(galaxies(500, seed=2, shift=1.0)).mean() < 0.05
    faint = galaxies(500, seed=3)
    faint += 6.0  # fainter than every training galaxy (r 16-20 -> 22-26)
    assert coverage.flags(faint).mean() < 0.05


def test_missing_bands_take_the_training_median_and_the_state_round_trips(coverage, tmp_path):
    mags = galaxies(200, seed=4)
    mags[:50, 6:] = np.nan  # undetected NIR bands
    flags = coverage.flags(mags)
    assert flags.dtype == bool and flags.shape == (200,)
    coverage.save(tmp_path / "coverage.npz")
    loaded = TrainingCoverage.load(tmp_path / "coverage.npz")
    np.testing.assert_array_equal(loaded.flags(mags), flags)
    assert (loaded.k, loaded.quantile, loaded.threshold) == (coverage.k, coverage.quantile,
                                                             coverage.threshold)


def test_too_few_training_galaxies_are_refused():
    with pytest.raises(ValueError, match="more than k = 10 training galaxies"):
        TrainingCoverage.fit(galaxies(10, seed=5))
