"""MLflow runs: tracking URI and experiment, provenance tags, params, metrics, tables, figures.

The rest of hzexp is plain functions on arrays and configs; this module turns their results
into the MLflow record DESIGN.md lists, so runs compare cleanly in the MLflow UI: the same
param names (the flattened pipeline config) and metric names in every run.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from hzexp import __version__
from hzexp.data.store import Dataset

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "hybrid-z"
EPOCH_METRICS = ("loss", "val_loss", "mae", "val_mae", "mse", "val_mse", "r2", "val_r2",
                 "val_smad", "val_pdf_crps", "learning_rate")
TRIAL_STATE_TAG = "optuna.trial_state"
STUDY_TAG = "optuna.study"
#: On a search's parent run: the worker process (host, pid, start time) as JSON, so a later
#: worker can tell the run was left RUNNING by a process that is gone.
WORKER_TAG = "hzexp.worker"
#: MLflow's own experiment for runs that name none (id "0").
MLFLOW_DEFAULT_EXPERIMENT_ID = "0"
#: The longest dataset digest MLflow stores (`MAX_DATASET_DIGEST_SIZE`).
DATASET_DIGEST_LENGTH = 36
#: Where a run used its dataset, as `mlflow.log_input` contexts.
DATASET_CONTEXTS = ("training", "validation", "test", "evaluation", "prediction")
DATASET_SPLITS_TAG = "hzexp.splits"


def configure_tracking(experiment: str = DEFAULT_EXPERIMENT) -> str:
    """Point MLflow at `MLFLOW_TRACKING_URI` or the project's SQLite store; returns the URI.

    The file store (`./mlruns` as tracking URI) is in maintenance mode in MLflow 3; with a
    SQLite backend the artifacts still land under `./mlruns/`. Several search workers may
    start at once on a fresh SQLite store: its schema creation is serialised with a lock
    file, since two concurrent migrations of one database fail.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)
    mlflow.set_tracking_uri(uri)
    # Runs started under an active run (search trials) or under `mlflow run` (whose project
    # run becomes hzexp's first run) belong to that run's experiment.
    pinned_run = pinned_run_id()
    if pinned_run:
        experiment_id = mlflow.get_run(pinned_run).info.experiment_id
        if experiment_id == MLFLOW_DEFAULT_EXPERIMENT_ID and mlflow.active_run() is None:
            log.warning("the `mlflow run` project run %s is in MLflow's Default experiment; "
                        "pass `--experiment-name %s` to `mlflow run` to file it with hzexp's "
                        "other runs", pinned_run, experiment)
        mlflow.set_experiment(experiment_id=experiment_id)
        return uri
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", experiment)
    if uri.startswith("sqlite:///"):
        with _file_lock(Path(uri.removeprefix("sqlite:///") + ".lock")):
            mlflow.set_experiment(name)
    else:
        mlflow.set_experiment(name)
    return uri


def pinned_run_id() -> str | None:
    """The run hzexp's next run joins rather than creates: the active run, or the project run
    `mlflow run` made (MLFLOW_RUN_ID), which already holds every `-P` value as a param.
    MLflow drops MLFLOW_RUN_ID once that run is started, so the active run is asked first."""
    active = mlflow.active_run()
    return active.info.run_id if active else os.environ.get("MLFLOW_RUN_ID")


@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def git_commit() -> str:
    """The checkout's commit (with `-dirty` for local changes), or "unknown" outside git."""
    try:
        here = Path(__file__).parent
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, check=True).stdout
        return sha + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_tags(dataset_hash: str, dataset_path: str) -> dict[str, str]:
    """Provenance tags every run carries."""
    return {"dataset_hash": dataset_hash, "dataset_path": dataset_path,
            "git_commit": git_commit(), "hzexp_version": __version__}


def log_dataset_input(dataset: Dataset, context: str,
                      splits: tuple[str, ...] = ()) -> None:
    """Record `dataset` as the active run's input, so the MLflow UI's Dataset column shows it
    and runs on the same data can be found by it.

    Metadata only (a 1.2-million-galaxy catalogue is not loaded for this): name = the
    dataset directory's name, source = its path, digest = its content hash (the first
    `DATASET_DIGEST_LENGTH` hex digits, MLflow's limit; the full hash is the `dataset_hash`
    tag). MLflow keeps one context per dataset and run, so `context` is the main use
    (`DATASET_CONTEXTS`) and the splits a run used are the input's tag `hzexp.splits`.
    """
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource

    unknown = sorted({context, *splits} - set(DATASET_CONTEXTS))
    if unknown:
        raise ValueError(f"dataset contexts {unknown}: expected some of {DATASET_CONTEXTS}")
    entry = MetaDataset(LocalArtifactDatasetSource(str(dataset.path.resolve())),
                        name=dataset.path.name,
                        digest=dataset.content_hash[:DATASET_DIGEST_LENGTH])
    tags = {DATASET_SPLITS_TAG: ",".join(splits)} if splits else None
    try:
        mlflow.log_input(entry, context=context, tags=tags)
    except mlflow.exceptions.MlflowException as error:
        if not _lost_dataset_race(error):
            raise
        # The tracking store checks for the dataset and then inserts it, in one transaction
        # that a unique-key clash rolls back whole; by now the winner's row is committed,
        # so the second try finds it and only links this run to it.
        log.info("another run registered dataset %s at the same moment; linking to it",
                 entry.name)
        mlflow.log_input(entry, context=context, tags=tags)


def _lost_dataset_race(error: Exception) -> bool:
    """Whether `error` is the tracking store's unique-key clash on its datasets table: two
    runs (search workers starting together) logged the same new dataset at once. PostgreSQL
    names the constraint (`dataset_pk`), SQLite the table (`UNIQUE constraint failed:
    datasets...`)."""
    message = str(error)
    return '"dataset_pk"' in message or "UNIQUE constraint failed: datasets." in message


def log_prediction_input(dataset: Dataset) -> None:
    """Under `mlflow run . -e predict`, record the predicted dataset as the project run's
    input (context `prediction`); a plain `hzexp predict` has no run and logs nothing."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id is None or mlflow.active_run() is not None:
        return
    with mlflow.start_run(run_id=run_id):
        log_dataset_input(dataset, "prediction")


def start_run(run_name: str, tags: dict[str, str], nested: bool = False):
    """An MLflow run context; it ends FAILED (not RUNNING) when the block raises."""
    return mlflow.start_run(run_name=run_name, tags=tags, nested=nested)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def run_log(name: str = "hzexp.log"):
    """hzexp's log records (per-epoch lines among them) while the block runs, logged to the
    active run as `logs/<name>`, also when the block raises (a failed or pruned trial)."""
    logger = logging.getLogger("hzexp")
    level = logger.level
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:  # the run's log has INFO, whatever
            logger.setLevel(logging.INFO)              # the console shows
        try:
            yield
        finally:
            logger.setLevel(level)
            logger.removeHandler(handler)
            handler.close()
            mlflow.log_artifact(str(path), artifact_path="logs")


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def log_file(path: Path, artifact_dir: str) -> None:
    mlflow.log_artifact(str(path), artifact_path=artifact_dir)


def log_parquet(frame: pd.DataFrame, name: str) -> None:
    """A per-galaxy table as `data/<name>.parquet` (compact at survey scale)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path="data")


def log_params(params: dict[str, Any]) -> None:
    """Log params, lists as their string form (MLflow params are strings).

    A key the run already holds is left as it is: under `mlflow run` the project run holds
    each `-P` value as the user typed it before hzexp starts, MLflow refuses to change a
    param, and hzexp's own spelling of the same argument (a storage URL re-rendered without
    its password, say) must not crash the run.
    """
    held = mlflow.get_run(mlflow.active_run().info.run_id).data.params
    mlflow.log_params({k: (",".join(map(str, v)) if isinstance(v, list) else v)
                       for k, v in params.items() if k not in held})


def log_frame(frame: pd.DataFrame, name: str) -> None:
    """A table as an MLflow table (UI-comparable) and as CSV (for people and papers)."""
    mlflow.log_table(frame, artifact_file=f"tables/{name}.json")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.csv"
        frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path), artifact_path="tables")


def log_figures(figures: dict[str, Any]) -> None:
    """Plotly figures as `figures/<name>.html` (readable offline) and, where a Chromium is
    found, `figures/<name>.png` (`hzexp.evaluation.rendering`)."""
    from hzexp.evaluation.rendering import write_figures

    with tempfile.TemporaryDirectory() as tmp:
        write_figures(figures, Path(tmp))
        mlflow.log_artifacts(tmp, artifact_path="figures")


def running_search_runs(study_name: str) -> dict[str, str]:
    """The study's search parent runs still RUNNING, in any experiment: run id -> the
    WORKER_TAG of the process that started it."""
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list",
                              filter_string="attributes.status = 'RUNNING'")
    return {run.info.run_id: run.data.tags[WORKER_TAG] for run in runs
            if WORKER_TAG in run.data.tags and run.data.tags.get(STUDY_TAG) == study_name}


def end_killed_search_run(parent_run_id: str) -> None:
    """Mark a dead worker's parent run KILLED, and its RUNNING trial runs KILLED with the
    Optuna state FAIL (what the trial became), so nothing it left reads as still running."""
    client = mlflow.MlflowClient()
    parent = client.get_run(parent_run_id)
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' "
                                                "and attributes.status = 'RUNNING'")
    for child in children:
        client.set_tag(child.info.run_id, TRIAL_STATE_TAG, "FAIL")
        client.set_terminated(child.info.run_id, status="KILLED")
    client.set_terminated(parent_run_id, status="KILLED")


def mark_trial_run(run_id: str | None, trial_state: str) -> None:
    """Record an Optuna trial's fate on its (ended) nested run.

    A pruned trial stops by exception, so MLflow ended its run FAILED; it is marked KILLED
    instead (stopped on purpose), and every trial run carries its Optuna state as a tag.
    """
    if run_id is None:
        return
    client = mlflow.MlflowClient()
    client.set_tag(run_id, TRIAL_STATE_TAG, trial_state)
    if trial_state == "PRUNED":
        client.set_terminated(run_id, status="KILLED")
