"""Where a prediction may write: not into its input, not over another file, not twice at once."""

import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

from hzexp._io import file_sha256
from hzexp.data.store import CATALOGUE_FILE, IMAGES_FILE
from hzexp.inference import PredictionError, predict_catalogue, read_predictions
from hzexp.inference.parts import PartStore
from hzexp.inference.target import lock_path
from tests.helpers.inference import CHUNK, leftovers


@pytest.mark.parametrize("name", [CATALOGUE_FILE, IMAGES_FILE, "photoz.parquet"])
def test_a_path_inside_the_input_dataset_is_refused_even_with_overwrite(champion, tmp_path,
                                                                       write_dataset, name):
    data = write_dataset(n=30)
    before = {f: file_sha256(data / f) for f in (CATALOGUE_FILE, IMAGES_FILE)}
    with pytest.raises(PredictionError, match=r"inside the input .*elsewhere") as err:
        predict_catalogue(data, data / name, progress=False, overwrite=True)
    assert str(data / name) in str(err.value) and "\n" not in str(err.value)
    assert {f: file_sha256(data / f) for f in (CATALOGUE_FILE, IMAGES_FILE)} == before
    assert not (data / "photoz.parquet").exists()


def test_an_existing_file_of_another_kind_needs_overwrite(champion, tmp_path):
    dataset = champion["dataset"]
    out = tmp_path / "photoz.parquet"
    unrelated = pd.DataFrame({"a": range(2000)})
    unrelated.to_parquet(out)
    with pytest.raises(PredictionError, match=r"exists and is not an hzexp catalogue.*--overwrite"):
        predict_catalogue(dataset.path, out, chunk_size=CHUNK, progress=False)
    pd.testing.assert_frame_equal(pd.read_parquet(out), unrelated)
    assert leftovers(tmp_path) == ["photoz.parquet"]  # no parts, no lock left behind
    predict_catalogue(dataset.path, out, chunk_size=CHUNK, progress=False, overwrite=True)
    assert len(read_predictions(out)[0]) == len(dataset)


def test_a_stats_file_beside_a_new_catalogue_needs_overwrite(champion, tmp_path):
    out = tmp_path / "photoz.parquet"
    (tmp_path / "photoz_stats.csv").write_text("mine\n")
    with pytest.raises(PredictionError, match=r"photoz_stats.csv: exists"):
        predict_catalogue(champion["dataset"].path, out, evaluate=True, progress=False)
    assert (tmp_path / "photoz_stats.csv").read_text() == "mine\n"


def test_the_commands_own_output_is_replaced_but_not_one_of_other_data(champion, tmp_path,
                                                                       write_dataset):
    dataset = champion["dataset"]
    out = tmp_path / "photoz.fits"
    predict_catalogue(dataset.path, out, chunk_size=CHUNK, progress=False)
    first = out.stat().st_mtime_ns
    report = predict_catalogue(dataset.path, out, chunk_size=CHUNK, progress=False)
    assert report.n_galaxies == len(dataset) and out.stat().st_mtime_ns != first
    with pytest.raises(PredictionError, match=r"predictions for another dataset .*--overwrite"):
        predict_catalogue(write_dataset(n=30), out, progress=False)
    assert len(read_predictions(out)[0]) == len(dataset)
    assert leftovers(tmp_path, "ds") == ["photoz.fits"]


def test_a_second_prediction_on_the_same_output_refuses_at_once(champion, tmp_path,
                                                                monkeypatch):
    dataset = champion["dataset"]
    out = tmp_path / "photoz.parquet"
    write = PartStore.write
    refusals = []

    def write_while_another_starts(self, start, frame):
        if start == 0:  # the first run holds the lock: a second run on `out` starts now
            with pytest.raises(PredictionError) as err:
                predict_catalogue(dataset.path, out, chunk_size=50, progress=False,
                                  restart=True)
            refusals.append(str(err.value))
        write(self, start, frame)

    monkeypatch.setattr(PartStore, "write", write_while_another_starts)
    predict_catalogue(dataset.path, out, chunk_size=CHUNK, progress=False)
    [message] = refusals
    assert message.startswith(f"{out}: another prediction is writing it")
    assert f"pid {os.getpid()} on " in message and "\n" not in message
    frame, _ = read_predictions(out)
    assert frame["object_id"].tolist() == dataset.catalogue["object_id"].tolist()
    assert leftovers(tmp_path) == ["photoz.parquet"]


def test_a_lock_left_by_a_killed_run_does_not_block_its_resume(champion, tmp_path):
    out = tmp_path / "photoz.parquet"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from hzexp._io import exclusive_lock\n"
         f"with exclusive_lock({str(lock_path(out))!r}):\n"
         "    print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(PredictionError, match=rf"pid {holder.pid} on "):
            predict_catalogue(champion["dataset"].path, out, progress=False)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock_path(out).exists()  # killed: its lock file stays, its lock does not
    report = predict_catalogue(champion["dataset"].path, out, progress=False)
    assert report.n_galaxies == len(champion["dataset"])
    assert leftovers(tmp_path) == ["photoz.parquet"]
