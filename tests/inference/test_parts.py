"""Finished chunks kept as parts: an interrupted prediction resumes, a mismatched one is refused."""


import pandas as pd
import pytest

from hzexp.inference import (
    PredictionError,
    predict_catalogue,
    read_predictions,
)
from hzexp.inference.parts import PartStore
from tests.helpers.inference import CHUNK


def test_an_interrupted_run_resumes_from_its_last_chunk(champion, tmp_path, monkeypatch):
    dataset = champion["dataset"]
    reference = tmp_path / "reference.parquet"
    predict_catalogue(dataset.path, reference, chunk_size=CHUNK, progress=False)
    out = tmp_path / "photoz.parquet"
    write = PartStore.write
    written = []

    def write_then_crash(self, start, frame):
        if len(written) == 2:
            raise KeyboardInterrupt
        write(self, start, frame)
        written.append(start)

    monkeypatch.setattr(PartStore, "write", write_then_crash)
    with pytest.raises(KeyboardInterrupt):
        predict_catalogue(dataset.path, out, chunk_size=CHUNK, progress=False)
    assert not out.exists() and len(PartStore(out).parts()) == 2
    monkeypatch.setattr(PartStore, "write", write)
    # a different chunk size is fine: parts are keyed by row
    report = predict_catalogue(dataset.path, out, chunk_size=50, progress=False)
    assert report.n_resumed == 2 * CHUNK
    resumed, _ = read_predictions(out)
    expected, _ = read_predictions(reference)
    assert resumed["object_id"].is_unique
    pd.testing.assert_frame_equal(resumed, expected)
    assert not PartStore(out).path.exists()


def test_a_resume_on_other_data_is_refused_until_restarted(champion, tmp_path, monkeypatch,
                                                           write_dataset):
    out = tmp_path / "photoz.parquet"
    write = PartStore.write

    def crash_after_first_part(self, start, frame):
        if start > 0:
            raise KeyboardInterrupt
        write(self, start, frame)

    monkeypatch.setattr(PartStore, "write", crash_after_first_part)
    with pytest.raises(KeyboardInterrupt):
        predict_catalogue(champion["dataset"].path, out, chunk_size=CHUNK, progress=False)
    monkeypatch.undo()
    other = write_dataset(n=30)
    with pytest.raises(PredictionError, match=r"another dataset_hash .*pass --restart") as err:
        predict_catalogue(other, out, progress=False)
    assert str(PartStore(out).path) in str(err.value) and "\n" not in str(err.value)
    report = predict_catalogue(other, out, progress=False, restart=True)
    assert report.n_galaxies == 30 and not PartStore(out).path.exists()
