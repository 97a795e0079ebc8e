"""The cached template x band x redshift flux table."""

from __future__ import annotations

import numpy as np

from hzexp.data.mock.flux_table import survey_flux_table


def test_flux_table_is_cached_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("HZEXP_CACHE_DIR", str(tmp_path))
    built = survey_flux_table()
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"
    loaded = survey_flux_table()
    np.testing.assert_array_equal(built.flux, loaded.flux)
