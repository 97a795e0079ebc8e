"""Catalogue prediction on a Dask cluster: `hzexp predict --workers N` or `--scheduler ADDR`.

Astronomy's catalogue-scale tools (LSDB/HATS, dask-jobqueue on HPC clusters) run on
`dask.distributed`, so hzexp scales out there rather than on a scheduler of its own.

The driver resolves the model URI to a registered version and never loads the model: every
worker process loads that version at once (`model_on_cluster`), and the first to finish
tells the driver the model's `ModelFacts`, so the driver never starts TensorFlow and the
workers' start overlaps. The work is one task per chunk of catalogue rows. A worker keeps
the model and the open dataset between tasks, and for each task reads the chunk's stamps,
predicts and writes the chunk's part file (and PDFs) into the prediction's work directory
itself, atomically; only the row count travels back. The driver then
assembles the catalogue from the parts exactly as an in-process run does, so everything
`predict` promises holds: catalogue order, provenance, atomic output, resume from finished
chunks (which a cluster finishes out of order), no row lost or repeated. A worker killed
in mid-task is replaced and Dask runs its task again; a half-written part is never visible
under its final name, so the output is the same as a clean run's.

What the cluster must share: the dataset directory (or, for a FITS table, the work
directory it is converted into), the work directory `.<out name>.parts/` next to `--out`,
and the MLflow store holding the model (a tracking server, or an SQLite file on the shared
filesystem). Writing parts on the workers was chosen over sending predictions back: the
driver's memory and network then carry 8 bytes a chunk instead of every row, and a driver
that dies loses nothing the workers finished.

`predict_dask` gives the same predictions to a user's own Dask client as a dask DataFrame.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hzexp import chatter, tracking
from hzexp.data.store import Dataset
from hzexp.inference.errors import PredictionError
from hzexp.inference.forkserver import forked_workers
from hzexp.inference.model import (
    ModelFacts,
    PredictionModel,
    load_prediction_model,
    lookup_source,
    pinned_uri,
)
from hzexp.inference.parts import PartStore
from hzexp.inference.stream import chunk_bounds, read_chunk

#: What each worker process keeps between tasks: the loaded model and the open dataset.
_LOADED: dict[tuple, object] = {}


@dataclass(frozen=True)
class ChunkTask:
    """One chunk of rows [first, stop) to predict: everything a worker needs, as text."""

    data: str
    model_uri: str
    registry_uri: str
    first: int
    stop: int
    batch_size: int
    out: str | None = None       # the prediction's --out: its parts go to its work directory
    keep_pdfs: bool = False


def _loaded(key: tuple, load):
    if key not in _LOADED:
        _LOADED[key] = load()
    return _LOADED[key]


def _worker_model(model_uri: str, registry_uri: str) -> PredictionModel:
    """The pinned model, loaded once per worker process from the driver's store."""
    def load() -> PredictionModel:
        os.environ["MLFLOW_TRACKING_URI"] = registry_uri
        with chatter.start_up_hidden_unless_verbose():
            chatter.start_keras_backend()
        return load_prediction_model(model_uri)

    return _loaded(("model", model_uri, registry_uri), load)


def _worker_model_facts(model_uri: str, registry_uri: str) -> ModelFacts:
    return _worker_model(model_uri, registry_uri).facts


def model_on_cluster(client, source: tracking.ModelSource) -> ModelFacts:
    """Have every worker of `client`'s cluster load the pinned version of `source` (resolved
    here, by `lookup_source`) at once, each keeping it for its tasks, and return its facts
    from the first to finish; a load failure is raised here (`PredictionError`)."""
    from dask.distributed import as_completed

    registry = tracking.registry_uri()
    workers = list(client.scheduler_info()["workers"]) or [None]
    loads = [client.submit(_worker_model_facts, pinned_uri(source), registry, pure=False,
                           workers=worker, allow_other_workers=True) for worker in workers]
    facts = next(as_completed(loads)).result()
    return ModelFacts(source, facts.stored_size, facts.cutout, facts.pdf_grid)


def chunk_predictions(task: ChunkTask) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The task's part of the catalogue and its PDFs, computed on a worker."""
    model = _worker_model(task.model_uri, task.registry_uri)
    dataset = _loaded(("data", task.data), lambda: Dataset.open(task.data, check_content=False))
    return model.predict_chunk(read_chunk(dataset, task.first, task.stop), task.batch_size)


def predict_into_parts(task: ChunkTask) -> int:
    """Predict the task's chunk and write its part (and PDFs) into the work directory of
    `task.out`; returns its row count."""
    frame, pdfs = chunk_predictions(task)
    PartStore(Path(task.out)).write_chunk(task.first, frame, pdfs if task.keep_pdfs else None)
    return len(frame)


def predict_on_cluster(client, parts: PartStore, dataset: Dataset, model: ModelFacts,
                       ranges: list[tuple[int, int]], batch_size: int, chunk_size: int,
                       bar: tqdm, keep_pdfs: bool) -> None:
    """Predict the row `ranges` as one task per chunk on the cluster of `client`."""
    from dask.distributed import as_completed

    tasks = [ChunkTask(str(dataset.path.resolve()), model.pinned_uri, tracking.registry_uri(),
                       first, stop, batch_size, str(parts.out.resolve()), keep_pdfs)
             for first, stop in chunk_bounds(ranges, chunk_size)]
    futures = client.map(predict_into_parts, tasks, pure=False)
    try:
        for future in as_completed(futures):
            bar.update(future.result())
    finally:
        client.cancel(futures)


@contextlib.contextmanager
def cluster_client(workers: int | None, scheduler: str | None) -> Iterator:
    """A client of the cluster at `scheduler`, or of a local cluster of `workers` processes
    (one thread each; TensorFlow's intra-op threads share the cores between them), or None
    to predict in this process."""
    if scheduler is None and workers is None:
        yield None
        return
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, ValueError) as err:
            raise PredictionError(f"--scheduler {scheduler}: cannot connect "
                                  f"({str(err).splitlines()[0]})") from None
        with client:
            yield client
        return
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    env = {"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": "1",
           "OMP_NUM_THREADS": threads, "TF_CPP_MIN_LOG_LEVEL": "2"}
    # silence_logs: the nanny's shutdown notices ("still alive after 4 s, killing": TensorFlow
    # keeps its threads) are not the user's business; errors still show
    with (forked_workers(),
          LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                       dashboard_address=None, env=env, silence_logs=logging.ERROR) as cluster,
          Client(cluster) as client):
        yield client


def predict_dask(client, data: str | Path, model_uri: str = "models:/hybrid-z@champion",
                 chunk_size: int = 2048, batch_size: int = 256):
    """The predictions of every galaxy of the dataset directory `data` as a dask DataFrame
    (`object_id, ra, dec` and the model's estimates, one partition per chunk, in catalogue
    order), being computed on `client`'s cluster (persisted there); nothing is written. The
    model URI is pinned to its registered version here, so every partition uses the same
    one, and the model is only loaded on the workers."""
    import dask
    import dask.dataframe as dd

    model = model_on_cluster(client, lookup_source(model_uri))
    dataset = Dataset.open(data)
    model.check_stamps(dataset.stored_size, str(data))
    where = (str(dataset.path.resolve()), model.pinned_uri, tracking.registry_uri())
    tasks = [ChunkTask(*where, first, stop, batch_size)
             for first, stop in chunk_bounds([(0, len(dataset))], chunk_size)]
    # the columns (and dtypes) of the model's answer, from a first galaxy predicted there
    meta = client.submit(chunk_frame, ChunkTask(*where, 0, min(1, len(dataset)), batch_size),
                         pure=False).result().iloc[:0]
    frame = dd.from_delayed([dask.delayed(chunk_frame)(task) for task in tasks], meta=meta)
    return client.persist(frame)


def chunk_frame(task: ChunkTask) -> pd.DataFrame:
    """The task's part of the catalogue alone (for `predict_dask`)."""
    return chunk_predictions(task)[0]
