"""`hzexp` on bad data: one line naming the file or value, exit status 2, and no MLflow run
started by a training that cannot run (issue 18)."""

import re

import h5py
import mlflow
import numpy as np
import pandas as pd
import pytest

from hzexp.cli import main
from hzexp.data.store import CATALOGUE_FILE, IMAGES_FILE, IMAGES_KEY, DatasetWriter
from tests.helpers import REPO, synthetic_catalogue, synthetic_images

SMOKE = str(REPO / "pipelines" / "smoke.yaml")


def error_line(capsys, argv: list[str]) -> str:
    """The one-line error of a command that must fail with exit status 2."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"hzexp {argv[0]}: error: "), err
    return line.removeprefix(f"hzexp {argv[0]}: error: ")


def train_on(path) -> list[str]:
    return ["train", "--pipeline", SMOKE, "--set", "data.source=directory",
            "--set", f"data.path={path}"]


def no_runs() -> bool:
    return mlflow.search_runs(search_all_experiments=True).empty


def nan_pixel(path):
    with h5py.File(path / IMAGES_FILE, "r+") as h5:
        h5[IMAGES_KEY][5, 3, 3, 0] = np.nan


def no_rows(path):
    pd.read_parquet(path / CATALOGUE_FILE).iloc[:0].to_parquet(path / CATALOGUE_FILE)
    with h5py.File(path / IMAGES_FILE, "a") as h5:
        h5[IMAGES_KEY].resize(0, axis=0)


def edited_catalogue(path):
    catalogue = pd.read_parquet(path / CATALOGUE_FILE)
    catalogue.loc[4, "mag_r"] += 0.5
    catalogue.loc[5, "z_spec"] = 0.3
    catalogue.to_parquet(path / CATALOGUE_FILE)


TRAINING_FAILURES = {
    "NaN pixels": (nan_pixel, "images.h5 was rewritten .* after manifest.json was written"),
    "no rows": (no_rows, "the catalogue has no galaxies"),
    "catalogue edited behind the manifest": (
        edited_catalogue, "catalogue.parquet was changed after manifest.json was written, so "
                          "its content hash [0-9a-f]{12} no longer describes the data"),
}


@pytest.mark.parametrize("case", list(TRAINING_FAILURES))
def test_training_on_bad_data_fails_before_any_run(tracking_env, write_dataset, capsys, case):
    damage, message = TRAINING_FAILURES[case]
    path = write_dataset(n=60)
    damage(path)
    assert re.match(f"{re.escape(str(path))}: {message}", error_line(capsys, train_on(path)))
    assert no_runs()


def test_a_partly_labelled_training_set_names_its_rows(tracking_env, tmp_path, capsys):
    catalogue = synthetic_catalogue(60)
    catalogue.loc[[8, 9], "z_spec"] = [np.nan, 1.9]
    with DatasetWriter(tmp_path / "ds", 48, {"test": True}) as writer:
        writer.append(catalogue, synthetic_images(60))
    line = error_line(capsys, train_on(tmp_path / "ds"))
    assert line.endswith("training needs z_spec in (0.0, 1.5) for every galaxy; 2 of 60 rows "
                         "lack one: row 8 (object_id 8): null; "
                         "row 9 (object_id 9): 1.9 outside (0.0, 1.5)")
    assert no_runs()


def test_a_cutout_larger_than_the_stored_images_names_the_dataset(tracking_env, write_dataset,
                                                                  capsys):
    path = write_dataset(n=60, size=24)
    line = error_line(capsys, [*train_on(path), "--set", "preprocess.cutout=28"])
    assert line == f"preprocess.cutout = 28: is larger than the stored 24 px images of {path}"
    assert no_runs()


def test_verify_reports_ok_or_the_mismatch(write_dataset, capsys):
    path = write_dataset(n=60)
    assert main(["verify", str(path)]) == 0
    assert re.fullmatch(f"{re.escape(str(path))}: OK, 60 galaxies match content hash "
                        "[0-9a-f]{64}", capsys.readouterr().out.strip())
    nan_pixel(path)
    assert error_line(capsys, ["verify", str(path)]) == (
        f"{path / IMAGES_FILE}: non-finite pixels in the image of object_id 5 (1 images "
        "affected)")
    edited = write_dataset(n=60, name="edited")
    edited_catalogue(edited)
    assert re.fullmatch(".*content_hash [0-9a-f]{64} does not match the stored data "
                        r"\([0-9a-f]{64}\): catalogue.parquet changed",
                        error_line(capsys, ["verify", str(edited)]))


def test_an_unknown_model_uri_scheme_is_named(tracking_env, write_dataset, capsys):
    path = write_dataset(n=20)
    for argv in (["predict", "--data", str(path), "--out", str(tracking_env / "z.parquet")],
                 ["evaluate", "--data", str(path)]):
        line = error_line(capsys, [*argv, "--model-uri", "foo:bar"])
        assert line.startswith("model foo:bar: not a model URI MLflow can read (Could not find "
                               "a registered artifact repository for: foo:bar")
    assert not (tracking_env / "z.parquet").exists()


def test_predict_into_its_own_input_is_refused_before_any_model_loads(tracking_env,
                                                                     write_dataset, capsys):
    path = write_dataset(n=20)
    before = (path / CATALOGUE_FILE).read_bytes()
    line = error_line(capsys, ["predict", "--data", str(path), "--out",
                               str(path / CATALOGUE_FILE), "--overwrite"])
    assert line == (f"{path / CATALOGUE_FILE}: inside the input {path}; write the catalogue "
                    "elsewhere (--overwrite does not apply to the input)")
    assert (path / CATALOGUE_FILE).read_bytes() == before


def test_simulate_refuses_no_galaxies(tmp_path, capsys):
    out = tmp_path / "mock"
    assert error_line(capsys, ["simulate", "--n-galaxies", "0", "--out", str(out)]) == (
        "n_galaxies = 0: must be >= 1")
    assert not out.exists()


def test_import_official_names_a_file_that_is_not_fits(tmp_path, capsys):
    fits_file = tmp_path / "table.fits"
    fits_file.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    line = error_line(capsys, ["import-official", "--fits", str(fits_file),
                               "--out", str(tmp_path / "ds")])
    assert line.startswith(f"{fits_file}: not a readable FITS file (")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.fits"]


@pytest.mark.parametrize("setting, message", [
    ("psf_fwhm_scal=1.2", "unknown key psf_fwhm_scal (known: "),
    ("psf_fwhm_scale=big", "psf_fwhm_scale = 'big': expected float"),
])
def test_a_bad_mock_parameter_is_named(capsys, tmp_path, setting, message):
    line = error_line(capsys, ["simulate", "--n-galaxies", "20", "--out", str(tmp_path / "m"),
                               "--set", setting])
    assert line.startswith(message)
    assert not (tmp_path / "m").exists()
