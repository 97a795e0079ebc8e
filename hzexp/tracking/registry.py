"""The model registry: champion/challenger registration and resolving model URIs.

`register_model` decides which alias a new version gets; `resolve_model` pins a URI (an
alias can move) to its version and run; `lookup_model` does that against the configured
store with one-line errors and without creating anything, for prediction.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.sklearn
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from hzexp.tracking.models import BASELINE_URI_TAG
from hzexp.tracking.runs import DEFAULT_TRACKING_URI

REGISTERED_MODEL = "hybrid-z"
CHAMPION, CHALLENGER = "champion", "challenger"


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


def registry_uri() -> str:
    """The store `lookup_model` reads (`MLFLOW_TRACKING_URI`, default `sqlite:///mlflow.db`)
    with a relative SQLite path made absolute, so that processes started elsewhere (the
    workers of a cluster) read the same store."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{Path(uri.removeprefix('sqlite:///')).resolve()}"
    return uri


def lookup_model(model_uri: str) -> ModelSource:
    """`resolve_model` against the tracking store `MLFLOW_TRACKING_URI` (default
    `sqlite:///mlflow.db`), with one-line `ModelLookupError`s instead of MLflow's.

    Unlike `configure_tracking` it creates nothing: a missing SQLite store is reported
    rather than created empty, and no experiment is set. A tracking server that does not
    answer fails within seconds (`FAIL_FAST_HTTP`). Local model paths need no store.
    """
    if not model_uri.startswith(("models:/", "runs:/")):
        try:  # a path, or a URI whose scheme MLflow has an artifact repository for
            get_artifact_repository(model_uri)
        except mlflow.exceptions.MlflowException as err:
            reason = str(err.message).splitlines()[0]
            raise ModelLookupError(f"model {model_uri}: not a model URI MLflow can read "
                                   f"({reason})") from None
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

