"""A logged Hybrid-z model is self-contained: it loads and predicts without this checkout."""

from __future__ import annotations

import json
import subprocess
import sys

import mlflow
import numpy as np
import pytest

from hzexp import tracking
from hzexp.data.pipeline import magnitudes
from hzexp.evaluation.baselines import fit_mlp_baseline
from tests.helpers.inference import registered_champion

#: Run in a fresh interpreter: drop the editable install's finder (and any checkout on the
#: path) so that the project's hzexp is not importable, prove it, then load the model.
WITHOUT_HZEXP = """
import json, sys
sys.meta_path = [f for f in sys.meta_path
                 if "__editable__" not in (getattr(f, "__module__", None) or "")]
sys.path = [p for p in sys.path if p not in ("", ".", sys.argv[2])]
try:
    import hzexp
except ModuleNotFoundError:
    pass
else:
    raise SystemExit(f"the project's hzexp is importable from {hzexp.__file__}")
import mlflow, numpy as np
model = mlflow.pyfunc.load_model(sys.argv[1])
mags = np.load("mags.npy")
z = model.predict({"image": np.load("images.npy"), "mags": mags} if sys.argv[3] == "hybrid"
                  else mags)
import hzexp
print(json.dumps({"hzexp": hzexp.__file__, "z": np.asarray(z, dtype=float).tolist()}))
"""


@pytest.fixture(scope="module")
def champion(smoke_pipeline, tmp_path_factory):
    yield from registered_champion(smoke_pipeline, tmp_path_factory)


@pytest.mark.slow
def test_a_logged_model_predicts_the_same_where_the_project_is_not_importable(champion,
                                                                            tmp_path):
    dataset = champion["dataset"]
    rows = np.arange(24)
    images, mags = dataset.read_images(rows), magnitudes(dataset, rows)
    expected = tracking.load_pyfunc("models:/hybrid-z@champion").predict(
        {"image": images, "mags": mags})
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "mags.npy", mags)
    np.testing.assert_array_equal(
        predicted_without_the_project("models:/hybrid-z@champion", "hybrid", tmp_path),
        np.asarray(expected, dtype=np.float32))


def predicted_without_the_project(model_uri: str, kind: str, tmp_path) -> np.ndarray:
    """What the model at `model_uri` predicts for images.npy/mags.npy in `tmp_path`, loaded
    in a fresh process where only the model's own copy of hzexp is importable."""
    model_dir = mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path / "model"))
    repo = str(tracking.models.PACKAGE_DIR.parent)
    done = subprocess.run([sys.executable, "-c", WITHOUT_HZEXP, model_dir, repo, kind],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                               "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["hzexp"].startswith(model_dir)  # the model's own copy of the code
    return np.asarray(result["z"], dtype=np.float32)


@pytest.mark.slow
def test_a_logged_baseline_predicts_the_same_where_the_project_is_not_importable(champion,
                                                                               tmp_path):
    dataset = champion["dataset"]
    rows = np.arange(len(dataset))
    mags, z = magnitudes(dataset, rows), dataset.catalogue["z_spec"].to_numpy()
    baseline = fit_mlp_baseline(mags[:80], z[:80], mags[80:], z[80:], max_epochs=5)
    with mlflow.start_run():
        uri = tracking.log_baseline_model(baseline)
    np.save(tmp_path / "mags.npy", mags[:24])
    np.testing.assert_allclose(predicted_without_the_project(uri, "baseline", tmp_path),
                               baseline.predict(mags[:24]), rtol=1e-6)


def test_a_logged_models_requirements_name_only_what_an_index_has(champion):
    model_dir = mlflow.artifacts.download_artifacts("models:/hybrid-z@champion")
    with open(f"{model_dir}/requirements.txt") as handle:
        lines = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    names = {line.split("==")[0].split("[")[0].lower() for line in lines}
    assert "hzexp" not in names
    assert {"tensorflow", "keras", "mlflow", "numpy", "astropy", "h5py"} <= names
    assert all("==" in line for line in lines), lines  # pinned to the training environment
    assert lines == tracking.model_requirements()
