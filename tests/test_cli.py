"""The `hzexp` command's own behaviour: what a user sees on the terminal."""

import os
import subprocess
import sys

import pytest


def _hzexp(cwd, *args):
    """Exit status and output lines of `python -m hzexp ARGS`, as a user's shell runs it."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HZEXP_VERBOSE", "TF_CPP_MIN_LOG_LEVEL")}
    done = subprocess.run([sys.executable, "-m", "hzexp", *args], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=300)
    return done.returncode, (done.stdout + done.stderr).splitlines()


@pytest.mark.slow
def test_a_bad_input_error_is_the_only_line_printed(tmp_path, smoke_pipeline):
    """TensorFlow's start-up lines (absl, oneDNN, CUDA), MLflow's type-hint advice and
    Optuna's experimental-feature warning used to come before the one-line error."""
    code, lines = _hzexp(tmp_path, "train", "--pipeline", "missing.yaml")
    assert (code, lines) == (2, ["hzexp train: error: missing.yaml: pipeline file not found"])
    space = tmp_path / "deep.yaml"
    space.write_text("parameters: {model.depth: {type: int, low: 6, high: 7}}")
    code, lines = _hzexp(tmp_path, "search", "--pipeline", str(smoke_pipeline),
                         "--space", str(space), "--storage", f"sqlite:///{tmp_path / 'o.db'}")
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"hzexp search: error: {space}: parameters.model.depth: value 6")


def test_a_command_on_the_jax_backend_runs_without_tensorflow(tmp_path):
    """`KERAS_BACKEND=jax` on a machine without TensorFlow (a GPU node with JAX only): the
    CLI's start-up must not import it. TensorFlow is made unimportable in the child."""
    data = tmp_path / "ds"
    data.mkdir()
    script = ("import sys; sys.modules['tensorflow'] = None\n"
              "from hzexp.cli import main\n"
              f"code = main(['predict', '--data', {str(data)!r}, '--out', "
              f"{str(data / 'z.parquet')!r}])\n"
              "assert 'tensorflow' not in [m for m in sys.modules if sys.modules[m]]\n"
              "raise SystemExit(code)")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == (f"hzexp predict: error: {data / 'z.parquet'}: inside the "
                                   f"input {data}; write the catalogue elsewhere (--overwrite "
                                   "does not apply to the input)")
