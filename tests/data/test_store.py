import json

import h5py
import numpy as np
import pandas as pd
import pytest

from hzexp.data.store import (
    CATALOGUE_FILE,
    IMAGES_FILE,
    IMAGES_KEY,
    MANIFEST_FILE,
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
    with pytest.raises(DatasetError, match="content_hash .* does not match"):
        Dataset.open(path).verify()


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


def test_z_spec_outside_range_in_labelled_set(write_dataset):
    path = write_dataset(n=20)
    catalogue = pd.read_parquet(path / CATALOGUE_FILE)
    catalogue.loc[7, "z_spec"] = 2.5
    catalogue.to_parquet(path / CATALOGUE_FILE)
    with pytest.raises(DatasetError, match=r"z_spec = 2.5 for object_id 7 is outside \(0.0, 1.5\)"):
        Dataset.open(path)


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
