"""KiDS-Bright catalogue reading: file formats, column mapping, flags and galaxy types."""

import numpy as np
import pandas as pd
import pytest

from hzexp.data.kids.catalogue import galaxy_types, read_photometry
from hzexp.data.store import DatasetError
from tests.helpers.kids_fixtures import photometry_table


@pytest.fixture(scope="module")
def catalogues(tmp_path_factory):
    """The same catalogue as FITS, parquet and CSV."""
    root = tmp_path_factory.mktemp("catalogues")
    table = photometry_table()
    table["TYPE"] = np.where(table["RED_SEQUENCE"] == 1, "red", "blue")
    paths = [root / "bright.fits", root / "bright.parquet", root / "bright.csv"]
    table.write(paths[0])
    table.to_pandas().to_parquet(paths[1])
    table.write(paths[2])
    return paths


def test_formats_give_the_same_selected_catalogue(catalogues):
    results = [read_photometry(path, {"galaxy_type": "TYPE"}) for path in catalogues]
    first, failures, n_read = results[0]
    assert n_read == 20 and len(first) == 15
    for catalogue, other_failures, other_read in results[1:]:
        pd.testing.assert_frame_equal(catalogue, first)
        assert (other_failures, other_read) == (failures, n_read)
    assert first["kids_id"].str.startswith("KiDS J").all()
    assert first["object_id"].dtype == np.int64 and first["object_id"].is_unique


def test_mask_bits_flag_rows_but_do_not_cut_them(catalogues):
    catalogue, _, _ = read_photometry(catalogues[0], {})
    assert catalogue["masked"].sum() == 1           # MASK=4 is in 28668, MASK=2 is not
    assert catalogue["galaxy_type"].isna().all()    # no classification column mapped


def test_galaxy_type_values():
    values = pd.Series(["red", " Blue ", 1, 0, True, False, None, np.nan, 1.0])
    assert galaxy_types(values, "t").tolist() == ["red", "blue", "red", "blue", "red", "blue",
                                                  None, None, "red"]
    with pytest.raises(DatasetError, match="t: galaxy type value 'green'"):
        galaxy_types(pd.Series(["red", "green"]), "t")
