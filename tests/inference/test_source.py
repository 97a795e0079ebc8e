"""Official Hybrid-z FITS tables as prediction input."""


import numpy as np

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
