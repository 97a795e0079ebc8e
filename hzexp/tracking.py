"""Everything MLflow: tracking URI, runs, per-epoch metrics, tables, figures, model logging.

The rest of hzexp is plain functions on arrays and configs; this module turns their results
into the MLflow record DESIGN.md lists, so runs compare cleanly in the MLflow UI: the same
param names (the flattened pipeline config) and metric names in every run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import Schema, TensorSpec

from hzexp import __version__
from hzexp.data.store import IMAGE_BANDS, MAG_COLUMNS

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "hybrid-z"
EPOCH_METRICS = ("loss", "val_loss", "mae", "val_mae", "mse", "val_mse", "r2", "val_r2",
                 "val_smad", "learning_rate")
MODEL_ARTIFACT = "model"
KERAS_FILE = "hybrid_z.keras"
PYFUNC_ENTRY = Path(__file__).parent / "resources" / "pyfunc_model.py"


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
    # run becomes hzexp's first run) belong to that run's experiment. MLflow drops
    # MLFLOW_RUN_ID once the project run is started, so the active run is asked first.
    active = mlflow.active_run()
    pinned_run = active.info.run_id if active else os.environ.get("MLFLOW_RUN_ID")
    if pinned_run:
        mlflow.set_experiment(experiment_id=mlflow.get_run(pinned_run).info.experiment_id)
        return uri
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", experiment)
    if uri.startswith("sqlite:///"):
        with _file_lock(Path(uri.removeprefix("sqlite:///") + ".lock")):
            mlflow.set_experiment(name)
    else:
        mlflow.set_experiment(name)
    return uri


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


def start_run(run_name: str, tags: dict[str, str], nested: bool = False):
    """An MLflow run context; it ends FAILED (not RUNNING) when the block raises."""
    return mlflow.start_run(run_name=run_name, tags=tags, nested=nested)


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


class EpochMetricsLogger(keras.callbacks.Callback):
    """Log Keras' per-epoch metrics (`loss val_loss mae mse r2`, train and validation),
    validation SMAD and, when a schedule changes it, the learning rate."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        mlflow.log_metrics({k: float(logs[k]) for k in EPOCH_METRICS if k in logs}, step=epoch)


def log_params(params: dict[str, Any]) -> None:
    """Log params, lists as their string form (MLflow params are strings)."""
    mlflow.log_params({k: (",".join(map(str, v)) if isinstance(v, list) else v)
                       for k, v in params.items()})


def log_frame(frame: pd.DataFrame, name: str) -> None:
    """A table as an MLflow table (UI-comparable) and as CSV (for people and papers)."""
    mlflow.log_table(frame, artifact_file=f"tables/{name}.json")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.csv"
        frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path), artifact_path="tables")


def log_figures(figures: dict[str, Any]) -> None:
    """Plotly figures as standalone HTML (PNG export needs Chrome, so it is not attempted)."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, figure in figures.items():
            path = Path(tmp) / f"{name}.html"
            figure.write_html(path, include_plotlyjs="cdn")
            mlflow.log_artifact(str(path), artifact_path="figures")


def model_signature(stored_size: int) -> ModelSignature:
    """Named two-input signature on raw dataset rows: uncropped images and raw magnitudes."""
    inputs = Schema([
        TensorSpec(np.dtype(np.float32), (-1, stored_size, stored_size, len(IMAGE_BANDS)), "image"),
        TensorSpec(np.dtype(np.float32), (-1, len(MAG_COLUMNS)), "mags"),
    ])
    outputs = Schema([TensorSpec(np.dtype(np.float32), (-1,), "z_phot")])
    return ModelSignature(inputs=inputs, outputs=outputs)


class HybridZPyfunc(mlflow.pyfunc.PythonModel):
    """Pyfunc over the deployable Keras model (crop, normalisation and scaler inside).

    A thin wrapper rather than the keras flavour, so that loading imports hzexp's custom
    layers first, and predictions go in bounded batches whatever the request size.
    """

    batch_size = 1024

    def load_context(self, context) -> None:
        import hzexp.model.preprocessing  # noqa: F401  registers the custom layers

        self.model = keras.saving.load_model(context.artifacts["keras_model"])

    def predict(self, context, model_input, params=None) -> np.ndarray:
        images = np.asarray(model_input["image"], dtype=np.float32)
        mags = np.asarray(model_input["mags"], dtype=np.float32)
        out = [self.model.predict_on_batch({"image": images[i:i + self.batch_size],
                                            "mags": mags[i:i + self.batch_size]})
               for i in range(0, len(images), self.batch_size)]
        return np.concatenate([np.asarray(o).reshape(-1) for o in out]).astype(np.float32)


def log_deployable_model(deployable: keras.Model, stored_size: int) -> str:
    """Log the deployable model under the active run; returns its `runs:/` URI."""
    with tempfile.TemporaryDirectory() as tmp:
        keras_path = Path(tmp) / KERAS_FILE
        deployable.save(keras_path)
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT, python_model=str(PYFUNC_ENTRY),
            artifacts={"keras_model": str(keras_path)},
            signature=model_signature(stored_size),
            pip_requirements=[f"hzexp=={__version__}", f"tensorflow=={_version('tensorflow')}",
                              f"keras=={keras.__version__}", f"mlflow=={mlflow.__version__}"])
    return info.model_uri


BASELINE_ARTIFACT = "baseline_mlp"
BASELINE_URI_TAG = "baseline_model_uri"
# skops (MLflow's safe sklearn format) loads only listed types beyond sklearn's own.
BASELINE_TRUSTED_TYPES = ["hzexp.evaluation.baselines.magnitude_features", "numpy.dtype",
                          "sklearn.neural_network._stochastic_optimizers.AdamOptimizer"]


def log_baseline_model(model) -> str:
    """The magnitude-only MLP baseline (a scikit-learn pipeline on raw magnitudes), so an
    external validation can compare against the baseline of the same run."""
    info = mlflow.sklearn.log_model(model, name=BASELINE_ARTIFACT,
                                    skops_trusted_types=BASELINE_TRUSTED_TYPES)
    mlflow.set_tag(BASELINE_URI_TAG, info.model_uri)
    return info.model_uri


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def load_pyfunc(model_uri: str):
    """Load a logged or registered Hybrid-z model (`runs:/...`, `models:/hybrid-z@champion`)."""
    return mlflow.pyfunc.load_model(model_uri)


REGISTERED_MODEL = "hybrid-z"
CHAMPION, CHALLENGER = "champion", "challenger"
TRIAL_STATE_TAG = "optuna.trial_state"


class ActiveRunRecorder(keras.callbacks.Callback):
    """Remember the MLflow run a training belongs to, to tag it after it has ended."""

    run_id: str | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.run_id = mlflow.active_run().info.run_id


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


@dataclass
class Registration:
    """A registered model version and the alias it received."""

    name: str
    version: str
    alias: str
    val_smad_dz: float
    test_metrics: dict[str, float]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{self.alias}"

    def summary(self) -> str:
        return (f"registered {self.name} version {self.version} as @{self.alias} "
                f"(validation SMAD {self.val_smad_dz:.4f}, test SMAD "
                f"{self.test_metrics.get('test_smad_dz', float('nan')):.4f})")


def _current_champion(client: mlflow.MlflowClient, name: str):
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None


def register_model(model_uri: str, val_smad_dz: float, dataset_hash: str, tags: dict[str, str],
                   test_metrics: dict[str, float], name: str = REGISTERED_MODEL) -> Registration:
    """Register `model_uri` as a new version of `name` and give it an alias.

    `champion` moves to the new version when there is no champion, or when the champion
    was selected on the same dataset (same content hash) with a worse validation SMAD.
    Scores on different datasets are not comparable, so otherwise it becomes `challenger`.
    """
    client = mlflow.MlflowClient()
    version = _registered_version(client, name, model_uri)
    if version is not None and version.aliases:
        # Re-running a finished study must not register or re-alias its best model.
        return Registration(name=name, version=str(version.version), alias=version.aliases[0],
                            val_smad_dz=val_smad_dz, test_metrics=test_metrics)
    if version is None:
        version = mlflow.register_model(model_uri, name,
                                        tags={**tags, "source_model_uri": model_uri})
    champion = _current_champion(client, name)
    beats = champion is None or (
        champion.tags.get("dataset_hash") == dataset_hash
        and val_smad_dz < float(champion.tags.get("val_smad_dz", "inf")))
    alias = CHAMPION if beats else CHALLENGER
    client.set_registered_model_alias(name, alias, version.version)
    return Registration(name=name, version=str(version.version), alias=alias,
                        val_smad_dz=val_smad_dz, test_metrics=test_metrics)


def _registered_version(client: mlflow.MlflowClient, name: str, model_uri: str):
    """The version of `name` already made from `model_uri` (with its aliases), if any."""
    for found in client.search_model_versions(f"name='{name}'"):
        if found.tags.get("source_model_uri") == model_uri:
            return client.get_model_version(name, found.version)
    return None


@dataclass(frozen=True)
class ModelSource:
    """Where a model URI points: registered name and version (if any) and its run."""

    uri: str
    name: str | None
    version: str | None
    run_id: str | None


def resolve_model(model_uri: str) -> ModelSource:
    """Resolve `models:/name@alias`, `models:/name/version`, `models:/m-<id>` or
    `runs:/<run>/...` to its registered version and source run."""
    client = mlflow.MlflowClient()
    if model_uri.startswith("runs:/"):
        return ModelSource(model_uri, None, None, model_uri.removeprefix("runs:/").split("/")[0])
    if not model_uri.startswith("models:/"):
        return ModelSource(model_uri, None, None, None)
    ref = model_uri.removeprefix("models:/")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        version = client.get_model_version_by_alias(name, alias)
    elif "/" in ref:
        name, number = ref.split("/", 1)
        version = client.get_model_version(name, number)
    else:
        return ModelSource(model_uri, None, None, mlflow.get_logged_model(ref).source_run_id)
    return ModelSource(model_uri, version.name, str(version.version), version.run_id)


def load_baseline_for(source: ModelSource):
    """The magnitude-only baseline logged by the run that trained `source`, or None."""
    if source.run_id is None:
        return None
    uri = mlflow.get_run(source.run_id).data.tags.get(BASELINE_URI_TAG)
    return mlflow.sklearn.load_model(uri) if uri else None


# --- Looking up a model for prediction ---------------------------------------------------

#: A registry that does not answer should fail a prediction at once, not after MLflow's
#: default 7 retries with backoff (minutes): these apply unless the user set them.
FAIL_FAST_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


class ModelLookupError(ValueError):
    """A model URI that does not resolve; the message names the URI and the reason."""


@contextlib.contextmanager
def _fail_fast_http():
    added = {k: v for k, v in FAIL_FAST_HTTP.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def lookup_model(model_uri: str) -> ModelSource:
    """`resolve_model` against the tracking store `MLFLOW_TRACKING_URI` (default
    `sqlite:///mlflow.db`), with one-line `ModelLookupError`s instead of MLflow's.

    Unlike `configure_tracking` it creates nothing: a missing SQLite store is reported
    rather than created empty, and no experiment is set. A tracking server that does not
    answer fails within seconds (`FAIL_FAST_HTTP`). Local model paths need no store.
    """
    if not model_uri.startswith(("models:/", "runs:/")):
        return resolve_model(model_uri)
    uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ModelLookupError(f"model {model_uri}: the tracking store {uri} does not exist "
                               "(set MLFLOW_TRACKING_URI to the store holding the registry)")
    mlflow.set_tracking_uri(uri)
    try:
        with _fail_fast_http():
            source = resolve_model(model_uri)
            if source.run_id and source.name is None:  # runs:/ URIs are only parsed
                mlflow.MlflowClient().get_run(source.run_id)
            return source
    except mlflow.exceptions.MlflowException as err:
        raise ModelLookupError(_lookup_failure(model_uri, uri, err)) from None


def _lookup_failure(model_uri: str, tracking_uri: str, err: Exception) -> str:
    """One line: an unreachable registry, or what MLflow said was not found."""
    import requests

    cause = err
    while cause is not None:
        if isinstance(cause, requests.exceptions.RequestException):
            return (f"model {model_uri}: the registry at {tracking_uri} cannot be reached "
                    f"({type(cause).__name__})")
        cause = cause.__cause__ or cause.__context__
    reason = str(getattr(err, "message", err)).splitlines()[0]
    return f"model {model_uri}: not found in the registry at {tracking_uri} ({reason})"


def load_hybrid_z_pyfunc(model_uri: str) -> HybridZPyfunc:
    """The `HybridZPyfunc` inside a logged model: its Keras model is `.model`, and its
    `predict` is the code path `mlflow models serve` runs."""
    return load_pyfunc(model_uri).unwrap_python_model()
