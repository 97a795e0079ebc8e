"""The registered champion served over REST gives the same z_phot (and a PDF model the same
summaries) as `predict_catalogue`."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hzexp.data.store import MAG_COLUMNS
from hzexp.inference import predict_catalogue, read_predictions
from hzexp.inference.output import ID_COLUMNS
from tests.helpers.inference import registered_champion

BIN = Path(sys.executable).parent  # mlflow, and the uvicorn it execs by name from PATH
MLFLOW = BIN / "mlflow"
STARTUP_SECONDS = 180  # loading TensorFlow on a busy 2-core machine


@pytest.fixture(scope="module", params=["point", "pdf"])
def champion(request, smoke_pipeline, tmp_path_factory):
    """The smoke champion, with the point output and with the PDF output."""
    overrides = ["model.output=pdf", "model.pdf_bins=100"] if request.param == "pdf" else []
    yield from registered_champion(smoke_pipeline, tmp_path_factory, overrides)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_ping(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert server.poll() is None, f"server exited:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    raise AssertionError(f"no /ping within {STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}")


def invoke(url: str, body: str) -> pd.DataFrame:
    """The server's answer as a frame: `z_phot`, or a PDF model's summary columns (MLflow
    answers a frame as one record per galaxy)."""
    request = urllib.request.Request(f"{url}/invocations", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        predictions = json.loads(response.read())["predictions"]
    if predictions and isinstance(predictions[0], dict):
        return pd.DataFrame.from_records(predictions)
    return pd.DataFrame({"z_phot": predictions})


def test_rest_endpoint_matches_predict_catalogue(champion, tmp_path):
    dataset = champion["dataset"]
    out = tmp_path / "photoz.parquet"
    predict_catalogue(dataset.path, out, progress=False)
    catalogue = read_predictions(out)[0]
    expected = catalogue.drop(columns=list(ID_COLUMNS))  # z_phot (and a PDF model's rest)
    mags = dataset.catalogue[list(MAG_COLUMNS)].to_numpy(dtype=np.float32)
    rows = np.concatenate([np.arange(2), np.flatnonzero(np.isnan(mags).any(axis=1))[:2]])
    images = dataset.read_images(rows).tolist()
    # Python's json writes NaN as the bare token NaN, which MLflow's server parses; strict
    # JSON clients send null instead, which becomes NaN in the float32 tensor too.
    with_nan = json.dumps({"inputs": {"image": images, "mags": mags[rows].tolist()}})
    with_null = json.dumps({"inputs": {"image": images, "mags": [
        [None if np.isnan(m) else float(m) for m in row] for row in mags[rows]]}})
    assert "NaN" in with_nan and "null" in with_null

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    with open(log, "w") as log_file:
        server = subprocess.Popen(
            [str(MLFLOW), "models", "serve", "-m", "models:/hybrid-z@champion",
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
            stdout=log_file, stderr=subprocess.STDOUT,
            env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
            start_new_session=True)
    try:
        wait_for_ping(url, server, log)
        for body in (with_nan, with_null):
            answer = invoke(url, body)
            assert list(answer.columns) == list(expected.columns)
            np.testing.assert_allclose(answer.to_numpy(dtype=np.float32),
                                       expected.iloc[rows].to_numpy(dtype=np.float32), rtol=0,
                                       atol=1e-6)
    finally:
        stop(server)


def stop(server: subprocess.Popen) -> None:
    """Terminate the server's process group (mlflow -> uvicorn -> worker), even when the
    group leader has already exited."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
