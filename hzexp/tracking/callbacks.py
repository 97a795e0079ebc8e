"""Keras callbacks that record a training in MLflow.

The one part of `hzexp.tracking` that needs Keras, kept in a module of its own so that
importing the package (a Dask cluster's driver, the CLI resolving a model) does not start
TensorFlow; the training and the search import it where they build their callbacks.
"""

from __future__ import annotations

import keras
import mlflow

from hzexp.tracking.runs import EPOCH_METRICS


class EpochMetricsLogger(keras.callbacks.Callback):
    """Log Keras' per-epoch metrics (`loss val_loss mae mse r2`, train and validation),
    validation SMAD (and a PDF model's validation CRPS) and, when a schedule changes it, the
    learning rate."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        mlflow.log_metrics({k: float(logs[k]) for k in EPOCH_METRICS if k in logs}, step=epoch)


class ActiveRunRecorder(keras.callbacks.Callback):
    """Remember the MLflow run a training belongs to, to tag it after it has ended."""

    run_id: str | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.run_id = mlflow.active_run().info.run_id
