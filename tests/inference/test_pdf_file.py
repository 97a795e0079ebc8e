"""A PDF model's catalogue: summary columns in parquet and FITS, and `--pdf-out` in qp's
format, resumed after an interruption without losing or repeating a galaxy."""

import numpy as np
import pandas as pd
import pytest
import qp

from hzexp.evaluation.pdfs import SUMMARY_COLUMNS, PdfGrid, summaries
from hzexp.inference import PredictionError, predict_catalogue, read_predictions
from hzexp.inference.parts import PartStore
from tests.helpers.inference import CHUNK, leftovers, registered_champion

GRID = PdfGrid(1.0, 100)


@pytest.fixture(scope="module")
def pdf_champion(smoke_pipeline, tmp_path_factory):
    yield from registered_champion(smoke_pipeline, tmp_path_factory,
                                   ["model.output=pdf", "model.pdf_bins=100"])


def test_a_pdf_catalogue_has_the_summaries_and_a_qp_file_of_its_pdfs(pdf_champion, tmp_path):
    dataset = pdf_champion["dataset"]
    out, pdf_out = tmp_path / "photoz.fits", tmp_path / "pdfs.hdf5"
    report = predict_catalogue(dataset.path, out, chunk_size=CHUNK, progress=False,
                               pdf_out=pdf_out)
    frame, _ = read_predictions(out)
    assert list(frame.columns) == ["object_id", "source_id", "ra", "dec", *SUMMARY_COLUMNS,
                                   "in_train_coverage"]
    assert all(frame[c].dtype == np.float32 for c in SUMMARY_COLUMNS)
    assert frame["in_train_coverage"].dtype == bool
    assert report.outside_coverage == pytest.approx(1 - frame["in_train_coverage"].mean())
    assert "outside the training set's coverage (in_train_coverage false)" in report.summary()
    ensemble = qp.read(str(pdf_out))
    assert ensemble.npdf == len(dataset) and "pdfs.hdf5" in report.summary()
    np.testing.assert_array_equal(ensemble.ancil["object_id"], frame["object_id"])
    np.testing.assert_allclose(ensemble.metadata["bins"].ravel(), GRID.edges)
    probabilities = ensemble.objdata["pdfs"] * GRID.width
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    # the catalogue's summaries are those of the file's PDFs
    np.testing.assert_allclose(summaries(probabilities, GRID).to_numpy(),
                               frame[list(SUMMARY_COLUMNS)].to_numpy(), atol=1e-5)
    # the test-split rows give the PDFs the training run evaluated
    rows = pdf_champion["result"].assignment["test"]
    np.testing.assert_allclose(probabilities[rows], pdf_champion["result"].pdfs["test"],
                               atol=1e-5)
    assert leftovers(tmp_path) == ["pdfs.hdf5", "photoz.fits"]


def test_pdf_out_resumes_without_losing_or_repeating_a_galaxy(pdf_champion, tmp_path,
                                                              monkeypatch):
    dataset = pdf_champion["dataset"]
    reference = tmp_path / "reference.hdf5"
    predict_catalogue(dataset.path, tmp_path / "reference.parquet", chunk_size=CHUNK,
                      progress=False, pdf_out=reference)
    out, pdf_out = tmp_path / "photoz.parquet", tmp_path / "pdfs.hdf5"
    write = PartStore.write

    def crash_after_two_chunks(self, start, frame):
        if start >= 2 * CHUNK:
            raise KeyboardInterrupt
        write(self, start, frame)

    monkeypatch.setattr(PartStore, "write", crash_after_two_chunks)
    with pytest.raises(KeyboardInterrupt):
        predict_catalogue(dataset.path, out, chunk_size=CHUNK, progress=False, pdf_out=pdf_out)
    assert not out.exists() and not pdf_out.exists()
    monkeypatch.undo()
    with pytest.raises(PredictionError, match=r"another pdf_out .*pass --restart"):
        predict_catalogue(dataset.path, out, progress=False)  # the PDFs would be lost
    report = predict_catalogue(dataset.path, out, chunk_size=50, progress=False,
                               pdf_out=pdf_out)
    assert report.n_resumed == 2 * CHUNK
    resumed, expected = qp.read(str(pdf_out)), qp.read(str(reference))
    np.testing.assert_array_equal(resumed.ancil["object_id"], dataset.catalogue["object_id"])
    np.testing.assert_array_equal(resumed.objdata["pdfs"], expected.objdata["pdfs"])
    pd.testing.assert_frame_equal(read_predictions(out)[0],
                                  read_predictions(tmp_path / "reference.parquet")[0])

