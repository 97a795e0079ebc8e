"""Prediction on a Dask cluster of 2 worker processes: the in-process answer, a killed
worker replaced, a resume after the driver is interrupted, and the dask DataFrame API."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
from dask.distributed import Client, LocalCluster

from hzexp.inference import PredictionError, predict_catalogue, read_predictions
from hzexp.inference.cluster import predict_dask
from hzexp.inference.parts import PartStore
from tests.helpers.inference import leftovers

CHUNK = 16  # 15 tasks for the 240-galaxy smoke mock


@pytest.fixture(scope="module")
def reference(champion, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "photoz.parquet"
    predict_catalogue(champion["dataset"].path, out, chunk_size=CHUNK, progress=False)
    return read_predictions(out)


@pytest.fixture(scope="module")
def client(champion):
    with (LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                       dashboard_address=None) as cluster,
          Client(cluster) as client):
        yield client


@pytest.mark.slow
def test_hzexp_predict_on_a_local_cluster_predicts_what_the_process_predicts(champion,
                                                                           reference,
                                                                           tmp_path):
    """`hzexp predict --workers 2` as a user runs it. Only the workers load the model, so the
    driver never starts TensorFlow (made unimportable there: the workers fork from a server
    of their own), and the workers' start-up chatter (TensorFlow's absl lines, MLflow's
    notices, Dask's INFO logs) is held back as the command's own is: only hzexp's lines."""
    out = tmp_path / "photoz.parquet"
    driver = ("import sys; sys.modules['tensorflow'] = None\n"
              "from hzexp.cli import main\n"
              f"raise SystemExit(main(['predict', '--data', {str(champion['dataset'].path)!r}, "
              f"'--out', {str(out)!r}, '--chunk-size', '{CHUNK}', '--workers', '2', "
              "'--no-progress']))")
    env = {k: v for k, v in os.environ.items()
           if k not in ("HZEXP_VERBOSE", "TF_CPP_MIN_LOG_LEVEL", "DASK_LOGGING__DISTRIBUTED")}
    done = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True,
                          env=env, timeout=300)
    lines = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 0, lines
    assert len(lines) == 2 and lines[0].startswith(f"wrote z_phot of {len(reference[0])} "), lines
    frame, metadata = read_predictions(out)
    pd.testing.assert_frame_equal(frame, reference[0])
    assert metadata == reference[1]
    assert leftovers(tmp_path) == ["photoz.parquet"]


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_replaced_and_the_output_is_identical(champion, reference,
                                                                       client, tmp_path):
    out = tmp_path / "photoz.parquet"
    parts = PartStore(out)
    pids = set(client.run(os.getpid).values())
    killed = {}

    def kill_one_worker_after_the_first_part():
        while not parts.path.is_dir() or not parts.parts():
            time.sleep(0.005)
        killed["parts"] = len(parts.parts())
        os.kill(min(pids), signal.SIGKILL)

    killer = threading.Thread(target=kill_one_worker_after_the_first_part, daemon=True)
    killer.start()
    predict_catalogue(champion["dataset"].path, out, chunk_size=CHUNK,
                      scheduler=client.scheduler.address, progress=False)
    killer.join(timeout=5)
    assert killed["parts"] < 15  # the worker died while chunks were still to predict
    pd.testing.assert_frame_equal(read_predictions(out)[0], reference[0])
    client.wait_for_workers(2, timeout=60)
    assert min(pids) not in set(client.run(os.getpid).values())  # replaced by a new process


@pytest.mark.slow
def test_an_interrupted_driver_resumes_from_the_chunks_its_workers_finished(champion,
                                                                            reference,
                                                                            tmp_path):
    out = tmp_path / "photoz.parquet"
    parts = PartStore(out)
    # SIGINT as at a terminal even where this test runs as a background job, which a shell
    # starts with SIGINT ignored (and the driver would inherit that, and never stop)
    driver = subprocess.Popen(
        [sys.executable, "-m", "hzexp", "predict", "--data", str(champion["dataset"].path),
         "--out", str(out), "--chunk-size", str(CHUNK), "--workers", "2", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while (not parts.path.is_dir() or len(parts.parts()) < 3) and driver.poll() is None:
        assert time.monotonic() < deadline, "no part written within 240 s"
        time.sleep(0.01)
    driver.send_signal(signal.SIGINT)
    driver.communicate(timeout=120)
    assert driver.returncode != 0 and not out.exists()
    finished = sum(pd.read_parquet(p).shape[0] for p in parts.parts())
    assert 3 * CHUNK <= finished < len(reference[0])
    report = predict_catalogue(champion["dataset"].path, out, chunk_size=CHUNK, workers=2,
                               progress=False)
    assert report.n_resumed == finished
    pd.testing.assert_frame_equal(read_predictions(out)[0], reference[0])


@pytest.mark.slow
def test_predict_dask_gives_the_catalogue_as_a_dask_dataframe(champion, reference, client):
    frame = predict_dask(client, champion["dataset"].path, chunk_size=64)
    assert frame.npartitions == 4
    computed = frame.compute().reset_index(drop=True)
    expected = reference[0].loc[:, ["object_id", "ra", "dec", "z_phot"]]
    pd.testing.assert_frame_equal(computed, expected)
    assert np.all(computed["object_id"].to_numpy() == champion["dataset"].catalogue["object_id"])


def test_workers_and_a_scheduler_together_are_refused(champion, tmp_path):
    with pytest.raises(PredictionError, match=r"--workers 2: .*not given with --scheduler"):
        predict_catalogue(champion["dataset"].path, tmp_path / "z.parquet", workers=2,
                          scheduler="tcp://127.0.0.1:1", progress=False)
