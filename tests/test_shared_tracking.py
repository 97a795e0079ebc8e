"""The multi-machine setup, on this machine: a real `mlflow server` (backend in PostgreSQL,
artifacts served by the server), two `hzexp search` workers on one PostgreSQL Optuna study
logging to it over HTTP, the champion registered through it, and `hzexp predict --workers 2`
loading `models:/hybrid-z@champion` from it."""

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import optuna
import psycopg
import pytest

from hzexp.config import load_pipeline
from hzexp.data.store import Dataset
from hzexp.inference import read_predictions
from tests.test_search import SPACE

POSTGRES = os.environ.get("HZEXP_TEST_POSTGRES_URL")
MLFLOW = Path(sys.executable).parent / "mlflow"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not POSTGRES, reason="needs HZEXP_TEST_POSTGRES_URL "
                                                      "(.ci/run starts PostgreSQL)")]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def tracking_server(tmp_path):
    """`mlflow server` on 127.0.0.1 over an emptied PostgreSQL database, serving artifacts
    from a directory of its own; yields its URL."""
    backend = re.sub(r"/[^/]+$", "/hzexp_mlflow_test", POSTGRES)
    with psycopg.connect(backend.replace("postgresql+psycopg", "postgresql")) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")
    port = free_port()
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(
        [str(MLFLOW), "server", "--backend-store-uri", backend, "--artifacts-destination",
         str(tmp_path / "served-artifacts"), "--serve-artifacts", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PATH": f"{MLFLOW.parent}{os.pathsep}{os.environ['PATH']}"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, "the tracking server did not start"
                time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
        log.close()


def test_two_search_workers_and_a_cluster_predict_share_one_tracking_server(
        tracking_server, smoke_pipeline, tmp_path):
    try:
        optuna.delete_study(study_name="shared", storage=POSTGRES)
    except KeyError:
        pass
    work = tmp_path / "work"  # no local store: everything goes through the server
    work.mkdir()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_server}
    workers = [subprocess.Popen(
        [sys.executable, "-m", "hzexp", "search", "--pipeline", str(smoke_pipeline),
         "--space", str(SPACE), "--storage", POSTGRES, "--study", "shared", "--n-trials", "2",
         "--worker-index", str(i), "--no-progress", *(["--no-register"] if i else [])],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)]
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
    assert "registered hybrid-z version 1 as @champion" in outputs[0]

    client = mlflow.MlflowClient(tracking_server)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    trials = [r for r in runs if r.data.tags.get("optuna.trial_state") == "COMPLETE"]
    assert len(trials) + sum(r.data.tags.get("optuna.trial_state") == "PRUNED"
                             for r in runs) == 2
    assert len({r.data.tags["mlflow.parentRunId"] for r in trials}) >= 1
    version = client.get_model_version_by_alias("hybrid-z", "champion")
    assert version.version == "1"
    # the artifacts live with the server, not in the workers' directory
    assert not (work / "mlruns").exists() and any((tmp_path / "served-artifacts").iterdir())

    dataset = Dataset.open(load_pipeline(smoke_pipeline).data.path)
    out = work / "photoz.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "hzexp", "predict", "--data", str(dataset.path), "--out",
         str(out), "--workers", "2", "--no-progress"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    frame, metadata = read_predictions(out)
    assert len(frame) == len(dataset) and frame["object_id"].is_unique
    assert (metadata["model_name"], metadata["model_version"]) == ("hybrid-z", "1")
    assert metadata["model_run_id"] == version.run_id
