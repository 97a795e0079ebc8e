"""Run set-up: which experiment a run lands in."""

from __future__ import annotations

import logging

import mlflow
import pytest

from hzexp import tracking
from hzexp.data.store import Dataset


def test_a_project_run_in_mlflows_default_experiment_is_pointed_at_hybrid_z(
        tracking_env, monkeypatch, caplog):
    """`mlflow run` without `--experiment-name` files its project run in `Default`; hzexp
    keeps the nesting (it logs into that run) and says how to file it in `hybrid-z`."""
    project_run = mlflow.MlflowClient().create_run("0")
    monkeypatch.setenv("MLFLOW_RUN_ID", project_run.info.run_id)
    with caplog.at_level(logging.WARNING, logger="hzexp.tracking.runs"):
        tracking.configure_tracking()
    assert "--experiment-name hybrid-z" in caplog.text
    assert mlflow.get_experiment(mlflow.tracking.fluent._get_experiment_id()).name == "Default"


def test_runs_started_directly_land_in_hybrid_z_unless_the_environment_says_otherwise(
        tracking_env, monkeypatch):
    tracking.configure_tracking()
    assert mlflow.get_experiment(mlflow.tracking.fluent._get_experiment_id()).name == "hybrid-z"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "elsewhere")
    tracking.configure_tracking()
    assert mlflow.get_experiment(mlflow.tracking.fluent._get_experiment_id()).name == "elsewhere"


def test_a_run_that_loses_the_race_to_register_its_dataset_links_to_the_winners(
        tracking_env, write_dataset, monkeypatch):
    """Two search workers starting together log the same new dataset: the tracking store
    checks for it, then inserts it, so the slower one hits the datasets table's unique key.
    Reproduced for real here: the winner commits between the loser's check and insert."""
    from sqlalchemy.orm import Session

    dataset = Dataset.open(write_dataset(40))
    tracking.configure_tracking()
    winner = mlflow.MlflowClient().create_run(mlflow.get_experiment_by_name("hybrid-z")
                                              .experiment_id)
    real_add_all = Session.add_all
    raced = []

    def winner_commits_first(session, objects):
        objects = list(objects)
        if not raced:
            raced.append(True)
            with mlflow.start_run(run_id=winner.info.run_id, nested=True):
                tracking.log_dataset_input(dataset, "training")
        return real_add_all(session, objects)

    monkeypatch.setattr(Session, "add_all", winner_commits_first)
    with mlflow.start_run() as loser:
        tracking.log_dataset_input(dataset, "training", ("training", "validation"))
    assert raced
    client = mlflow.MlflowClient()
    inputs = [client.get_run(run.info.run_id).inputs.dataset_inputs
              for run in (winner, loser)]
    assert [len(each) for each in inputs] == [1, 1]
    assert inputs[0][0].dataset.digest == inputs[1][0].dataset.digest
    loser_tags = {tag.key: tag.value for tag in inputs[1][0].tags}
    assert loser_tags["hzexp.splits"] == "training,validation"


def test_any_other_tracking_error_while_logging_a_dataset_is_raised(tracking_env,
                                                                    write_dataset,
                                                                    monkeypatch):
    dataset = Dataset.open(write_dataset(40))
    tracking.configure_tracking()

    def refuse(*args, **kwargs):
        raise mlflow.exceptions.MlflowException("UNIQUE constraint failed: inputs.input_uuid")

    monkeypatch.setattr(mlflow, "log_input", refuse)
    with mlflow.start_run(), pytest.raises(mlflow.exceptions.MlflowException, match="inputs"):
        tracking.log_dataset_input(dataset, "training")
