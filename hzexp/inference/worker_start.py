"""What a local cluster's fork server (`forkserver`) imports once for all its workers:
Dask's worker, Keras (TensorFlow's modules, not its runtime), MLflow's model loading and
registry stores, and hzexp's prediction code, with their start-up chatter held back as
the `hzexp` command holds back its own (`chatter`).

Importing this module does that work: it is the fork server's preload, and nothing else
imports it.
"""

import importlib

from hzexp import chatter

#: Every module a worker needs to load a registered model and predict chunks.
WORKER_MODULES = ("distributed", "keras", "mlflow.pyfunc",
                  "mlflow.store.tracking.sqlalchemy_store",
                  "mlflow.store.model_registry.sqlalchemy_store", "hzexp.inference.cluster")


def _import_worker_modules() -> None:
    if not chatter.is_verbose():
        chatter.hold_back()
    with chatter.start_up_hidden_unless_verbose():
        for name in WORKER_MODULES:
            importlib.import_module(name)


_import_worker_modules()
