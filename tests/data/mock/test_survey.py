"""The mock survey as a dataset: determinism, atomic writing, manifest, n(z)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from hzexp.data.mock.parameters import MockParameters
from hzexp.data.mock.survey import GENERATION_BLOCK, MockSurvey, mock_fingerprint, simulate
from hzexp.data.store import PSF_COLUMNS, Dataset


def test_same_seed_same_hash_different_seed_different(tmp_path):
    first = simulate(tmp_path / "a", 300, seed=1, progress=False)
    again = simulate(tmp_path / "b", 300, seed=1, progress=False)
    other = simulate(tmp_path / "c", 300, seed=2, progress=False)
    hashes = [Dataset.open(p).content_hash for p in (first, again, other)]
    assert hashes[0] == hashes[1]
    assert hashes[0] != hashes[2]


def test_content_does_not_depend_on_chunk_size(tmp_path):
    n = GENERATION_BLOCK + 100
    small = Dataset.open(simulate(tmp_path / "a", n, seed=5, chunk_size=64, progress=False))
    large = Dataset.open(simulate(tmp_path / "b", n, seed=5, chunk_size=10_000, progress=False))
    assert len(small) == n
    assert small.content_hash == large.content_hash
    small.verify()


def test_failure_mid_run_leaves_nothing(tmp_path, monkeypatch):
    real_block = MockSurvey.block

    def failing_block(self, seed, index, stored_size):
        if index == 1:
            raise RuntimeError("disk full")
        return real_block(self, seed, index, stored_size)

    monkeypatch.setattr(MockSurvey, "block", failing_block)
    with pytest.raises(RuntimeError, match="disk full"):
        simulate(tmp_path / "out", 2 * GENERATION_BLOCK, seed=1, chunk_size=64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_manifest_records_the_parameters(small_mock):
    provenance = small_mock.manifest["provenance"]
    assert provenance["seed"] == 7
    as_json = json.loads(json.dumps(MockParameters().as_provenance()))  # tuples -> lists
    assert provenance["parameters"] == as_json


def test_manifest_records_the_mock_fingerprint(small_mock):
    provenance = small_mock.manifest["provenance"]
    assert provenance["mock_fingerprint"] == mock_fingerprint()
    assert mock_fingerprint() == mock_fingerprint(MockParameters())
    other = dataclasses.replace(MockParameters(), gaap_sigma_mag=0.021)
    assert mock_fingerprint(other) != mock_fingerprint()
    assert len(mock_fingerprint()) == 16


def test_fingerprint_changes_with_the_model_version(monkeypatch):
    import hzexp.data.mock.survey as mock

    current = mock_fingerprint()
    monkeypatch.setattr(mock, "MOCK_MODEL_VERSION", mock.MOCK_MODEL_VERSION + 1)
    assert mock.mock_fingerprint() != current


def test_nz_red_fraction_and_selection(galaxies):
    z = galaxies.galaxies["z"]
    assert 0.20 < z.mean() < 0.26
    assert 0.01 < (z > 0.45).mean() < 0.1
    assert 0.33 < galaxies.galaxies["is_red"].mean() < 0.47
    assert (galaxies.catalogue["mag_r_auto"] < 20).all()


def test_seeing_is_per_tile_and_kids_like(survey, small_mock):
    """Every galaxy of a 1 deg tile shares its seeing; r is best, u worst; r spans a KiDS-like
    ~0.5-1" (Kuijken et al. 2019)."""
    catalogue = small_mock.catalogue
    tile = (np.floor(catalogue["ra"]).astype(int).astype(str) + ","
            + np.floor(catalogue["dec"]).astype(int).astype(str))
    per_tile = catalogue[list(PSF_COLUMNS)].groupby(tile.to_numpy()).nunique()
    assert (per_tile == 1).all().all() and len(per_tile) > 20
    seeing = survey.tile_seeing(7)
    medians = np.median(seeing.reshape(-1, 4), axis=0)
    np.testing.assert_allclose(medians, survey.params.psf_fwhm_median_arcsec, rtol=0.01)
    r = seeing[..., PSF_COLUMNS.index("psf_fwhm_r")]
    assert 0.5 < np.quantile(r, 0.01) and np.quantile(r, 0.99) < 1.0
    assert medians.argmin() == 2 and medians.argmax() == 0


def test_seeing_scale_makes_every_tile_worse_by_that_factor():
    scaled = MockSurvey(dataclasses.replace(MockParameters(), psf_fwhm_scale=1.2))
    np.testing.assert_allclose(scaled.tile_seeing(3), 1.2 * MockSurvey().tile_seeing(3),
                               rtol=1e-6)


def test_a_pipeline_mock_with_other_parameters_is_made_and_cached_with_them(tmp_path):
    """data.mock.parameters reach the mock (and its fingerprint): the cached mock of the
    default parameters is rebuilt, not reused, for a 20%-worse-seeing pipeline."""
    from hzexp.config import DataConfig, MockConfig
    from hzexp.data.sources import resolve_dataset

    path = tmp_path / "mock"
    home = resolve_dataset(DataConfig(path=str(path), mock=MockConfig(n_galaxies=30, seed=3)),
                           progress=False)
    worse = resolve_dataset(DataConfig(path=str(path), mock=MockConfig(
        n_galaxies=30, seed=3, parameters={"psf_fwhm_scale": 1.2})), progress=False)
    np.testing.assert_allclose(worse.psf_array, 1.2 * home.psf_array, rtol=1e-6)
    np.testing.assert_array_equal(worse.catalogue["z_spec"], home.catalogue["z_spec"])
    assert worse.manifest["provenance"]["parameters"]["psf_fwhm_scale"] == 1.2
