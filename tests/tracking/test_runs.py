"""Run set-up: which experiment a run lands in."""

from __future__ import annotations

import logging

import mlflow

from hzexp import tracking


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
