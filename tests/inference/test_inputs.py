"""What predictions read: magnitudes by the store's missing-value rule on every path,
partly labelled catalogues, and inputs that cannot be read (issue 18 items 4, 7 and 9)."""

import json

import numpy as np
import pytest

from hzexp import tracking
from hzexp.data.store import (
    CATALOGUE_FILE,
    CONTENT_CHECK_KEYS,
    MAG_COLUMNS,
    MANIFEST_FILE,
    DatasetError,
    DatasetWriter,
)
from hzexp.experiment import tracked_evaluation
from hzexp.inference import PredictionError, predict_catalogue, read_predictions
from tests.helpers.inference import leftovers

N_ROWS = 40
#: Row k loses band k: KiDS' two sentinels in turn, and one value no galaxy has.
MISSING = {k: (99.0, -99.0)[k % 2] for k in range(len(MAG_COLUMNS))} | {len(MAG_COLUMNS): 55.0}


def written_copy(dataset, path, catalogue):
    """`catalogue` (rows of `dataset`, in order) with their images, by the store's writer."""
    with DatasetWriter(path, dataset.stored_size, {"test": True}) as writer:
        writer.append(catalogue.drop(columns="image_index"),
                      dataset.read_images(np.arange(len(catalogue))))
    return path


def with_values(catalogue, missing: dict[int, float], nan: bool):
    """Row k's band k (the last row: band 0) set to its `missing` value, or to NaN."""
    catalogue = catalogue.copy()
    for row, value in missing.items():
        catalogue.loc[row, MAG_COLUMNS[row % len(MAG_COLUMNS)]] = np.nan if nan else value
    return catalogue


def as_older_code_wrote_it(path, catalogue):
    """`path`'s catalogue replaced by `catalogue` and its manifest stripped of the content
    checks: a dataset written, sentinels and all, by hzexp before this rule."""
    catalogue.to_parquet(path / CATALOGUE_FILE)
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    (path / MANIFEST_FILE).write_text(json.dumps({k: v for k, v in manifest.items()
                                                  if k not in CONTENT_CHECK_KEYS}))
    return path


def z_phot(data, out):
    predict_catalogue(data, out, progress=False)
    return read_predictions(out)[0]["z_phot"].to_numpy()


def test_sentinel_magnitudes_predict_like_nan_on_every_path(champion, tmp_path):
    dataset = champion["dataset"]
    rows = dataset.catalogue.iloc[:N_ROWS].reset_index(drop=True)
    reference = written_copy(dataset, tmp_path / "nan", with_values(rows, MISSING, nan=True))
    sentinels = with_values(rows, MISSING, nan=False)
    written = written_copy(dataset, tmp_path / "written", sentinels)
    older = as_older_code_wrote_it(written_copy(dataset, tmp_path / "older", rows), sentinels)
    expected = z_phot(reference, tmp_path / "nan.parquet")
    np.testing.assert_array_equal(z_phot(written, tmp_path / "written.parquet"), expected)
    np.testing.assert_array_equal(z_phot(older, tmp_path / "older.parquet"), expected)
    # the served model (REST runs this pyfunc) takes the sentinels as missing too
    model = tracking.load_pyfunc("models:/hybrid-z@champion")
    images = dataset.read_images(np.arange(N_ROWS))
    served = [np.asarray(model.predict({"image": images, "mags": frame[list(MAG_COLUMNS)]
                                        .to_numpy(np.float32)}))
              for frame in (sentinels, with_values(rows, MISSING, nan=True))]
    np.testing.assert_array_equal(served[0], served[1])
    np.testing.assert_allclose(served[0], expected, rtol=1e-5, atol=1e-6)


def test_a_partly_labelled_catalogue_predicts_and_evaluation_names_the_rows(champion, tmp_path):
    dataset = champion["dataset"]
    rows = dataset.catalogue.iloc[:N_ROWS].reset_index(drop=True)
    partly = rows.copy()
    partly.loc[3:13, "z_spec"] = np.nan  # 11 unknown, as in the issue
    partly.loc[20, "z_spec"] = 1.8       # beyond the training range: predicting needs none
    data = written_copy(dataset, tmp_path / "partly", partly)
    labelled = written_copy(dataset, tmp_path / "labelled", rows)
    np.testing.assert_array_equal(z_phot(data, tmp_path / "partly.parquet"),
                                  z_phot(labelled, tmp_path / "labelled.parquet"))
    ids = partly["object_id"]
    named = (rf"needs z_spec in \(0.0, 1.5\) for every galaxy; 12 of {N_ROWS} rows lack one: "
             rf"row 3 \(object_id {ids[3]}\): null; .*\(12 rows in all\)$")
    before = leftovers(tmp_path)
    with pytest.raises(PredictionError, match=r"evaluation \(--evaluate\) " + named):
        predict_catalogue(data, tmp_path / "evaluated.parquet", evaluate=True, progress=False)
    assert leftovers(tmp_path) == before
    with pytest.raises(DatasetError, match="external validation " + named):
        tracked_evaluation("models:/hybrid-z@champion", data)


def test_a_file_that_is_not_fits_is_named(champion, tmp_path):
    table = tmp_path / "table.fits"
    table.write_text("KiDS_ID,RA,DEC\n")
    with pytest.raises(PredictionError, match=rf"^{table}: not a readable FITS file \(") as err:
        predict_catalogue(table, tmp_path / "photoz.parquet", progress=False)
    assert "\n" not in str(err.value) and leftovers(tmp_path) == ["table.fits"]
