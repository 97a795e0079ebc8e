"""The official Hybrid-z FITS table: a small table with TDIM (4,36,36) round-tripped."""

import json

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.table import Table

from hzexp.data.kids.ids import KIDS_ID_FILE, kids_object_ids
from hzexp.data.kids.official import read_official_table
from hzexp.data.store import MANIFEST_FILE, Dataset, DatasetError

N_ROWS = 5
SIZE = 36
MAGS = ("umag", "gmag", "rmag", "imag", "Zmag", "Ymag", "Jmag", "Hmag", "KSmag")


def official_images(band_order=("u", "g", "r", "i")) -> np.ndarray:
    """(n, 36, 36, 4): pixel = 10000*row + 1000*band(u=0..i=3) + 36*y + x, bands in `band_order`."""
    row, y, x = np.meshgrid(np.arange(N_ROWS), np.arange(SIZE), np.arange(SIZE), indexing="ij")
    base = 10000 * row + 36 * y + x
    bands = [1000 * "ugri".index(b) for b in band_order]
    return np.stack([base + b for b in bands], axis=-1).astype(np.float32)


def write_table(path, z=None, band_order=("u", "g", "r", "i"), drop=()):
    table = Table()
    table["KiDS_ID"] = [f"KiDS J13{k}.00000+00.5000{k}" for k in range(N_ROWS)]
    table["RA"] = 130.0 + 0.01 * np.arange(N_ROWS)
    table["DEC"] = np.full(N_ROWS, 0.5)
    table["image"] = official_images(band_order)
    table["Zspec"] = np.linspace(0.05, 0.45, N_ROWS) if z is None else z
    for k, mag in enumerate(MAGS):
        table[mag] = 18.0 + 0.1 * k + 0.01 * np.arange(N_ROWS)
    table["umag"][1] = 99.0
    table.remove_columns(list(drop))
    table.write(path)
    return path


def test_table_has_fortran_order_tdim(tmp_path):
    path = write_table(tmp_path / "hz.fits")
    with fits.open(path) as hdul:
        assert hdul[1].columns["image"].dim == "(4,36,36)"
        assert hdul[1].data["image"].shape == (N_ROWS, SIZE, SIZE, 4)


def test_round_trip_keeps_pixels_ids_and_magnitudes(tmp_path):
    path = write_table(tmp_path / "hz.fits")
    out = read_official_table(path, tmp_path / "ds", chunk_size=2, progress=False)
    dataset = Dataset.open(out)
    assert len(dataset) == N_ROWS and dataset.stored_size == SIZE and dataset.labelled
    np.testing.assert_array_equal(dataset.read_images(np.arange(N_ROWS)), official_images())
    catalogue = dataset.catalogue
    ids = [f"KiDS J13{k}.00000+00.5000{k}" for k in range(N_ROWS)]
    np.testing.assert_array_equal(catalogue["object_id"], kids_object_ids(ids))
    assert pd.read_parquet(out / KIDS_ID_FILE)["kids_id"].tolist() == ids
    np.testing.assert_allclose(catalogue["z_spec"], np.linspace(0.05, 0.45, N_ROWS))
    assert np.isnan(catalogue["mag_u"][1]) and catalogue["mag_u"].notna().sum() == N_ROWS - 1
    np.testing.assert_allclose(catalogue["mag_Ks"], 18.8 + 0.01 * np.arange(N_ROWS), rtol=1e-6)
    np.testing.assert_allclose(catalogue["mag_r_auto"], catalogue["mag_r"])
    assert catalogue["magerr_r"].isna().all() and not catalogue["masked"].any()
    assert catalogue["galaxy_type"].isna().all()
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    provenance = manifest["provenance"]
    assert provenance["image_column"] == "image" and provenance["image_tdim"] == "(4,36,36)"
    assert provenance["image_bands_in_file"] == ["u", "g", "r", "i"]
    assert len(provenance["inputs"]["table"]["sha256"]) == 64


def test_other_band_order_is_put_in_contract_order(tmp_path):
    path = write_table(tmp_path / "hz.fits", band_order=("u", "r", "i", "g"))
    out = read_official_table(path, tmp_path / "ds", image_bands=("u", "r", "i", "g"),
                              progress=False)
    np.testing.assert_array_equal(Dataset.open(out).read_images(np.arange(N_ROWS)),
                                  official_images())


def test_unlabelled_table(tmp_path):
    path = write_table(tmp_path / "hz.fits", drop=("Zspec",))
    dataset = Dataset.open(read_official_table(path, tmp_path / "ds", z_column=None,
                                               progress=False))
    assert dataset.catalogue["z_spec"].isna().all() and not dataset.labelled
    assert np.isnan(dataset.psf_array).all()  # the table has no seeing: unknown


def test_redshifts_are_kept_as_read_and_checked_where_used(tmp_path):
    path = write_table(tmp_path / "hz.fits", z=[0.1, 0.2, 1.7, np.nan, 0.2])
    dataset = Dataset.open(read_official_table(path, tmp_path / "ds", chunk_size=2,
                                               progress=False))  # a prediction input
    np.testing.assert_array_equal(dataset.catalogue["z_spec"], [0.1, 0.2, 1.7, np.nan, 0.2])
    with pytest.raises(DatasetError, match=r"training needs z_spec .* 2 of 5 rows lack one: "
                                           r"row 2 \(object_id \d+\): 1.7 outside .*; row 3 "
                                           r"\(object_id \d+\): null$"):
        dataset.check_labels("training")


def test_a_file_that_is_not_fits_is_named(tmp_path):
    path = tmp_path / "hz.fits"
    path.write_text("KiDS_ID,RA,DEC\n")
    with pytest.raises(DatasetError, match=r"hz.fits: not a readable FITS file \(") as err:
        read_official_table(path, tmp_path / "ds", progress=False)
    assert "\n" not in str(err.value) and sorted(p.name for p in tmp_path.iterdir()) == ["hz.fits"]


def test_missing_column_is_named(tmp_path):
    path = write_table(tmp_path / "hz.fits", drop=("KSmag",))
    with pytest.raises(DatasetError, match=r"hz.fits: required column 'KSmag' missing"):
        read_official_table(path, tmp_path / "ds", progress=False)
