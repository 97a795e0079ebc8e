"""A registered Hybrid-z model applied to a whole catalogue: the `hzexp predict` library.

The model carries its own preprocessing, so it is fed raw dataset rows: uncropped images
and raw magnitudes, exactly what `images.h5` and `catalogue.parquet` hold.

`predict_catalogue` is built for survey scale (KiDS-Bright: 1.2 million galaxies, 44 GB
of stamps): chunks are read ahead in a background thread while the model predicts
(`stream`), so memory does not grow with the catalogue; each finished chunk is
kept as a part file so an interrupted run resumes where it stopped (`parts`); the
catalogue is written under a temporary name and renamed when complete, with the model and
dataset it came from in its metadata (`output`). Expected failures raise
`PredictionError` with a one-line message and leave no output behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hzexp import __version__, tracking
from hzexp.data.kids.ids import source_ids
from hzexp.data.store import PSF_INPUT, Dataset, DatasetError
from hzexp.evaluation.novelty import COVERAGE_COLUMN
from hzexp.evaluation.tables import photoz_table, subsample_metrics
from hzexp.inference.cluster import cluster_client, model_on_cluster, predict_on_cluster
from hzexp.inference.errors import PredictionError
from hzexp.inference.model import (
    ModelFacts,
    PredictionModel,
    load_prediction_model,
    lookup_source,
)
from hzexp.inference.output import (
    catalogue_columns,
    read_predictions,
    stats_path,
    write_catalogue,
    write_stats,
)
from hzexp.inference.parts import PartStore
from hzexp.inference.pdf_file import write_pdf_file
from hzexp.inference.source import open_data
from hzexp.inference.stream import prefetched_chunks
from hzexp.inference.target import check_replaced_hash, check_targets, output_lock

__all__ = ["DEFAULT_MODEL_URI", "PredictionError", "PredictionReport", "predict_catalogue",
           "predict_dataset_pdfs", "predict_dataset_rows", "read_predictions"]

DEFAULT_MODEL_URI = "models:/hybrid-z@champion"
#: Galaxies per `predict_on_batch` call (bounded activation memory on CPU).
DEFAULT_BATCH_SIZE = 256
#: Galaxies per read / part file (~75 MB of 48 px stamps; two are read ahead).
DEFAULT_CHUNK_SIZE = 2048


@dataclass
class PredictionReport:
    """What `predict_catalogue` wrote, with which model, and how fast."""

    out: Path
    n_galaxies: int
    n_resumed: int
    model_label: str
    metadata: dict[str, str]
    seconds: float
    predict_seconds: float = 0.0
    stats_file: Path | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    pdf_out: Path | None = None
    #: A PDF model's fraction of galaxies outside its training set's coverage.
    outside_coverage: float | None = None

    @property
    def galaxies_per_second(self) -> float:
        """Streaming rate: galaxies predicted by this run per second of the chunk loop."""
        predicted = self.n_galaxies - self.n_resumed
        return predicted / self.predict_seconds if self.predict_seconds else 0.0

    def summary(self) -> str:
        lines = [f"wrote z_phot of {self.n_galaxies} galaxies to {self.out} with "
                 f"{self.model_label} (run {self.metadata['model_run_id'] or '-'})",
                 f"predicted {self.n_galaxies - self.n_resumed} at {self.galaxies_per_second:.0f} "
                 f"galaxies/s; {self.seconds:.1f} s in all"
                 + (f"; {self.n_resumed} resumed from an interrupted run" if self.n_resumed
                    else "")]
        if self.pdf_out is not None:
            lines.append(f"wrote their PDFs to {self.pdf_out} (qp format)")
        if self.outside_coverage is not None:
            lines.append(f"{self.outside_coverage:.2%} of them lie outside the training set's "
                         f"coverage ({COVERAGE_COLUMN} false)")
        if self.metrics:
            m = self.metrics
            lines.append(f"vs z_spec: SMAD(Dz) {m['smad_dz']:.4f}  mean Dz {m['dz_mean']:+.5f}  "
                         f"outliers {m['outlier_frac']:.4f}  n {int(m['n_test'])}; "
                         f"Table 1 in {self.stats_file}")
        return "\n".join(lines)


def predict_catalogue(data: str | Path, out: str | Path, model_uri: str = DEFAULT_MODEL_URI,
                      batch_size: int = DEFAULT_BATCH_SIZE, chunk_size: int = DEFAULT_CHUNK_SIZE,
                      evaluate: bool = False, progress: bool = True,
                      restart: bool = False, overwrite: bool = False,
                      pdf_out: str | Path | None = None, workers: int | None = None,
                      scheduler: str | None = None) -> PredictionReport:
    """Write z_phot for every galaxy of `data` to `out` (FITS if it ends in .fits, else
    parquet), in catalogue order, and return a report.

    `data`: a dataset directory (z_spec may be null) or an official Hybrid-z FITS table
    (.fits, .fit, .fits.gz). `model_uri`: any MLflow model URI; an alias is resolved once
    to its version. `evaluate`: also write the paper's Table 1 against z_spec to
    `<out stem>_stats.csv` (needs z_spec for every galaxy). `pdf_out`: also write a PDF
    model's PDFs to this qp HDF5 file (`pdf_file`). `workers`: predict on a local Dask
    cluster of that many processes; `scheduler`: on the Dask cluster at that address
    (`cluster`); neither: in this process. Rerunning an interrupted call
    with the same arguments resumes it; `restart` discards the unfinished run instead.

    Nothing is lost: `out` is never inside the input dataset (nor the input table itself),
    an existing file is replaced only if it is this command's own finished output (an hzexp
    catalogue of the same dataset) or with `overwrite`, and a lock beside `out` keeps a
    second prediction from writing the same catalogue while this one runs.
    Raises `PredictionError` for expected failures, before creating anything when it can.
    """
    data, out = Path(data), Path(out)
    pdf_out = Path(pdf_out) if pdf_out is not None else None
    if batch_size < 1 or chunk_size < 1:
        raise PredictionError(f"batch_size and chunk_size must be >= 1, got {batch_size} and "
                              f"{chunk_size}")
    if out.is_dir() or not out.parent.is_dir():
        raise PredictionError(f"{out}: not a file path in an existing directory")
    if workers is not None and (scheduler is not None or workers < 1):
        raise PredictionError(f"--workers {workers}: must be at least 1, and not given with "
                              "--scheduler (which uses a cluster of its own)")
    started = time.perf_counter()
    if pdf_out is not None and (pdf_out.is_dir() or not pdf_out.parent.is_dir()):
        raise PredictionError(f"{pdf_out}: not a file path in an existing directory")
    targets = [out, *([stats_path(out)] if evaluate else []), *([pdf_out] if pdf_out else [])]
    replaced_hash = check_targets(data, targets, overwrite)
    # on a cluster only the workers load the model (the driver holds its facts); its version
    # is resolved first, while a local cluster's fork server imports the workers' modules
    source = lookup_source(model_uri) if workers or scheduler else None
    with output_lock(out), cluster_client(workers, scheduler) as cluster:
        model = (load_prediction_model(model_uri) if cluster is None
                 else model_on_cluster(cluster, source))
        if pdf_out is not None and model.pdf_grid is None:
            raise PredictionError(f"--pdf-out {pdf_out}: model {model.label} gives point "
                                  "estimates, not PDFs")
        parts = PartStore(out)
        if restart:
            parts.remove()
        fresh = not parts.path.exists()
        try:
            dataset = open_data(data, model, parts.path, progress)
            check_replaced_hash(out, replaced_hash, dataset.content_hash)
            tracking.log_prediction_input(dataset)
            if evaluate:
                _check_labels(dataset)
            return _predict_and_write(data, out, model, parts, dataset, batch_size, chunk_size,
                                      evaluate, progress, started, pdf_out, cluster)
        except BaseException:
            if fresh and not parts.parts():
                parts.remove()
            raise


def _predict_and_write(data: Path, out: Path, model: ModelFacts, parts: PartStore,
                       dataset: Dataset, batch_size: int, chunk_size: int, evaluate: bool,
                       progress: bool, started: float, pdf_out: Path | None,
                       cluster) -> PredictionReport:
    """Predict what the parts lack (in this process with the loaded `model`, or on the Dask
    `cluster` client with the model its workers loaded), then write the catalogue (its
    Table 1, its PDFs) and remove the parts."""
    metadata = _provenance(model, dataset)
    missing = parts.start({**metadata, "model": model.pinned_uri, "data": str(data.resolve()),
                           "n_galaxies": len(dataset),
                           "pdf_out": str(pdf_out.resolve()) if pdf_out else ""}, len(dataset))
    done = len(dataset) - sum(stop - start for start, stop in missing)
    loop_started = time.perf_counter()
    with tqdm(total=len(dataset), initial=done, unit="gal", unit_scale=True, desc="predict",
              smoothing=0.1, disable=not progress) as bar:
        try:
            if cluster is None:
                _predict_into(parts, dataset, model, missing, batch_size, chunk_size, bar,
                              keep_pdfs=pdf_out is not None)
            else:
                predict_on_cluster(cluster, parts, dataset, model, missing, batch_size,
                                   chunk_size, bar, keep_pdfs=pdf_out is not None)
        except DatasetError as err:
            raise PredictionError(str(err)) from None
    predict_seconds = time.perf_counter() - loop_started
    predictions = _in_catalogue_order(parts, dataset)
    report = PredictionReport(out=out, n_galaxies=len(dataset), n_resumed=done,
                              model_label=model.label, metadata=metadata, seconds=0.0,
                              predict_seconds=predict_seconds, pdf_out=pdf_out)
    if COVERAGE_COLUMN in predictions:
        report.outside_coverage = 1.0 - float(predictions[COVERAGE_COLUMN].mean())
    if evaluate:
        z_phot = predictions["z_phot"].to_numpy(dtype=np.float64)
        report.metrics = subsample_metrics(dataset.catalogue, z_phot)
        report.stats_file = stats_path(out)
        write_stats(photoz_table(dataset.catalogue, {model.label: z_phot}), report.stats_file)
    write_catalogue(predictions, out, metadata)
    if pdf_out is not None:
        write_pdf_file(pdf_out, model.pdf_grid, predictions["object_id"].to_numpy(),
                       parts.read_pdfs())
    parts.remove()
    report.seconds = time.perf_counter() - started
    return report


def _check_labels(dataset: Dataset) -> None:
    """`--evaluate` uses z_spec: every galaxy needs one (predicting alone needs none)."""
    try:
        dataset.check_labels("evaluation (--evaluate)")
    except DatasetError as err:
        raise PredictionError(str(err)) from None


def _provenance(model: ModelFacts, dataset: Dataset) -> dict[str, str]:
    """What the output file records about its making (keys of `FITS_KEYWORDS`)."""
    return {"model_uri": model.source.uri, "model_name": model.source.name or "",
            "model_version": model.source.version or "",
            "model_run_id": model.source.run_id or "",
            "dataset_hash": dataset.content_hash, "hzexp_version": __version__}


def _predict_into(parts: PartStore, dataset: Dataset, model: PredictionModel,
                  ranges: list[tuple[int, int]], batch_size: int, chunk_size: int, bar: tqdm,
                  keep_pdfs: bool) -> None:
    """Predict the row `ranges` in this process, chunk by chunk, one part file per finished
    chunk (and its PDFs before it when `keep_pdfs`)."""
    for chunk in prefetched_chunks(dataset, ranges, chunk_size):
        frame, pdfs = model.predict_chunk(chunk, batch_size)
        parts.write_chunk(chunk.start, frame, pdfs if keep_pdfs else None)
        bar.update(len(frame))


def _in_catalogue_order(parts: PartStore, dataset: Dataset) -> pd.DataFrame:
    """All parts, checked to hold each catalogue object_id once, in catalogue order, with
    each galaxy's `source_id` (its ID in the source catalogue)."""
    predictions = parts.read_all()
    found = predictions["object_id"].to_numpy()
    expected = dataset.catalogue["object_id"].to_numpy()
    if len(found) != len(expected) or not np.array_equal(found, expected):
        first = next((i for i, (a, b) in enumerate(zip(found, expected)) if a != b),
                     min(len(found), len(expected)))
        raise PredictionError(f"{parts.path}: the finished parts hold {len(found)} rows for "
                              f"{len(expected)} galaxies and first differ from the catalogue at "
                              f"row {first}; restart the prediction")
    try:
        predictions.insert(1, "source_id", source_ids(dataset))
    except DatasetError as err:
        raise PredictionError(str(err)) from None
    return predictions.loc[:, catalogue_columns(predictions)]


def predict_dataset_rows(model, dataset: Dataset, rows: np.ndarray,
                         chunk_size: int = 2048) -> np.ndarray:
    """z_phot of catalogue rows `rows` (in that order) from a pyfunc model (its PSF input
    fed when its signature has one)."""
    inputs = model.metadata.get_input_schema().input_names()
    out = [_z_phot(model.predict(_model_inputs(dataset, part, PSF_INPUT in inputs)))
           for part in _row_chunks(rows, chunk_size)]
    return np.concatenate(out).astype(np.float64) if out else np.empty(0)


def predict_dataset_pdfs(model: tracking.HybridZPyfunc, dataset: Dataset, rows: np.ndarray,
                         chunk_size: int = 2048) -> np.ndarray:
    """(N, bins) PDFs of catalogue rows `rows` (in that order) from a PDF model's pyfunc."""
    return np.concatenate([model.predict_output(dataset.read_images(part),
                                                dataset.magnitude_array[part],
                                                dataset.psf_array[part])
                           for part in _row_chunks(rows, chunk_size)])


def _model_inputs(dataset: Dataset, rows: np.ndarray, psf: bool) -> dict[str, np.ndarray]:
    """A pyfunc's input for catalogue rows: raw stamps, magnitudes and, with `psf`, the PSF
    FWHMs (the named inputs of `tracking.model_signature`)."""
    inputs = {"image": dataset.read_images(rows), "mags": dataset.magnitude_array[rows]}
    if psf:
        inputs[PSF_INPUT] = dataset.psf_array[rows]
    return inputs


def _row_chunks(rows: np.ndarray, chunk_size: int) -> list[np.ndarray]:
    """`rows` in order, in pieces of at most `chunk_size`."""
    rows = np.asarray(rows, dtype=np.int64)
    return np.array_split(rows, max(1, -(-len(rows) // chunk_size)))


def _z_phot(prediction) -> np.ndarray:
    """z_phot from a pyfunc's answer: the array itself, or a PDF model's `z_phot` column."""
    if isinstance(prediction, pd.DataFrame):
        return prediction["z_phot"].to_numpy()
    return np.asarray(prediction).reshape(-1)
