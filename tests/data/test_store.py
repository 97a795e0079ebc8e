import json
import logging
import os
import re
import shutil
import time

import h5py
import numpy as np
import pandas as pd
import pytest

from hzexp.data.store import (
    CATALOGUE_COLUMNS,
    CATALOGUE_FILE,
    CONTENT_CHECK_KEYS,
    IMAGES_FILE,
    IMAGES_KEY,
    MAG_COLUMNS,
    MANIFEST_FILE,
    PSF_COLUMNS,
    ContentHash,
    Dataset,
    DatasetError,
    DatasetWriter,
)
from tests.helpers import synthetic_catalogue, synthetic_images


def test_round_trip_reads_back_what_was_written(write_dataset):
    path = write_dataset(n=120, chunk=50)
    ds = Dataset.open(path)
    assert len(ds) == 120 and ds.stored_size == 48 and ds.labelled
    expected = synthetic_images(50, seed=50)[:3]
    np.testing.assert_array_equal(ds.read_images(np.array([50, 51, 52])), expected)
    assert ds.catalogue["image_index"].tolist() == list(range(120))
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    assert manifest["image_bands"] == ["u", "g", "r", "i"] and manifest["n_galaxies"] == 120


def test_read_images_keeps_the_requested_order(write_dataset):
    ds = Dataset.open(write_dataset(n=120))
    rows = np.array([100, 3, 57, 4])
    images = ds.read_images(rows)
    for k, row in enumerate(rows):
        np.testing.assert_array_equal(images[k], ds.read_images(np.array([row]))[0])


@pytest.mark.parametrize("rows", [np.arange(30, 90),                # contiguous: one run
                                  np.arange(0, 120, 2)[5:50],      # dense with gaps: one span
                                  np.array([2, 3, 4, 60, 61, 119]),  # sparse: its runs
                                  np.array([7, 7, 8, 8, 9]),       # sorted with repeats
                                  np.array([90, 10, 50, 10, 11])])  # unsorted with a repeat
def test_read_images_matches_the_stored_array_on_every_read_path(write_dataset, rows):
    ds = Dataset.open(write_dataset(n=120, chunk=50))
    with h5py.File(ds.path / IMAGES_FILE) as h5:
        stored = h5[IMAGES_KEY][:]
    expected = stored[ds.catalogue["image_index"].to_numpy()[rows]]
    np.testing.assert_array_equal(ds.read_images(rows), expected)


def test_chunks_cover_all_rows_once(write_dataset):
    ds = Dataset.open(write_dataset(n=120))
    seen = [c["object_id"].to_numpy() for c, _ in ds.iter_chunks(chunk_size=33)]
    assert [len(s) for s in seen] == [33, 33, 33, 21]
    assert np.array_equal(np.concatenate(seen), np.arange(120))


def test_content_hash_is_recomputable_and_chunking_independent(write_dataset):
    a = Dataset.open(write_dataset(n=120, chunk=50, name="a"))
    b = Dataset.open(write_dataset(n=120, chunk=50, name="b"))
    assert a.content_hash == b.content_hash == a.recompute_hash(chunk_size=7)
    a.verify()


def test_tampered_pixels_fail_verification(write_dataset):
    path = write_dataset(n=60)
    with h5py.File(path / IMAGES_FILE, "r+") as h5:
        h5["images"][5, 0, 0, 0] += 1.0
    with pytest.raises(DatasetError, match="content_hash .* does not match .*: images.h5 changed"):
        Dataset.open(path, check_content=False).verify()


def test_failed_write_leaves_nothing_behind(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(RuntimeError):
        with DatasetWriter(out, 48, {}) as writer:
            writer.append(synthetic_catalogue(10), synthetic_images(10))
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_existing_directory_is_not_overwritten_silently(write_dataset):
    path = write_dataset(n=10)
    with pytest.raises(DatasetError, match="already exists"):
        DatasetWriter(path, 48, {})


def _write_bad(tmp_path, catalogue, images):
    with DatasetWriter(tmp_path / "bad", 48, {}) as writer:
        writer.append(catalogue, images)


def test_misspelt_column_is_named_with_a_hint(tmp_path):
    catalogue = synthetic_catalogue(5).rename(columns={"mag_Ks": "mag_KS"})
    hint = r"missing column\(s\) mag_Ks -- mag_Ks \(found 'mag_KS'\?\)"
    with pytest.raises(DatasetError, match=hint):
        _write_bad(tmp_path, catalogue, synthetic_images(5))


def test_duplicate_object_id_is_named(tmp_path):
    catalogue = synthetic_catalogue(5)
    catalogue.loc[3, "object_id"] = 1
    with pytest.raises(DatasetError, match="duplicate object_id 1"):
        _write_bad(tmp_path, catalogue, synthetic_images(5))


def test_wrong_band_count_and_shape_are_rejected(tmp_path):
    with pytest.raises(DatasetError, match=r"expected \(N, S, S, 4\) with bands u,g,r,i"):
        _write_bad(tmp_path, synthetic_catalogue(5), synthetic_images(5)[..., :3])
    with pytest.raises(DatasetError, match=r"shape \(5, 40, 40, 4\); expected \(5, 48, 48, 4\)"):
        _write_bad(tmp_path, synthetic_catalogue(5), synthetic_images(5, size=40))


def test_non_finite_pixels_name_the_object(tmp_path):
    images = synthetic_images(5)
    images[2, 10, 10, 1] = np.nan
    with pytest.raises(DatasetError, match="non-finite pixels in the image of object_id 2"):
        _write_bad(tmp_path, synthetic_catalogue(5), images)


def test_z_spec_is_checked_where_it_is_used_naming_the_rows(tmp_path):
    catalogue = synthetic_catalogue(20)
    catalogue.loc[7, "z_spec"] = 2.5
    catalogue.loc[[3, 11], "z_spec"] = np.nan
    _write_bad(tmp_path, catalogue, synthetic_images(20))
    dataset = Dataset.open(tmp_path / "bad")  # a partly labelled catalogue opens
    assert not dataset.labelled
    rows = (r"training needs z_spec in \(0.0, 1.5\) for every galaxy; 3 of 20 rows lack one: "
            r"row 3 \(object_id 3\): null; row 7 \(object_id 7\): 2.5 outside \(0.0, 1.5\); "
            r"row 11 \(object_id 11\): null$")
    with pytest.raises(DatasetError, match=rows):
        dataset.check_labels("training")


def test_image_count_mismatch(write_dataset):
    path = write_dataset(n=20)
    catalogue = pd.read_parquet(path / CATALOGUE_FILE)
    catalogue.iloc[:19].to_parquet(path / CATALOGUE_FILE)
    with pytest.raises(DatasetError, match="20 images for 19 catalogue rows"):
        Dataset.open(path)


def test_unlabelled_catalogue_is_allowed(tmp_path):
    catalogue = synthetic_catalogue(6)
    catalogue["z_spec"] = np.nan
    _write_bad(tmp_path, catalogue, synthetic_images(6))
    assert not Dataset.open(tmp_path / "bad").labelled


def test_incomplete_directory_is_reported(write_dataset):
    path = write_dataset(n=10)
    (path / MANIFEST_FILE).unlink()
    with pytest.raises(DatasetError, match="manifest.json: missing"):
        Dataset.open(path)


def _without_content_checks(path):
    """Strip the manifest of the keys hzexp did not write before it checked content: a
    dataset directory written by older code."""
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    for key in CONTENT_CHECK_KEYS:
        del manifest[key]
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))


def _edit_catalogue(path, changes):
    """Set {(row, column): value} in catalogue.parquet, behind the manifest's back."""
    catalogue = pd.read_parquet(path / CATALOGUE_FILE)
    for (row, column), value in changes.items():
        catalogue.loc[row, column] = value
    catalogue.to_parquet(path / CATALOGUE_FILE)


UNPHYSICAL = {(0, "mag_u"): 99.0, (1, "mag_Ks"): -99.0, (2, "mag_r"): 45.0, (3, "mag_g"): 2.0}


def test_kids_sentinels_and_unphysical_magnitudes_read_as_missing(tmp_path, write_dataset):
    expected = np.array(synthetic_catalogue(6)[list(MAG_COLUMNS)], dtype=np.float32)
    for row, column in UNPHYSICAL:
        expected[row, MAG_COLUMNS.index(column)] = np.nan
    catalogue = synthetic_catalogue(6)
    for (row, column), value in UNPHYSICAL.items():
        catalogue.loc[row, column] = value
    _write_bad(tmp_path, catalogue, synthetic_images(6))  # the writer applies the rule
    written = Dataset.open(tmp_path / "bad")
    np.testing.assert_array_equal(written.magnitude_array, expected)
    errors = written.catalogue[["magerr_u", "magerr_Ks"]].to_numpy()
    assert np.isnan([errors[0, 0], errors[1, 1]]).all() and np.isfinite(errors[2:]).all()
    old = write_dataset(n=6, chunk=6)  # the same rows, stored with the sentinels by older code
    _edit_catalogue(old, UNPHYSICAL)
    _without_content_checks(old)
    np.testing.assert_array_equal(Dataset.open(old).magnitude_array, expected)


def test_a_catalogue_edited_behind_its_manifest_is_refused(write_dataset):
    path = write_dataset(n=30)
    _edit_catalogue(path, {(4, "mag_r"): 21.5, (5, "z_spec"): 0.3})
    stale = f"^{re.escape(str(path))}: catalogue.parquet was changed after manifest.json"
    with pytest.raises(DatasetError, match=stale):
        Dataset.open(path)
    with pytest.raises(DatasetError, match="does not match the stored data .*: catalogue.parquet "
                                           "changed$"):
        Dataset.open(path, check_content=False).verify()


def test_rewritten_images_are_refused_and_a_verified_copy_opens(write_dataset, tmp_path):
    path = write_dataset(n=30)
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    stamp = (copy / IMAGES_FILE).stat().st_mtime_ns + 10**9
    os.utime(copy / IMAGES_FILE, ns=(stamp, stamp))  # what a copy without -p does
    rewritten = f"^{re.escape(str(copy))}: images.h5 was rewritten"
    with pytest.raises(DatasetError, match=rewritten):
        Dataset.open(copy)
    assert Dataset.open(copy, check_content=False).verify() == ["images_file"]
    assert Dataset.open(copy).content_hash == Dataset.open(path).content_hash
    time.sleep(0.05)  # past the filesystem clock's tick, so the edit has a new mtime
    with h5py.File(path / IMAGES_FILE, "r+") as h5:
        h5[IMAGES_KEY][5, 0, 0, 0] += 1.0
    with pytest.raises(DatasetError, match=f"^{re.escape(str(path))}: images.h5 was rewritten"):
        Dataset.open(path)


def test_a_dataset_from_before_content_checks_opens_and_verify_records_them(write_dataset,
                                                                           caplog):
    path = write_dataset(n=30)
    _without_content_checks(path)
    with caplog.at_level(logging.WARNING, logger="hzexp.data.store"):
        dataset = Dataset.open(path)
    assert f"hzexp verify {path}" in caplog.text
    assert dataset.verify() == list(CONTENT_CHECK_KEYS)
    _edit_catalogue(path, {(4, "mag_r"): 21.5})
    with pytest.raises(DatasetError, match="catalogue.parquet was changed"):
        Dataset.open(path)


CORRUPTIONS = {
    "garbage catalogue": (CATALOGUE_FILE, lambda data: b"not a parquet file" * 20),
    "garbage images": (IMAGES_FILE, lambda data: np.random.default_rng(0).bytes(4096)),
    "truncated images": (IMAGES_FILE, lambda data: data[:len(data) // 2]),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupt_files_are_one_line_errors_naming_them(write_dataset, case):
    name, damage = CORRUPTIONS[case]
    path = write_dataset(n=30)
    (path / name).write_bytes(damage((path / name).read_bytes()))
    with pytest.raises(DatasetError, match=f"^{re.escape(str(path / name))}: cannot be read, "
                                           "corrupt or truncated") as err:
        Dataset.open(path)
    assert "\n" not in str(err.value)


def test_an_empty_catalogue_is_refused(write_dataset):
    path = write_dataset(n=10)
    pd.read_parquet(path / CATALOGUE_FILE).iloc[:0].to_parquet(path / CATALOGUE_FILE)
    with pytest.raises(DatasetError, match=f"^{re.escape(str(path))}: the catalogue has no "
                                           "galaxies$"):
        Dataset.open(path)


def test_psf_columns_round_trip_and_a_source_without_them_writes_them_unknown(tmp_path):
    catalogue = synthetic_catalogue(6)
    with DatasetWriter(tmp_path / "seen", 48, {}) as writer:
        writer.append(catalogue, synthetic_images(6))
    np.testing.assert_allclose(Dataset.open(tmp_path / "seen").psf_array,
                               catalogue[list(PSF_COLUMNS)].to_numpy(), rtol=1e-6)
    with DatasetWriter(tmp_path / "unseen", 48, {}) as writer:
        writer.append(catalogue.drop(columns=list(PSF_COLUMNS)), synthetic_images(6))
    assert np.isnan(Dataset.open(tmp_path / "unseen").psf_array).all()


def test_a_dataset_from_before_the_psf_columns_opens_with_unknown_seeing(write_dataset):
    """Written by older code: no PSF columns and a catalogue hash over the old columns."""
    path = write_dataset(n=30)
    catalogue = pd.read_parquet(path / CATALOGUE_FILE).drop(columns=list(PSF_COLUMNS))
    catalogue.to_parquet(path / CATALOGUE_FILE)
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    old_hash = ContentHash(CATALOGUE_COLUMNS)
    old_hash.update_catalogue(catalogue)
    del manifest["catalogue_columns"]
    manifest["catalogue_hash"] = old_hash.catalogue_hexdigest()
    manifest["images_file"] = {"bytes": (path / IMAGES_FILE).stat().st_size,
                               "mtime_ns": (path / IMAGES_FILE).stat().st_mtime_ns}
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))
    dataset = Dataset.open(path)
    assert np.isnan(dataset.psf_array).all() and dataset.psf_array.shape == (30, 4)
    _edit_catalogue(path, {(4, "mag_r"): 21.5})
    with pytest.raises(DatasetError, match="catalogue.parquet was changed"):
        Dataset.open(path)


@pytest.mark.parametrize("value", [0.0, -1.0, 99.0])
def test_an_impossible_psf_fwhm_is_named(tmp_path, value):
    catalogue = synthetic_catalogue(5)
    catalogue.loc[2, "psf_fwhm_g"] = value
    with pytest.raises(DatasetError, match=rf"column psf_fwhm_g has {value} \(object_id 2\)"):
        _write_bad(tmp_path, catalogue, synthetic_images(5))
