"""Optuna search: nested runs, registry aliases, resume, pruning, workers, heartbeats."""

import dataclasses
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from hzexp.cli import main
from hzexp.config import ConfigError, load_pipeline, load_search_space
from hzexp.data.pipeline import magnitudes
from hzexp.data.store import Dataset
from hzexp.search import make_pruner, open_study, run_search

SPACE = Path(__file__).parents[1] / "search_spaces" / "smoke.yaml"


def storage_url(root: Path) -> str:
    return f"sqlite:///{root / 'optuna.db'}"


def child_runs(parent_run_id: str):
    return mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
                              search_all_experiments=True, output_format="list")


def search_command(pipeline, storage, *extra):
    return [sys.executable, "-m", "hzexp", "search", "--pipeline", str(pipeline),
            "--space", str(SPACE), "--storage", storage, "--study", "workers", *extra]


@pytest.mark.slow
def test_three_trial_search_registers_a_loadable_champion(tracking_env, smoke_pipeline):
    outcome = run_search(str(smoke_pipeline), str(SPACE), n_trials=3,
                         storage=storage_url(tracking_env), study_name="s3")
    study = optuna.load_study(study_name="s3", storage=storage_url(tracking_env))
    assert len(study.trials) == 3
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    children = child_runs(outcome.parent_run_id)
    assert sorted(r.info.run_name for r in children) == ["trial-000", "trial-001", "trial-002"]
    states = {r.data.tags["optuna.trial_state"] for r in children}
    assert states <= {"COMPLETE", "PRUNED"}
    completed = [r for r in children if r.data.tags["optuna.trial_state"] == "COMPLETE"]
    assert all("val_smad_dz" in r.data.metrics and "model.depth" in r.data.params
               for r in completed)
    parent = mlflow.get_run(outcome.parent_run_id)
    assert parent.data.metrics["best_val_smad_dz"] == pytest.approx(study.best_value)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(outcome.parent_run_id,
                                                                      "figures")}
    assert "figures/optimization_history.html" in artifacts

    assert outcome.registration.alias == "champion"
    version = mlflow.MlflowClient().get_model_version_by_alias("hybrid-z", "champion")
    assert version.tags["trial"] == str(study.best_trial.number)
    assert float(version.tags["val_smad_dz"]) == pytest.approx(study.best_value, rel=1e-5)
    assert "test_smad_dz" in version.tags and "test_smad_dz" in parent.data.metrics

    model = mlflow.pyfunc.load_model("models:/hybrid-z@champion")
    dataset = Dataset.open(load_pipeline(smoke_pipeline).data.path)
    rows = np.arange(5)
    z = model.predict({"image": dataset.read_images(rows), "mags": magnitudes(dataset, rows)})
    assert z.shape == (5,) and np.all((z > 0) & (z < 1))

    # The same command again resumes: nothing re-run, nothing re-registered.
    again = run_search(str(smoke_pipeline), str(SPACE), n_trials=3,
                       storage=storage_url(tracking_env), study_name="s3")
    assert again.n_finished == 3 and again.registration.version == outcome.registration.version
    assert len(mlflow.MlflowClient().search_model_versions("name='hybrid-z'")) == 1
    # The registration step on its own (for a study finished elsewhere) is idempotent too.
    assert main(["register", "--pipeline", str(smoke_pipeline), "--space", str(SPACE),
                 "--study", "s3", "--storage", storage_url(tracking_env)]) == 0
    assert len(mlflow.MlflowClient().search_model_versions("name='hybrid-z'")) == 1


def test_under_mlflow_run_trials_nest_in_the_project_runs_experiment(tracking_env,
                                                                     smoke_pipeline, monkeypatch):
    """`mlflow run . -e search` makes the project run (in its own experiment) the parent;
    the trial runs must land in that experiment too, or the UI cannot show them nested."""
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("project-search")
    project_run = client.create_run(experiment)
    monkeypatch.setenv("MLFLOW_RUN_ID", project_run.info.run_id)
    outcome = run_search(str(smoke_pipeline), str(SPACE), n_trials=1,
                         storage=storage_url(tracking_env), study_name="project", register=False)
    assert outcome.parent_run_id == project_run.info.run_id
    children = child_runs(outcome.parent_run_id)
    assert len(children) == 1 and children[0].info.experiment_id == experiment


@pytest.mark.slow
def test_a_search_shows_two_progress_bars_and_keeps_epoch_lines_in_the_run_logs(
        tracking_env, smoke_pipeline, capfd, caplog):
    caplog.set_level(logging.INFO)
    outcome = run_search(str(smoke_pipeline), str(SPACE), n_trials=2,
                         storage=storage_url(tracking_env), study_name="bars", register=False,
                         progress=True)
    err = capfd.readouterr().err
    assert re.search(r"study bars: 100%.*\| 2/2 \[.*pruned \d+, best val SMAD 0\.\d{4}\]", err)
    assert re.search(r"trial 1: .*\| [12]/2 \[", err)  # the current trial, in epochs
    assert "Epoch 1/" not in err and " epoch 1/2: " not in err  # no per-epoch lines
    assert not [r for r in caplog.records if r.name.startswith("hzexp.training")]
    for child in child_runs(outcome.parent_run_id):
        path = mlflow.artifacts.download_artifacts(run_id=child.info.run_id,
                                                   artifact_path="logs/hzexp.log")
        assert " epoch 1/2: " in Path(path).read_text()


@pytest.mark.slow
def test_resumed_study_keeps_its_trials(tracking_env, smoke_pipeline):
    first = run_search(str(smoke_pipeline), str(SPACE), n_trials=1,
                       storage=storage_url(tracking_env), study_name="resume", register=False)
    study = optuna.load_study(study_name="resume", storage=storage_url(tracking_env))
    before = [(t.number, t.value, t.params) for t in study.trials]
    second = run_search(str(smoke_pipeline), str(SPACE), n_trials=2,
                        storage=storage_url(tracking_env), study_name="resume", register=False)
    study = optuna.load_study(study_name="resume", storage=storage_url(tracking_env))
    assert [(t.number, t.value, t.params) for t in study.trials][:1] == before
    assert first.n_finished == 1 and second.n_finished == 2 and len(study.trials) == 2


def test_a_trial_that_reports_a_bad_value_early_is_pruned(tracking_env, smoke_pipeline):
    storage = storage_url(tracking_env)
    study = open_study(storage, "prune", load_search_space(SPACE))
    dist = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    for value in (0.01, 0.012):  # earlier trials far better than anything 2 epochs can reach
        study.add_trial(optuna.trial.create_trial(
            params={"training.huber_delta": 1e-3}, distributions={"training.huber_delta": dist},
            value=value, intermediate_values={0: value, 1: value}))
    outcome = run_search(str(smoke_pipeline), str(SPACE), n_trials=3, storage=storage,
                         study_name="prune", register=False)
    study = optuna.load_study(study_name="prune", storage=storage)
    assert study.trials[2].state == TrialState.PRUNED
    assert list(study.trials[2].intermediate_values) == [0]
    run = child_runs(outcome.parent_run_id)[0]
    assert run.data.tags["optuna.trial_state"] == "PRUNED" and run.info.status == "KILLED"


def test_percentile_pruner_stops_a_trial_outside_the_best_quarter():
    """With the percentile pruner at 25, a trial in the middle of the completed ones at the
    same epoch is pruned (the median pruner would keep it); before warm-up it is not."""
    space = load_search_space(SPACE)
    study_config = dataclasses.replace(space.study, pruner="percentile", percentile=25.0,
                                       startup_trials=2, warmup_epochs=1)
    study = optuna.create_study(pruner=make_pruner(study_config))
    dist = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    for value in (0.010, 0.020, 0.030, 0.040):
        study.add_trial(optuna.trial.create_trial(params={"x": 0.5}, distributions=dist,
                                                  value=value,
                                                  intermediate_values={0: value, 1: value}))
    trial = study.ask()
    trial.report(0.025, step=0)
    assert not trial.should_prune()  # warm-up epoch
    trial.report(0.025, step=1)
    assert trial.should_prune()  # 25th percentile of 0.01..0.04 is 0.0175
    median = dataclasses.replace(study_config, pruner="median")
    assert not make_pruner(median).prune(study, study.trials[-1])  # median is 0.025


def test_space_entries_are_validated_by_name(tmp_path):
    bad = tmp_path / "bad.yaml"
    cases = {
        "parameters: {model.depth: {type: beta, low: 3, high: 5}}": "parameters.model.depth.type",
        "parameters: {model.depth: {type: int, low: 5, high: 3}}": "parameters.model.depth: low 5",
        "parameters: {model.kernel: {type: int, low: 1, high: 3}}":
            "parameters.model.kernel: the pipeline has no such key",
        "parameters: {preprocess.cutout: {type: categorical}}": "needs a non-empty 'choices'",
        "parameters: {model.depth: {type: int, low: 3, high: 5}}\nstudy: {percentile: 100}":
            "study.percentile: must lie in (0, 100), got 100",
        "parameters: {model.depth: {type: int, low: 3, high: 5}}\nstudy: {pruner: asha}":
            "study.pruner",
    }
    for text, message in cases.items():
        bad.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_search_space(bad)
        assert message in str(err.value) and "bad.yaml" in str(err.value)


def _run_two_workers(pipeline, storage, root, n_trials=4):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    workers = [subprocess.Popen(search_command(pipeline, storage, "--n-trials", str(n_trials),
                                               "--worker-index", str(i), "--no-register"),
                                cwd=root, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
    study = optuna.load_study(study_name="workers", storage=storage)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) >= n_trials
    assert TrialState.FAIL not in states and TrialState.RUNNING not in states


def test_two_workers_share_one_sqlite_study(tmp_path, smoke_pipeline):
    _run_two_workers(smoke_pipeline, storage_url(tmp_path), tmp_path)


@pytest.mark.skipif(not os.environ.get("HZEXP_TEST_POSTGRES_URL"),
                    reason="needs HZEXP_TEST_POSTGRES_URL (.ci/run starts PostgreSQL)")
def test_two_workers_share_one_postgresql_study(tmp_path, smoke_pipeline):
    url = os.environ["HZEXP_TEST_POSTGRES_URL"]
    try:
        optuna.delete_study(study_name="workers", storage=url)
    except KeyError:
        pass
    _run_two_workers(smoke_pipeline, url, tmp_path)


@pytest.mark.slow
def test_a_killed_workers_trial_is_retried(tmp_path, smoke_pipeline):
    storage = storage_url(tmp_path)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    victim = subprocess.Popen(search_command(smoke_pipeline, storage, "--n-trials", "1",
                                             "--heartbeat-interval", "1", "--no-register"),
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    running = []
    while time.time() < deadline and not running:
        time.sleep(0.5)
        try:
            study = optuna.load_study(study_name="workers", storage=storage)
            running = study.get_trials(states=(TrialState.RUNNING,))
        except KeyError:
            continue
    assert running, "the first worker never started a trial"
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    time.sleep(3)  # let its heartbeat go stale (grace period: 2 intervals)
    done = subprocess.run(search_command(smoke_pipeline, storage, "--n-trials", "1",
                                         "--heartbeat-interval", "1", "--no-register"),
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    study = optuna.load_study(study_name="workers", storage=storage)
    first, retry = study.trials[0], study.trials[1]
    assert first.state == TrialState.FAIL
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry.system_attrs["failed_trial"] == 0 and retry.params == first.params


def test_cutout_choices_larger_than_the_stored_images_are_refused(tracking_env, smoke_pipeline):
    space = tracking_env / "big.yaml"
    space.write_text("parameters: {preprocess.cutout: {type: categorical, choices: [20, 52]}}")
    with pytest.raises(ConfigError, match=r"choices \[52\] exceed the stored 48 px images"):
        run_search(str(smoke_pipeline), str(space), n_trials=1,
                   storage=storage_url(tracking_env), study_name="big")
