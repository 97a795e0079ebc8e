"""Everything Optuna: the persistent study, the trial objective, pruning, the best model.

One `hzexp search` invocation is one MLflow parent run; each trial is a nested run made by
the same tracked training as `hzexp train`, evaluated on the validation split (the search
objective is validation SMAD(Dz)); the test split is used once, for the registered model.

Several workers may run the same command against one storage (SQLite on one machine,
PostgreSQL across machines): the study lives in the storage, `--n-trials` is the study's
target size across all workers, a worker killed mid-trial is noticed through heartbeats
and its trial re-queued, and running the command again resumes the study.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import TrialState
from optuna_integration import TFKerasPruningCallback
from tqdm.auto import tqdm

from hzexp import tracking
from hzexp.config import (
    ConfigError,
    PipelineConfig,
    SearchSpace,
    StudyConfig,
    apply_overrides,
    from_dict,
    load_pipeline,
    load_search_space,
    to_dict,
)
from hzexp.data.sources import resolve_dataset
from hzexp.data.splits import assign_splits
from hzexp.data.store import Dataset
from hzexp.evaluation.tables import subsample_metrics
from hzexp.experiment import SPLITS_USED, tracked_training
from hzexp.inference import predict_dataset_rows
from hzexp.tracking.callbacks import ActiveRunRecorder
from hzexp.workers import Worker

log = logging.getLogger(__name__)

DEFAULT_STORAGE = "sqlite:///optuna.db"
#: For each `study.objective`: (the trial run's metric returned to Optuna, the per-epoch
#: metric the pruner watches).
OBJECTIVES = {"val_smad": ("val_smad_dz", "val_smad"), "val_crps": ("val_crps", "val_pdf_crps")}
OBJECTIVE_LABELS = {"val_smad": "validation SMAD(Dz)", "val_crps": "validation CRPS"}
#: What the registry compares versions by, whatever the objective (a trial user attribute).
REGISTRY_METRIC = "val_smad_dz"
PROGRESS_MONITOR = "val_smad"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
#: Trials that will count once done: a worker starts a trial only while these are fewer than
#: --n-trials, so two workers do not both start the last one.
CLAIMED = (*FINISHED, TrialState.RUNNING)
#: A trial's user attribute: the worker running it, the trial number it was recorded for
#: (a retried trial inherits its original's attributes) and the worker's parent run.
WORKER_ATTR = "worker"
#: A re-queued copy of a trial whose worker died (once: a trial that kills its worker twice
#: is left FAIL).
RETRY_DEAD_WORKERS_TRIAL = RetryHeartbeatStaleTrialCallback(max_retry=1)
#: How often a worker with nothing left to start looks at the other workers' trials.
WAIT_SECONDS = 2.0
#: `scheme://user:password@` in a URL string, for one SQLAlchemy cannot parse.
_USER_PASSWORD = re.compile(r"(://[^:/@]*:)(.*)@")


@dataclass
class SearchOutcome:
    """The study after this invocation, and what was registered from it."""

    study_name: str
    parent_run_id: str
    n_finished: int
    best_value: float | None
    best_params: dict[str, Any]
    registration: tracking.Registration | None
    objective: str = "val_smad"

    def summary(self) -> str:
        lines = [f"study {self.study_name}: {self.n_finished} finished trials, "
                 f"parent run {self.parent_run_id}"]
        if self.best_value is not None:
            label = OBJECTIVE_LABELS[self.objective]
            lines.append(f"best {label} {self.best_value:.4f} with {self.best_params}")
        if self.registration:
            lines.append(self.registration.summary())
        return "\n".join(lines)


def make_storage(url: str, heartbeat_interval: int = 60) -> RDBStorage:
    """RDB storage with heartbeats: a trial whose worker stops beating for two intervals
    is marked FAIL by the next worker and re-queued once (same params) by the callback."""
    return RDBStorage(url, heartbeat_interval=heartbeat_interval,
                      grace_period=2 * heartbeat_interval,
                      heartbeat_stale_trial_callback=RETRY_DEAD_WORKERS_TRIAL,
                      engine_kwargs={"pool_pre_ping": True})


def check_storage(url: str) -> None:
    """Connect to the storage once, so a URL that is not one, an unknown database kind, a
    missing driver, an unreachable server or a refused password is one line (naming the URL
    without its password) rather than a SQLAlchemy traceback, and before any work starts.

    A password belongs in PGPASSWORD or ~/.pgpass (libpq, under psycopg, reads both), not in
    the URL; a URL's own password is never printed.
    """
    where = f"--storage {redact(url)}"
    try:
        engine = sqlalchemy.create_engine(url)
    except sqlalchemy.exc.NoSuchModuleError:
        raise ConfigError(f"{where}: unknown database kind {url.split(':', 1)[0]!r} "
                          "(sqlite or postgresql+psycopg)") from None
    except sqlalchemy.exc.ArgumentError:
        raise ConfigError(f"{where}: not a database URL (sqlite:///FILE or "
                          "postgresql+psycopg://USER@HOST/DB)") from None
    except ImportError as err:
        raise ConfigError(f"{where}: its database driver {err.name} is not installed") from None
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.DBAPIError as err:
        reason = " ".join(str(err.orig).split())
        if engine.url.password:
            reason = reason.replace(str(engine.url.password), "***")
        raise ConfigError(f"{where}: cannot open it: {reason}") from None
    finally:
        engine.dispose()


def make_pruner(study: StudyConfig) -> optuna.pruners.BasePruner:
    """The search space's pruner. Percentile pruners judge a trial's best value so far
    against the completed trials only, so TPE's good trials raise the bar as the study goes."""
    if study.pruner in ("median", "percentile"):
        percentile = 50.0 if study.pruner == "median" else study.percentile
        return optuna.pruners.PercentilePruner(percentile, n_startup_trials=study.startup_trials,
                                               n_warmup_steps=study.warmup_epochs)
    if study.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, study.warmup_epochs))
    return optuna.pruners.NopPruner()


def open_study(storage: str, study_name: str, space: SearchSpace, worker_index: int = 0,
               heartbeat_interval: int = 60, attempts: int = 6) -> optuna.Study:
    """Create the study or load it; safe when several workers start at the same moment.

    Two workers opening a fresh storage race on creating its tables and the study row; the
    loser gets a database error, waits and opens what the winner created. Workers get
    distinct sampler seeds (`sampler_seed + worker_index`) so they do not propose the same
    trials.
    """
    sampler = optuna.samplers.TPESampler(seed=space.study.sampler_seed + worker_index,
                                         n_startup_trials=max(space.study.startup_trials, 1))
    for attempt in range(attempts):
        try:
            return optuna.create_study(study_name=study_name,
                                       storage=make_storage(storage, heartbeat_interval),
                                       load_if_exists=True, direction="minimize",
                                       sampler=sampler, pruner=make_pruner(space.study))
        except (sqlalchemy.exc.DBAPIError, optuna.exceptions.DuplicatedStudyError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def suggest_overrides(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Draw one value per searched pipeline key."""
    values: dict[str, Any] = {}
    for key, spec in space.parameters.items():
        if spec.type == "float":
            values[key] = trial.suggest_float(key, spec.low, spec.high, log=spec.log)
        elif spec.type == "int":
            values[key] = trial.suggest_int(key, int(spec.low), int(spec.high), log=spec.log)
        else:
            values[key] = trial.suggest_categorical(key, list(spec.choices))
    return values


def trial_config(base: PipelineConfig, values: dict[str, Any],
                 stored_size: int | None = None) -> PipelineConfig:
    """The base pipeline with a trial's values applied and validated."""
    data = apply_overrides(to_dict(base), [f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
                                           for k, v in values.items()])
    config = from_dict(PipelineConfig, data)
    config.validate(stored_size=stored_size)
    return config


class StudyProgress:
    """The study's progress bar: finished trials of the target, pruned ones, the best value
    so far and tqdm's estimate of the time left; an Optuna callback, updated per trial."""

    def __init__(self, study: optuna.Study, n_trials: int, enabled: bool) -> None:
        self.bar = tqdm(total=n_trials, initial=_finished(study), unit="trial",
                        desc=f"study {study.study_name}", position=0, disable=not enabled,
                        dynamic_ncols=True)
        self._show(study)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state in FINISHED:
            self.bar.update(1)
        self._show(study)

    def _show(self, study: optuna.Study) -> None:
        best, _ = _best(study)
        pruned = len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
        self.bar.set_postfix_str(f"pruned {pruned}, best val SMAD "
                                 + ("-" if best is None else f"{best:.4f}"))

    def close(self) -> None:
        self.bar.close()


class TrialProgress(keras.callbacks.Callback):
    """The current trial's progress bar: epochs trained (of the maximum) and val SMAD."""

    def __init__(self, number: int, enabled: bool) -> None:
        super().__init__()
        self.bar = tqdm(unit="epoch", desc=f"trial {number}", position=1, leave=False,
                        disable=not enabled, dynamic_ncols=True)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.bar.reset(total=self.params["epochs"])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs and PROGRESS_MONITOR in logs:
            self.bar.set_postfix_str(f"val SMAD {logs[PROGRESS_MONITOR]:.4f}")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class _NotTheTrainingLog(logging.Filter):
    """Keeps `hzexp.training` records (one per epoch) off a console handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith("hzexp.training")


@contextlib.contextmanager
def progress_console(enabled: bool):
    """While the bars show, the terminal gets no per-epoch lines (they still reach each
    run's `logs/hzexp.log`) and no Optuna per-trial lines (the study bar says the same)."""
    if not enabled:
        yield
        return
    console = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)
               and not isinstance(h, logging.FileHandler)]
    quiet = _NotTheTrainingLog()
    verbosity = optuna.logging.get_verbosity()
    for handler in console:
        handler.addFilter(quiet)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)
        for handler in console:
            handler.removeFilter(quiet)


def check_space(base: PipelineConfig, space: SearchSpace, stored_size: int | None = None) -> None:
    """Refuse a space that can draw an invalid pipeline, before the study opens.

    Each end of every range and every choice is applied to the base pipeline and validated
    by the rules a pipeline file obeys (`PipelineConfig.validate`); the rules are bounds, so
    valid ends make the whole range valid. Without this a bad range (depth 6-7, a negative
    batch size) is accepted and crashes the first trial that draws it. A CRPS objective
    needs PDFs: a pipeline whose model gives points is refused for it.
    """
    if (space.study.objective == "val_crps" and base.model.output != "pdf"
            and "model.output" not in space.parameters):
        raise ConfigError(f"study.objective = 'val_crps': needs PDFs, but the pipeline's "
                          f"model.output is {base.model.output!r} (use model.output: pdf)")
    for key, spec in space.parameters.items():
        if spec.type == "categorical":
            values = list(spec.choices)
        elif spec.type == "int":
            values = [int(spec.low), int(spec.high)]
        else:
            values = [spec.low, spec.high]
        for value in values:
            try:
                trial_config(base, {key: value}, stored_size)
            except ConfigError as err:
                raise ConfigError(f"parameters.{key}: value {value!r} gives {err}") from None


def make_objective(base: PipelineConfig, space: SearchSpace, dataset: Dataset, study_name: str,
                   parent_run_id: str, progress: bool = False):
    """The trial objective: a nested tracked training run scored by validation SMAD(Dz), or
    by the validation CRPS of its PDFs (`study.objective`).

    Each trial first records which worker runs it (WORKER_ATTR), so that a rerun can tell
    at once when that worker is gone and what it left running in MLflow.
    """
    worker = Worker.current().record()
    objective_metric, pruning_monitor = OBJECTIVES[space.study.objective]

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, {**worker, "trial": trial.number,
                                          "parent_run_id": parent_run_id})
        config = trial_config(base, suggest_overrides(trial, space))
        pruning = TFKerasPruningCallback(trial, pruning_monitor)
        recorder = ActiveRunRecorder()
        bar = TrialProgress(trial.number, progress)
        tags = {tracking.STUDY_TAG: study_name, "optuna.trial": str(trial.number)}
        try:
            outcome = tracked_training(config, run_name=f"trial-{trial.number:03d}", nested=True,
                                       # the bar counts the epoch that prunes the trial
                                       callbacks=[recorder, bar, pruning], evaluate_on="val",
                                       dataset=dataset,
                                       extra_params={"trial_number": trial.number},
                                       extra_tags=tags)
        except optuna.TrialPruned:
            tracking.mark_trial_run(recorder.run_id, "PRUNED")
            raise
        except Exception:
            tracking.mark_trial_run(recorder.run_id, "FAIL")
            raise
        finally:
            bar.close()
        trial.set_user_attr("mlflow_run_id", outcome.run_id)
        trial.set_user_attr("model_uri", outcome.model_uri)
        trial.set_user_attr(REGISTRY_METRIC, outcome.metrics[REGISTRY_METRIC])
        tracking.mark_trial_run(outcome.run_id, "COMPLETE")
        return outcome.metrics[objective_metric]

    return objective


def study_figures(study: optuna.Study) -> dict[str, Any]:
    """Optuna's plotly figures; those that need several finished trials only when possible."""
    from optuna import visualization as vis

    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    figures = {"optimization_history": vis.plot_optimization_history(study),
               "intermediate_values": vis.plot_intermediate_values(study)}
    if len(complete) >= 2:
        figures.update({"parallel_coordinate": vis.plot_parallel_coordinate(study),
                        "slice": vis.plot_slice(study)})
        if len({tuple(sorted(t.params.items())) for t in complete}) >= 2:
            figures["param_importances"] = vis.plot_param_importances(study)
    return figures


def evaluate_on_test(model_uri: str, config: PipelineConfig, dataset: Dataset) -> dict[str, float]:
    """Test-split metrics of a registered model: the only time a search touches the test set."""
    rows = assign_splits(len(dataset), config.split)["test"]
    z_phot = predict_dataset_rows(tracking.load_pyfunc(model_uri), dataset, rows)
    frame = dataset.catalogue.iloc[rows].reset_index(drop=True)
    return subsample_metrics(frame, z_phot, prefix="test_")


def register_best(study: optuna.Study, base: PipelineConfig, dataset: Dataset,
                  space_file: str) -> tracking.Registration | None:
    """Register the study's best trial as a new `hybrid-z` version and set its alias."""
    try:
        best = study.best_trial
    except ValueError:
        log.warning("study %s has no completed trial: nothing to register", study.study_name)
        return None
    config = trial_config(base, best.params)
    test_metrics = evaluate_on_test(best.user_attrs["model_uri"], config, dataset)
    # trials of studies from before the CRPS objective hold their SMAD as the value only
    val_smad = best.user_attrs.get(REGISTRY_METRIC, best.value)
    tags = {"study": study.study_name, "trial": str(best.number),
            "val_smad_dz": f"{val_smad:.6g}", "dataset_hash": dataset.content_hash,
            "search_space": Path(space_file).name,
            **{k: f"{v:.6g}" for k, v in test_metrics.items()}}
    return tracking.register_model(best.user_attrs["model_uri"], val_smad,
                                   dataset.content_hash, tags, test_metrics)


def run_search(pipeline_file: str, space_file: str, n_trials: int, timeout: float | None = None,
               storage: str = DEFAULT_STORAGE, study_name: str | None = None,
               worker_index: int = 0, heartbeat_interval: int = 60,
               register: bool = True, progress: bool = False) -> SearchOutcome:
    """Run (or resume) a study until it holds `n_trials` finished trials or `timeout` passes.

    A worker with no trial left to start waits for the other workers' trials: they finish,
    or their worker is found dead (see `end_dead_workers`) and the trial is retried here. So
    a worker returns with nothing of the study left RUNNING, unless its timeout ends first.
    `progress`: show a bar for the study and one for the current trial on the terminal
    instead of per-epoch and per-trial log lines.
    """
    check_search_arguments(n_trials, timeout, heartbeat_interval, worker_index)
    base = load_pipeline(pipeline_file)
    space = load_search_space(space_file)
    _check_space_file(space_file, base, space)
    study_name = study_name or f"{base.name}-{space.name}"
    _refuse_a_password_mlflow_run_logged(storage)
    check_storage(storage)
    tracking.configure_tracking()
    dataset = resolve_dataset(base.data)
    _check_space_file(space_file, base, space, dataset.stored_size)
    study = open_study(storage, study_name, space, worker_index, heartbeat_interval)
    parent_tags = {**tracking.run_tags(dataset.content_hash, str(dataset.path)),
                   tracking.STUDY_TAG: study_name, "optuna.storage": redact(storage),
                   tracking.WORKER_TAG: json.dumps(Worker.current().record())}
    with tracking.start_run(run_name=f"search-{study_name}", tags=parent_tags) as parent:
        tracking.log_dataset_input(dataset, "training",
                                   SPLITS_USED["test" if register else "val"])
        tracking.log_params({"study": study_name, "storage": redact(storage),
                             "search_space": space_file, "pipeline": pipeline_file,
                             "n_trials_target": n_trials, "worker_index": worker_index,
                             "pruner": space.study.pruner})
        tracking.log_file(Path(space_file), "config")
        tracking.log_file(Path(pipeline_file), "config")
        objective = make_objective(base, space, dataset, study_name, parent.info.run_id,
                                   progress)
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = StudyProgress(study, n_trials, progress)
        try:
            with progress_console(progress):
                while True:
                    end_dead_workers(study, study_name)
                    left = None if deadline is None else deadline - time.monotonic()
                    if _finished(study) >= n_trials or (left is not None and left <= 0):
                        break
                    to_start = n_trials - _count(study, CLAIMED)
                    if to_start > 0:
                        study.optimize(objective, n_trials=to_start, timeout=left, catch=(),
                                       callbacks=[optuna.study.MaxTrialsCallback(
                                           n_trials, states=CLAIMED), bar])
                    else:
                        time.sleep(WAIT_SECONDS)
        finally:
            bar.close()
        registration = _summarise(study, base, dataset, space_file, space, register)
        best_value, best_params = _best(study)
        return SearchOutcome(study_name=study_name, parent_run_id=parent.info.run_id,
                             n_finished=_finished(study), best_value=best_value,
                             best_params=best_params, registration=registration,
                             objective=space.study.objective)


def check_search_arguments(n_trials: int, timeout: float | None, heartbeat_interval: int,
                           worker_index: int) -> None:
    """One line naming the option for a value no study can run with."""
    rules = [("--n-trials", n_trials, n_trials >= 1, "at least 1"),
             ("--timeout", timeout, timeout is None or timeout > 0, "> 0 seconds"),
             ("--heartbeat-interval", heartbeat_interval, heartbeat_interval >= 1,
              "at least 1 second"),
             ("--worker-index", worker_index, worker_index >= 0, ">= 0")]
    for option, value, ok, rule in rules:
        if not ok:
            raise ConfigError(f"{option} {value}: must be {rule}")


def _check_space_file(space_file: str, base: PipelineConfig, space: SearchSpace,
                      stored_size: int | None = None) -> None:
    try:
        check_space(base, space, stored_size)
    except ConfigError as err:
        raise ConfigError(f"{space_file}: {err}") from None


def _refuse_a_password_mlflow_run_logged(storage: str) -> None:
    """Under `mlflow run` every `-P` value is a param of the project run before hzexp
    starts, so a password in `-P storage=...` has reached MLflow already: refuse, and say
    how to give it instead. (Direct `hzexp search` logs the URL without its password.)"""
    run_id = tracking.pinned_run_id()
    if run_id and _password(storage):
        raise ConfigError(f"--storage {redact(storage)}: under `mlflow run` a password in the "
                          f"URL is logged to MLflow (run {run_id}); give the URL without it "
                          "and the password in PGPASSWORD or ~/.pgpass, and delete that run "
                          f"(mlflow runs delete --run-id {run_id}, then mlflow gc)")


def end_dead_workers(study: optuna.Study, study_name: str) -> None:
    """Fail and re-queue the trials of workers that are gone, and end their MLflow runs.

    A worker is gone when its host is this one and its process no longer exists (known at
    once), or when its heartbeat is older than the grace period (any host: Optuna's
    `fail_stale_trials`). Its RUNNING trial becomes FAIL and a copy is queued (once) with
    the same parameters; its parent run and RUNNING trial runs become KILLED. A parent run
    whose worker is gone between trials is ended too.
    """
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        record = trial.user_attrs.get(WORKER_ATTR)
        if _recorded_for(record, trial) and Worker.from_record(record).is_gone():
            try:
                failed = study.tell(trial.number, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker failed it first
            log.warning("trial %d: its worker (%s pid %s) is gone: FAIL, retried", trial.number,
                        record["host"], record["pid"])
            RETRY_DEAD_WORKERS_TRIAL(study, failed)
    fail_stale_trials(study)
    dead_parents = {t.user_attrs[WORKER_ATTR]["parent_run_id"]
                    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                    if _recorded_for(t.user_attrs.get(WORKER_ATTR), t)}
    for run_id, worker in tracking.running_search_runs(study_name).items():
        if run_id in dead_parents or Worker.from_record(json.loads(worker)).is_gone():
            tracking.end_killed_search_run(run_id)


def _recorded_for(record: dict | None, trial: optuna.trial.FrozenTrial) -> bool:
    """Whether `record` was written by the worker that ran this very trial (not inherited)."""
    return bool(record) and record.get("trial") == trial.number


def _summarise(study: optuna.Study, base: PipelineConfig, dataset: Dataset, space_file: str,
               space: SearchSpace, register: bool) -> tracking.Registration | None:
    """Log the study's state to the parent run and register its best model."""
    trials = study.trials_dataframe(attrs=("number", "value", "state", "params", "duration",
                                           "user_attrs"))
    trials["duration"] = trials["duration"].dt.total_seconds()
    tracking.log_frame(trials, "trials")
    tracking.log_figures(study_figures(study))
    counts = {f"trials_{s.name.lower()}": sum(t.state == s for t in study.trials)
              for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    tracking.log_metrics(counts)
    best_value, best_params = _best(study)
    if best_value is None:
        return None
    tracking.log_metrics({f"best_{OBJECTIVES[space.study.objective][0]}": best_value})
    tracking.log_params({f"best.{k}": v for k, v in best_params.items()})
    if not register:
        return None
    registration = register_best(study, base, dataset, space_file)
    if registration:
        tracking.log_metrics(registration.test_metrics)
    return registration


def _best(study: optuna.Study) -> tuple[float | None, dict[str, Any]]:
    try:
        return study.best_value, study.best_params
    except ValueError:
        return None, {}


def _finished(study: optuna.Study) -> int:
    return _count(study, FINISHED)


def _count(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def _password(url: str) -> str | None:
    try:
        return sqlalchemy.make_url(url).password
    except sqlalchemy.exc.ArgumentError:
        match = _USER_PASSWORD.search(url)
        return match.group(2) if match else None


def redact(url: str) -> str:
    """A storage URL without its password, for logs, params and messages; also a string
    SQLAlchemy cannot parse, which an error message still quotes."""
    try:
        return sqlalchemy.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return _USER_PASSWORD.sub(r"\1***@", url)


def register_finished_study(pipeline_file: str, space_file: str, study_name: str,
                            storage: str = DEFAULT_STORAGE) -> tracking.Registration | None:
    """The registration step on its own, for a study that finished elsewhere."""
    base = load_pipeline(pipeline_file)
    space = load_search_space(space_file)
    check_storage(storage)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage,
                                  sampler=optuna.samplers.TPESampler(seed=space.study.sampler_seed))
    except KeyError:
        raise ConfigError(f"--study {study_name}: no such study in --storage "
                          f"{redact(storage)}") from None
    tracking.configure_tracking()
    return register_best(study, base, resolve_dataset(base.data), space_file)

