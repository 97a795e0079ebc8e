"""The libraries' start-up chatter, held back from a user's terminal unless they ask for it.

hzexp's output is its own (progress, results, errors, warnings a user should act on).
TensorFlow, MLflow, Optuna and Dask each print lines at start-up that say nothing a user can
act on; the `hzexp` command holds them back in its own process, and a local Dask cluster's
workers hold them back in theirs, unless `--verbose` or HZEXP_VERBOSE=1 asks for them (the
command sets HZEXP_VERBOSE for its child processes when given `--verbose`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator

#: Library notices that say nothing a user can act on: Optuna's ExperimentalWarning (that
#: heartbeats and trial retries are experimental), MLflow's advice to type-hint `predict`
#: and to give an input example (the model has an explicit signature). MLflow shows its
#: notices under a warning filter of its own, so they are dropped where warnings are shown.
_NOTICE_CATEGORY = "ExperimentalWarning"
_NOTICES = ("Add type hints to the `predict` method",
            "An input example was not provided when logging the model")
#: The libraries' own knobs for their INFO lines: TensorFlow's C++ logs, MLflow's (store
#: creation, new experiment) and its artifact download bars, Dask's (scheduler and worker
#: start and stop). Optuna's one line per trial and Keras' per epoch are progress and stay.
_QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2", "MLFLOW_LOGGING_LEVEL": "WARNING",
                      "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                      "DASK_LOGGING__DISTRIBUTED": "warning"}


def is_verbose() -> bool:
    return os.environ.get("HZEXP_VERBOSE", "") not in ("", "0")


def hold_back() -> None:
    """Quieten the libraries in this process and the processes it starts (their knobs are
    environment variables, read when each library is first imported), and drop their
    notices from the warnings shown. Calling it again changes nothing."""
    logging.getLogger("hzexp").setLevel(logging.INFO)
    for name, value in _QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    show = warnings.showwarning
    if getattr(show, "drops_notices", False):
        return

    def show_unless_notice(message, category, *args, **kwargs):
        if category.__name__ != _NOTICE_CATEGORY and not any(n in str(message)
                                                             for n in _NOTICES):
            show(message, category, *args, **kwargs)

    show_unless_notice.drops_notices = True
    warnings.showwarning = show_unless_notice


def start_up_hidden_unless_verbose() -> contextlib.AbstractContextManager:
    """`native_start_up_hidden`, or nothing held back when the user asked for `--verbose`."""
    return contextlib.nullcontext() if is_verbose() else native_start_up_hidden()


@contextlib.contextmanager
def native_start_up_hidden() -> Iterator[None]:
    """Hold back what native code writes to stderr while the block runs; if it fails, show it
    all. TensorFlow's import logs oneDNN, CUDA and CPU-feature lines through absl before any
    log level applies (TF_CPP_MIN_LOG_LEVEL cannot hide them), and its device discovery an
    E-level `cuInit` line on a machine without a GPU; later C++ errors still show."""
    sys.stderr.flush()
    real_stderr = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(real_stderr, 2)
            held.seek(0)
            os.write(2, held.read())
            raise
        finally:
            os.dup2(real_stderr, 2)
            os.close(real_stderr)


def start_keras_backend() -> None:
    """Import Keras and, on its TensorFlow backend, let TensorFlow find its devices, so that
    their start-up lines come now, while they are held back (`native_start_up_hidden`).
    Another backend (JAX) runs without TensorFlow installed."""
    import keras

    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")

