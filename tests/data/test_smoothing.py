"""n(z) smoothing (paper 5.3): spikes flattened, smooth n(z) untouched, exact and reproducible."""

import numpy as np
import pytest

from hzexp.data.smoothing import smooth_nz, smoothed_counts


def smooth_sample(n: int, seed: int = 0) -> np.ndarray:
    """A GAMA-like smooth n(z) ~ z^2 exp(-z / 0.065), cut to 0.002 < z < 0.8."""
    z = np.random.default_rng(seed).gamma(3.0, 0.065, int(1.2 * n))
    return z[(z > 0.002) & (z < 0.8)][:n]


@pytest.fixture(scope="module")
def spiky():
    """A smooth sample plus a one-bin spike at 0.10-0.11 (a wall of 8000 galaxies)."""
    spike = np.random.default_rng(1).uniform(0.1002, 0.1098, 8000)
    return np.concatenate([smooth_sample(150_000), spike])


def test_spike_is_cut_to_its_neighbours_mean(spiky):
    result = smooth_nz(spiky, seed=3)
    k = int(np.searchsorted(result.edges, 0.105)) - 1
    neighbours = result.original_counts[[k - 1, k + 1]].mean()
    assert result.original_counts[k] > 2 * neighbours
    assert result.target_counts[k] == pytest.approx(neighbours, rel=0.02)
    others = np.delete(np.arange(len(result.edges) - 1), k)
    assert result.target_counts[others].sum() > 0.97 * result.original_counts[others].sum()


def test_counts_per_bin_equal_the_targets(spiky):
    result = smooth_nz(spiky, seed=3)
    kept, _ = np.histogram(spiky[result.indices], result.edges)
    np.testing.assert_array_equal(kept, result.target_counts)
    assert result.kept_fraction == len(result.indices) / len(spiky)


def test_selected_rows_are_a_sorted_subset_without_duplicates(spiky):
    indices = smooth_nz(spiky, seed=3).indices
    assert indices.dtype == np.int64 and np.all(np.diff(indices) > 0)
    assert indices.min() >= 0 and indices.max() < len(spiky)


def test_smooth_distribution_is_nearly_untouched():
    for n in (20_000, 150_000):
        assert smooth_nz(smooth_sample(n, seed=n)).kept_fraction > 0.95


def test_deterministic_for_a_seed(spiky):
    a, b = smooth_nz(spiky, seed=7), smooth_nz(spiky, seed=7)
    np.testing.assert_array_equal(a.indices, b.indices)
    other = smooth_nz(spiky, seed=8)
    np.testing.assert_array_equal(other.target_counts, a.target_counts)
    assert not np.array_equal(other.indices, a.indices)


def test_explicit_bins_exclude_redshifts_outside_them(spiky):
    result = smooth_nz(spiky, bins=np.linspace(0.05, 0.5, 46))
    assert result.original_counts.sum() < len(spiky)
    kept = spiky[result.indices]
    assert kept.min() >= 0.05 and kept.max() <= 0.5


def test_end_bins_compare_with_their_one_neighbour():
    assert smoothed_counts(np.array([5000, 1000, 1000, 1000])).tolist() == [1000, 1000, 1000, 1000]
    assert smoothed_counts(np.array([1000, 1000, 1000, 1030])).tolist() == [1000, 1000, 1000, 1030]


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="non-finite"):
        smooth_nz(np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match=">= 1"):
        smooth_nz(np.array([0.1, 0.2]), thresholds=(0.9,))
