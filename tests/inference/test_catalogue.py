"""`predict_catalogue` end to end: outputs, metadata, evaluation and one-line errors."""


import h5py
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from hzexp import __version__
from hzexp.data.store import CATALOGUE_FILE, IMAGES_FILE, IMAGES_KEY, DatasetWriter
from hzexp.inference import (
    PredictionError,
    predict_catalogue,
    read_predictions,
)
from tests.helpers.inference import CHUNK, in_process, leftovers, official_table


def test_parquet_round_trip_matches_in_process_predictions(champion, tmp_path):
    dataset = champion["dataset"]
    out = tmp_path / "photoz.parquet"
    report = predict_catalogue(dataset.path, out, chunk_size=CHUNK, batch_size=32,
                               progress=False)
    frame, metadata = read_predictions(out)
    assert list(frame.columns) == ["object_id", "source_id", "ra", "dec", "z_phot"]
    # a mock dataset has no source catalogue but itself: source_id is the object_id as text
    assert frame["source_id"].tolist() == dataset.catalogue["object_id"].astype(str).tolist()
    assert frame["z_phot"].dtype == np.float32
    np.testing.assert_array_equal(frame["object_id"], dataset.catalogue["object_id"])
    np.testing.assert_array_equal(frame["ra"], dataset.catalogue["ra"])
    assert np.all((frame["z_phot"] > 0) & (frame["z_phot"] < 1))
    np.testing.assert_allclose(frame["z_phot"], in_process(dataset), rtol=0, atol=1e-6)
    assert metadata == {"model_uri": "models:/hybrid-z@champion", "model_name": "hybrid-z",
                        "model_version": champion["version"], "model_run_id": champion["run_id"],
                        "dataset_hash": dataset.content_hash, "hzexp_version": __version__}
    assert report.n_galaxies == len(dataset) and report.n_resumed == 0
    assert "hybrid-z v1" in report.summary()
    assert leftovers(tmp_path) == ["photoz.parquet"]  # no parts dir, no temporary file


def test_fits_output_with_header_and_evaluation(champion, tmp_path):
    dataset = champion["dataset"]
    out = tmp_path / "photoz.fits"
    report = predict_catalogue(dataset.path, out, chunk_size=CHUNK, evaluate=True,
                               progress=False)
    header = fits.getheader(out, 1)
    assert header["MODELNAM"] == "hybrid-z" and header["MODELVER"] == champion["version"]
    assert header["MODELRUN"] == champion["run_id"]
    assert header["MODELURI"] == "models:/hybrid-z@champion"
    assert header["DATAHASH"] == dataset.content_hash and header["HZEXPVER"] == __version__
    frame, _ = read_predictions(out)
    assert frame["z_phot"].dtype == np.float32 and len(frame) == len(dataset)
    stats = pd.read_csv(tmp_path / "photoz_stats.csv")
    first = stats.iloc[0]
    assert (first["sample"], first["method"], first["size"]) == ("all", "hybrid-z v1",
                                                                 len(dataset))
    assert report.metrics["smad_dz"] == pytest.approx(first["smad_Dz"])
    assert report.metrics["n_test"] == len(dataset) and "clean_smad_dz" in report.metrics
    assert "SMAD(Dz)" in report.summary()
    assert leftovers(tmp_path) == ["photoz.fits", "photoz_stats.csv"]


def truncated_copy(dataset, path, n):
    """`dataset`'s first `n` rows written with the store's own writer, then stripped of
    the writer's checks: a catalogue with `n` rows (possibly none)."""
    with DatasetWriter(path, dataset.stored_size, {"test": True}) as writer:
        writer.append(dataset.catalogue.iloc[:1].drop(columns="image_index"),
                      dataset.read_images(np.arange(1)))
    pd.read_parquet(path / CATALOGUE_FILE).iloc[:n].to_parquet(path / CATALOGUE_FILE)
    with h5py.File(path / IMAGES_FILE, "a") as h5:
        h5[IMAGES_KEY].resize(n, axis=0)
    return path


def drop_column(path, column):
    catalogue = pd.read_parquet(path / CATALOGUE_FILE)
    catalogue.drop(columns=column).to_parquet(path / CATALOGUE_FILE)
    return path


ERRORS = {
    "unknown alias": ("models:/hybrid-z@nope", None,
                      r"model models:/hybrid-z@nope: not found in the registry .*alias nope"),
    "unknown model": ("models:/no-such-model@champion", None,
                      r"model models:/no-such-model@champion: not found .*no-such-model"),
    "unknown version": ("models:/hybrid-z/99", None, r"models:/hybrid-z/99: not found"),
    "stamps smaller than the cutout": (
        None, lambda d, tmp: official_table(tmp / "hz.fits", d, np.arange(3), stamp_size=16),
        r"hz.fits: images are 16 px but model hybrid-z v1 .* crops 20 px cutouts"),
    "missing magnitude column (FITS)": (
        None, lambda d, tmp: official_table(tmp / "hz.fits", d, np.arange(3), 36,
                                            drop=("KSmag",)),
        r"hz.fits: required column 'KSmag' missing"),
    "missing magnitude column (dataset)": (
        None, lambda d, tmp: drop_column(truncated_copy(d, tmp / "ds", 1), "mag_Ks"),
        r"catalogue.parquet: missing column\(s\) mag_Ks"),
    "empty catalogue": (None, lambda d, tmp: truncated_copy(d, tmp / "ds", 0),
                        r"ds: the catalogue has no galaxies"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_expected_failures_are_one_line_and_leave_nothing(champion, tmp_path, case):
    model_uri, make_data, message = ERRORS[case]
    data = make_data(champion["dataset"], tmp_path) if make_data else champion["dataset"].path
    before = leftovers(tmp_path)
    with pytest.raises(PredictionError, match=message) as err:
        predict_catalogue(data, tmp_path / "photoz.fits", progress=False,
                          model_uri=model_uri or "models:/hybrid-z@champion")
    assert "\n" not in str(err.value)
    assert leftovers(tmp_path) == before  # no output, no parts dir, no temporary file


def test_evaluation_needs_redshifts(champion, tmp_path):
    dataset = champion["dataset"]
    data = tmp_path / "ds"
    with DatasetWriter(data, dataset.stored_size, {"test": True}) as writer:
        writer.append(dataset.catalogue.iloc[:20].drop(columns="image_index")
                      .assign(z_spec=np.nan), dataset.read_images(np.arange(20)))
    with pytest.raises(PredictionError, match=r"evaluation \(--evaluate\) needs z_spec"):
        predict_catalogue(data, tmp_path / "photoz.parquet", evaluate=True, progress=False)
    assert leftovers(tmp_path) == ["ds"]


def test_pdf_out_of_a_point_model_is_refused(champion, tmp_path):
    with pytest.raises(PredictionError, match=r"--pdf-out .*point estimates, not PDFs"):
        predict_catalogue(champion["dataset"].path, tmp_path / "z.parquet", progress=False,
                          pdf_out=tmp_path / "pdfs.hdf5")
    assert leftovers(tmp_path) == []


def test_under_mlflow_run_the_predicted_dataset_is_the_project_runs_input(champion, tmp_path,
                                                                         monkeypatch):
    """`mlflow run . -e predict` makes a project run (MLFLOW_RUN_ID) and runs the command."""
    import json

    import mlflow

    dataset = champion["dataset"]
    project_run = mlflow.MlflowClient().create_run(
        mlflow.get_experiment_by_name("hybrid-z").experiment_id).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", project_run)
    predict_catalogue(dataset.path, tmp_path / "photoz.parquet", progress=False)
    (entry,) = mlflow.get_run(project_run).inputs.dataset_inputs
    assert {t.key: t.value for t in entry.tags} == {"mlflow.data.context": "prediction"}
    assert entry.dataset.digest == dataset.content_hash[:36]
    assert json.loads(entry.dataset.source)["uri"] == str(dataset.path.resolve())
