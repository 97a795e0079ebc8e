"""Official Hybrid-z FITS tables as prediction input."""


import numpy as np
from astropy.table import Table

from hzexp.data.kids.ids import kids_object_ids
from hzexp.inference import (
    predict_catalogue,
    read_predictions,
)
from tests.helpers.inference import in_process, leftovers, official_table


def test_an_official_fits_table_with_smaller_stamps_predicts_the_same_crop(champion, tmp_path):
    dataset = champion["dataset"]
    rows = np.arange(10)
    table = official_table(tmp_path / "hz.fits", dataset, rows, stamp_size=36)
    out = tmp_path / "photoz.parquet"
    predict_catalogue(table, out, chunk_size=4, evaluate=True, progress=False)
    frame, metadata = read_predictions(out)
    assert len(frame) == len(rows) and metadata["model_version"] == champion["version"]
    # the model (48 px input, 20 px cutout) sees the same centre 20 px as on the 48 px stamps
    np.testing.assert_allclose(frame["z_phot"], in_process(dataset, rows), rtol=0, atol=1e-6)
    assert leftovers(tmp_path) == ["hz.fits", "photoz.parquet", "photoz_stats.csv"]


def test_predictions_of_an_official_table_carry_its_kids_ids(champion, tmp_path):
    """Parquet and FITS outputs give back the table's own KiDS_ID beside the hashed object_id,
    so the catalogue joins back to KiDS without the dataset's side file."""
    dataset = champion["dataset"]
    rows = np.arange(12)
    table = official_table(tmp_path / "hz.fits", dataset, rows, stamp_size=36)
    kids_ids = [kid.strip() for kid in Table.read(table)["KiDS_ID"]]
    for name in ("photoz.parquet", "photoz.fits"):
        predict_catalogue(table, tmp_path / name, chunk_size=5, progress=False)
        frame, _ = read_predictions(tmp_path / name)
        assert list(frame.columns) == ["object_id", "source_id", "ra", "dec", "z_phot"], name
        assert frame["source_id"].tolist() == kids_ids, name
        np.testing.assert_array_equal(frame["object_id"], kids_object_ids(kids_ids))
