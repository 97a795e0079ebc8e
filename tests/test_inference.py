"""Registry-based catalogue inference: outputs, metadata, resume, and one-line errors."""

import time

import h5py
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.table import Table

from hzexp import __version__, tracking
from hzexp.config import load_pipeline
from hzexp.data.store import CATALOGUE_FILE, IMAGES_FILE, IMAGES_KEY, Dataset, DatasetWriter
from hzexp.experiment import tracked_training
from hzexp.inference import (PredictionError, predict_catalogue, predict_dataset_rows,
                             read_predictions)
from hzexp.inference_parts import PartStore
from tests.conftest import use_private_tracking

CHUNK = 64
OFFICIAL_MAGS = ("umag", "gmag", "rmag", "imag", "Zmag", "Ymag", "Jmag", "Hmag", "KSmag")


@pytest.fixture(scope="module")
def champion(smoke_pipeline, tmp_path_factory):
    """A private MLflow store whose `hybrid-z@champion` is a 1-epoch smoke training run.

    Module-scoped (one ~20 s training per module): MLFLOW_TRACKING_URI and the working
    directory (./mlruns artifacts) stay set for the module's tests.
    """
    root = tmp_path_factory.mktemp("registry")
    with pytest.MonkeyPatch.context() as patch:
        use_private_tracking(patch, root)
        config = load_pipeline(smoke_pipeline, ["training.epochs=1", "baselines.mlp=false",
                                                "baselines.knn=false"])
        outcome = tracked_training(config)
        dataset = Dataset.open(config.data.path)
        registration = tracking.register_model(outcome.model_uri, 0.1, dataset.content_hash,
                                               {}, {})
        assert registration.alias == "champion"
        yield {"dataset": dataset, "run_id": outcome.run_id, "version": registration.version}


def in_process(dataset, rows=None):
    model = tracking.load_pyfunc("models:/hybrid-z@champion")
    return predict_dataset_rows(model, dataset, np.arange(len(dataset)) if rows is None else rows)


def leftovers(directory, *keep):
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def test_parquet_round_trip_matches_in_process_predictions(champion, tmp_path):
    dataset = champion["dataset"]
    out = tmp_path / "photoz.parquet"
    report = predict_catalogue(dataset.path, out, chunk_size=CHUNK, batch_size=32,
                               progress=False)
    frame, metadata = read_predictions(out)
    assert list(frame.columns) == ["object_id", "ra", "dec", "z_phot"]
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
    with pytest.raises(PredictionError, match=r"another dataset_hash .*restart") as err:
        predict_catalogue(other, out, progress=False)
    assert str(PartStore(out).path) in str(err.value) and "\n" not in str(err.value)
    report = predict_catalogue(other, out, progress=False, restart=True)
    assert report.n_galaxies == 30 and not PartStore(out).path.exists()


def official_table(path, dataset, rows, stamp_size, drop=()):
    """An official-layout Hybrid-z table of dataset `rows`, stamps centre-cut to `stamp_size`."""
    catalogue = dataset.catalogue.iloc[rows]
    start = (dataset.stored_size - stamp_size) // 2
    table = Table()
    table["KiDS_ID"] = [f"KiDS J{k:06d}.000+00.0000" for k in rows]
    table["RA"], table["DEC"] = catalogue["ra"].to_numpy(), catalogue["dec"].to_numpy()
    table["image"] = dataset.read_images(rows)[:, start:start + stamp_size,
                                               start:start + stamp_size]
    table["Zspec"] = catalogue["z_spec"].to_numpy()
    for name, band in zip(OFFICIAL_MAGS, ("u", "g", "r", "i", "Z", "Y", "J", "H", "Ks")):
        table[name] = np.nan_to_num(catalogue[f"mag_{band}"].to_numpy(), nan=99.0)
    table.remove_columns(list(drop))
    table.write(path)
    return path


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


def test_evaluation_needs_redshifts(champion, tmp_path, write_dataset):
    data = write_dataset(n=20)
    catalogue = pd.read_parquet(data / CATALOGUE_FILE)
    catalogue.assign(z_spec=np.nan).to_parquet(data / CATALOGUE_FILE)
    with pytest.raises(PredictionError, match="evaluation needs z_spec"):
        predict_catalogue(data, tmp_path / "photoz.parquet", evaluate=True, progress=False)
    assert leftovers(tmp_path) == ["ds"]


def test_an_unreachable_registry_fails_fast(champion, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    started = time.perf_counter()
    with pytest.raises(PredictionError, match=r"registry at http://127.0.0.1:9 cannot be "
                                              r"reached \(ConnectionError\)"):
        predict_catalogue(champion["dataset"].path, tmp_path / "photoz.parquet",
                          progress=False)
    assert time.perf_counter() - started < 15
    assert leftovers(tmp_path) == []


def test_a_missing_sqlite_store_is_reported_not_created(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'nowhere.db'}")
    with pytest.raises(PredictionError, match="nowhere.db does not exist"):
        predict_catalogue(tmp_path, tmp_path / "photoz.parquet", progress=False)
    assert leftovers(tmp_path) == []
