"""Optuna search: nested runs, registry aliases, resume, pruning, workers, heartbeats."""

import dataclasses
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from hzexp import tracking
from hzexp.cli import main
from hzexp.config import ConfigError, load_pipeline, load_search_space
from hzexp.data.pipeline import magnitudes
from hzexp.data.store import Dataset
from hzexp.search import WORKER_ATTR, end_dead_workers, make_pruner, open_study, run_search
from hzexp.workers import Worker

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
    the trial runs must land in that experiment too, or the UI cannot show them nested.
    MLflow has logged every -P value on it first: hzexp's own spelling of one (here the
    pipeline path) must not crash the run with "Changing param values is not allowed"."""
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("project-search")
    project_run = client.create_run(experiment)
    client.log_param(project_run.info.run_id, "pipeline", f"./{smoke_pipeline}")
    monkeypatch.setenv("MLFLOW_RUN_ID", project_run.info.run_id)
    outcome = run_search(str(smoke_pipeline), str(SPACE), n_trials=1,
                         storage=storage_url(tracking_env), study_name="project", register=False)
    assert outcome.parent_run_id == project_run.info.run_id
    params = mlflow.get_run(project_run.info.run_id).data.params
    assert params["pipeline"] == f"./{smoke_pipeline}" and params["study"] == "project"
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
    # Exactly n_trials: a worker starts a trial only while finished + running ones are fewer
    # (counting finished ones only, each worker started one more as the last ones ran).
    assert len(study.trials) == n_trials
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)


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


def _runs(tracking_uri: str):
    client = mlflow.MlflowClient(tracking_uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.mark.slow
def test_a_killed_workers_trial_is_retried_and_nothing_it_left_stays_running(tmp_path,
                                                                            smoke_pipeline):
    """kill -9 mid-trial, rerun at once (well inside the 2 x 60 s heartbeat grace): the rerun
    sees the worker's process is gone, fails and retries its trial, and ends its MLflow runs
    KILLED. (Before, the trial stayed RUNNING, never retried, and so did both runs.)"""
    storage = storage_url(tmp_path)
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    victim = subprocess.Popen(search_command(smoke_pipeline, storage, "--n-trials", "1",
                                             "--no-register"),
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    running = []
    while time.time() < deadline and not running:
        time.sleep(0.5)
        try:
            running = [r for r in _runs(tracking_uri)
                       if r.info.run_name == "trial-000" and r.info.status == "RUNNING"]
        except mlflow.exceptions.MlflowException:
            continue
    assert running, "the first worker never started a trial"
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    done = subprocess.run(search_command(smoke_pipeline, storage, "--n-trials", "1",
                                         "--no-register"),
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    study = optuna.load_study(study_name="workers", storage=storage)
    first, retry = study.trials[0], study.trials[1]
    assert first.state == TrialState.FAIL and len(study.trials) == 2
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry.system_attrs["failed_trial"] == 0 and retry.params == first.params
    runs = {r.info.run_id: r for r in _runs(tracking_uri)}
    assert not [r.info.run_name for r in runs.values() if r.info.status == "RUNNING"]
    killed_trial = runs[running[0].info.run_id]
    assert killed_trial.info.status == "KILLED"
    assert killed_trial.data.tags["optuna.trial_state"] == "FAIL"
    assert runs[killed_trial.data.tags["mlflow.parentRunId"]].info.status == "KILLED"


def test_a_gone_workers_trial_is_retried_and_its_runs_end_but_not_a_live_or_remote_one(
        tracking_env):
    """What a rerun does at start: a trial whose worker process on this host is gone becomes
    FAIL and is re-queued, its parent and trial runs KILLED; a trial of another host waits
    for its heartbeat, and a live worker's run is left alone."""
    client = mlflow.MlflowClient()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = Worker(host=socket.gethostname(), pid=gone.pid, started=0.0).record()
    remote = {**dead, "host": "another-host"}
    experiment = client.create_experiment("search")
    parents = {}
    for name, worker in {"dead": dead, "live": Worker.current().record()}.items():
        parents[name] = client.create_run(experiment, tags={
            tracking.STUDY_TAG: "reap", tracking.WORKER_TAG: json.dumps(worker)}).info.run_id
    trial_run = client.create_run(experiment, tags={"mlflow.parentRunId": parents["dead"]})
    study = open_study(storage_url(tracking_env), "reap", load_search_space(SPACE))
    for worker in (dead, remote):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        trial.set_user_attr(WORKER_ATTR, {**worker, "trial": trial.number,
                                          "parent_run_id": parents["dead"]})
    end_dead_workers(study, "reap")
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert study.trials[2].system_attrs["failed_trial"] == 0
    assert study.trials[2].params == study.trials[0].params
    status = {run_id: client.get_run(run_id).info.status for run_id in parents.values()}
    assert status == {parents["dead"]: "KILLED", parents["live"]: "RUNNING"}
    ended = client.get_run(trial_run.info.run_id)
    assert ended.info.status == "KILLED" and ended.data.tags["optuna.trial_state"] == "FAIL"


def test_cutout_choices_larger_than_the_stored_images_are_refused(tracking_env, smoke_pipeline):
    space = tracking_env / "big.yaml"
    space.write_text("parameters: {preprocess.cutout: {type: categorical, choices: [20, 52]}}")
    with pytest.raises(ConfigError, match=r"big.yaml: parameters.preprocess.cutout: value 52 "
                                          r"gives preprocess.cutout = 52: is larger than the "
                                          r"stored 48 px images"):
        run_search(str(smoke_pipeline), str(space), n_trials=1,
                   storage=storage_url(tracking_env), study_name="big")


@pytest.mark.parametrize("entry, message", [
    ("model.depth: {type: int, low: 6, high: 7}",
     "parameters.model.depth: value 6 gives model.depth = 6: must be 3, 4 or 5"),
    ("training.batch_size: {type: categorical, choices: [32, -4]}",
     "parameters.training.batch_size: value -4 gives training.batch_size = -4: must be >= 1"),
    ("model.depth: {type: float, low: 3, high: 5}",
     "parameters.model.depth: value 3.0 gives model.depth = 3.0: expected int"),
])
def test_a_space_outside_the_models_valid_values_is_refused_before_the_study_opens(
        tracking_env, smoke_pipeline, entry, message):
    """Such a space used to be accepted; its first trial then crashed."""
    space = tracking_env / "bad.yaml"
    space.write_text(f"parameters: {{{entry}}}")
    with pytest.raises(ConfigError, match=f"bad.yaml: {re.escape(message)}"):
        run_search(str(smoke_pipeline), str(space), n_trials=1,
                   storage=storage_url(tracking_env), study_name="bad")
    assert optuna.get_all_study_names(storage_url(tracking_env)) == []


def test_a_crps_objective_ranks_and_prunes_by_the_pdfs_and_registers_by_smad(tracking_env,
                                                                            smoke_pipeline):
    pipeline = tracking_env / "smoke_pdf.yaml"
    data = yaml.safe_load(smoke_pipeline.read_text())
    data["model"].update(output="pdf", pdf_bins=100)
    pipeline.write_text(yaml.safe_dump(data))
    space = tracking_env / "crps.yaml"
    space.write_text(SPACE.read_text().replace("study: {", "study: {objective: val_crps, "))
    outcome = run_search(str(pipeline), str(space), n_trials=2,
                         storage=storage_url(tracking_env), study_name="crps")
    assert "best validation CRPS" in outcome.summary()
    study = optuna.load_study(study_name="crps", storage=storage_url(tracking_env))
    for trial in study.trials:
        run = mlflow.get_run(trial.user_attrs["mlflow_run_id"])
        assert trial.value == run.data.metrics["val_crps"]  # the calibrated PDFs' CRPS
        assert trial.user_attrs["val_smad_dz"] == run.data.metrics["val_smad_dz"]
        # the pruner saw the per-epoch CRPS of the PDFs
        history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_pdf_crps")
        assert [m.value for m in history] == pytest.approx(
            [trial.intermediate_values[m.step] for m in history])
    assert mlflow.get_run(outcome.parent_run_id).data.metrics["best_val_crps"] == (
        pytest.approx(study.best_value))
    version = mlflow.MlflowClient().get_model_version_by_alias("hybrid-z", "champion")
    assert float(version.tags["val_smad_dz"]) == pytest.approx(
        study.best_trial.user_attrs["val_smad_dz"], rel=1e-5)


def test_a_crps_objective_for_a_point_model_is_refused(tracking_env, smoke_pipeline):
    space = tracking_env / "crps.yaml"
    space.write_text(SPACE.read_text().replace("study: {", "study: {objective: val_crps, "))
    with pytest.raises(ConfigError, match=r"crps.yaml: study.objective = 'val_crps': needs "
                                          r"PDFs, but the pipeline's model.output is 'point'"):
        run_search(str(smoke_pipeline), str(space), n_trials=1,
                   storage=storage_url(tracking_env), study_name="crps")


@pytest.mark.parametrize("option, message", [
    (["--n-trials", "0"], "--n-trials 0: must be at least 1"),
    (["--heartbeat-interval", "0"], "--heartbeat-interval 0: must be at least 1 second"),
    (["--storage", "notaurl"], "--storage notaurl: not a database URL"),
    (["--storage", "postgresql+psycopg://hzexp:secret@127.0.0.1:1/nodb"],
     "--storage postgresql+psycopg://hzexp:***@127.0.0.1:1/nodb: cannot open it: "
     "connection failed"),
    (["--storage", "postgres://hzexp:secret@127.0.0.1/nodb"],
     "--storage postgres://hzexp:***@127.0.0.1/nodb: unknown database kind 'postgres'"),
    (["--storage", "sqlite:////no/such/dir/optuna.db"],
     "--storage sqlite:////no/such/dir/optuna.db: cannot open it: unable to open database"),
])
def test_bad_search_options_are_one_line_errors_without_the_password(tracking_env,
                                                                     smoke_pipeline, capsys,
                                                                     option, message):
    """These were tracebacks (KeyError 'duration', Optuna's ValueError, SQLAlchemy's errors,
    which print the URL); the password of a storage URL is never shown."""
    args = ["search", "--pipeline", str(smoke_pipeline), "--space", str(SPACE),
            "--storage", storage_url(tracking_env), *option]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hzexp search: error: {message}") and err.count("\n") == 1
    assert "secret" not in err
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_under_mlflow_run_a_password_in_the_storage_url_is_refused(tracking_env,
                                                                  smoke_pipeline):
    """`mlflow run -P storage=...` logs the URL as the project run's param before hzexp
    starts; hzexp then logged the redacted URL under the same key and MLflow refused
    ("Changing param values is not allowed"). Now the password must come from PGPASSWORD or
    ~/.pgpass, and hzexp says so before doing anything."""
    url = "postgresql+psycopg://hzexp:secret@127.0.0.1:1/nodb"
    client = mlflow.MlflowClient()
    project_run = client.create_run(client.create_experiment("project"))
    client.log_param(project_run.info.run_id, "storage", url)
    os.environ["MLFLOW_RUN_ID"] = project_run.info.run_id
    try:
        with pytest.raises(ConfigError) as err:
            run_search(str(smoke_pipeline), str(SPACE), n_trials=1, storage=url,
                       study_name="project")
    finally:
        del os.environ["MLFLOW_RUN_ID"]
    assert "secret" not in str(err.value) and "PGPASSWORD or ~/.pgpass" in str(err.value)
    assert project_run.info.run_id in str(err.value)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("HZEXP_TEST_POSTGRES_URL"),
                    reason="needs HZEXP_TEST_POSTGRES_URL (.ci/run starts PostgreSQL)")
def test_a_postgresql_password_from_pgpassword_or_the_url_never_reaches_mlflow(
        tracking_env, smoke_pipeline, monkeypatch):
    """psycopg (libpq) takes the password from PGPASSWORD for a URL without one; a URL's own
    password is redacted everywhere hzexp writes: params, tags, artifacts."""
    from sqlalchemy import make_url

    url = make_url(os.environ["HZEXP_TEST_POSTGRES_URL"])
    monkeypatch.setenv("PGPASSWORD", url.password)
    passwordless = url.set(password=None).render_as_string(hide_password=False)
    run_search(str(smoke_pipeline), str(SPACE), n_trials=1, storage=passwordless,
               study_name="pgpass", register=False)
    monkeypatch.delenv("PGPASSWORD")
    inline = url.render_as_string(hide_password=False)
    outcome = run_search(str(smoke_pipeline), str(SPACE), n_trials=1, storage=inline,
                         study_name="pgpass", register=False)
    assert outcome.n_finished == 1
    secret = f":{url.password}@"  # the user name or database may spell the password too
    client = mlflow.MlflowClient()
    for run in mlflow.search_runs(search_all_experiments=True, output_format="list"):
        recorded = {**run.data.params, **run.data.tags}
        assert not [k for k, v in recorded.items() if secret in v], run.info.run_name
    assert mlflow.get_run(outcome.parent_run_id).data.params["storage"] == str(url)
    tables = Path(client.download_artifacts(outcome.parent_run_id, "", str(tracking_env / "a")))
    for path in tables.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
