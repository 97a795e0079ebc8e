"""One Hybrid-z training run on arrays and configs: split, scale, fit, predict.

No MLflow or Optuna here: callers pass Keras callbacks (per-epoch logging, pruning) and get
back everything they need to evaluate, log and register the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import keras
import numpy as np

from hzexp.config import PipelineConfig, TrainingConfig
from hzexp.data.pipeline import MagnitudeScaling, magnitudes, make_dataset, redshifts
from hzexp.data.smoothing import SmoothingResult, smooth_nz
from hzexp.data.splits import assign_splits
from hzexp.data.store import Dataset
from hzexp.evaluation.metrics import Dz, smad
from hzexp.model.devices import configure_precision, distribution_scope
from hzexp.model.export import export_model
from hzexp.model.hybrid import build_hybrid_z, compile_hybrid_z
from hzexp.model.preprocessing import fit_magnitude_standardiser

log = logging.getLogger(__name__)


@dataclass
class TrainingResult:
    """A fitted run: the core network, the deployable model with its preprocessing, the
    split used, the loss history and the Hybrid-z predictions on validation and test rows."""

    core: keras.Model
    deployable: keras.Model
    assignment: dict[str, np.ndarray]
    scaling: MagnitudeScaling
    history: dict[str, list[float]]
    predictions: dict[str, np.ndarray]
    epochs_run: int
    smoothing: SmoothingResult | None = None


def fit_scaling(dataset: Dataset, train_rows: np.ndarray) -> MagnitudeScaling:
    """Magnitude statistics from the training split only (never validation or test)."""
    return MagnitudeScaling(*fit_magnitude_standardiser(magnitudes(dataset, train_rows)))


def evaluation_batches(dataset: Dataset, rows: np.ndarray, config: PipelineConfig,
                       scaling: MagnitudeScaling):
    """Unlabelled, ordered, centre-cropped batches of `rows` for prediction."""
    return make_dataset(dataset, rows, config.preprocess, scaling,
                        batch_size=max(config.training.batch_size, 256),
                        chunk_size=config.training.chunk_size, labelled=False)


def predict_rows(core: keras.Model, dataset: Dataset, rows: np.ndarray, config: PipelineConfig,
                 scaling: MagnitudeScaling) -> np.ndarray:
    """Core-model z_phot for catalogue rows, in the order of `rows`."""
    batches = evaluation_batches(dataset, rows, config, scaling)
    return core.predict(batches, verbose=0).reshape(-1).astype(np.float64)


class ValidationSMAD(keras.callbacks.Callback):
    """Add `val_smad`, SMAD(Dz) on the validation split, to each epoch's logs.

    Keras' validation loss cannot rank trials: its scale changes with the Huber delta being
    searched. SMAD(Dz) on the validation split is comparable across trials, so pruning and
    the per-epoch MLflow curves use it. Callbacks after this one in the list see the value.
    """

    def __init__(self, batches, z_spec: np.ndarray) -> None:
        super().__init__()
        self.batches = batches
        self.z_spec = z_spec

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        z_phot = self.model.predict(self.batches, verbose=0).reshape(-1)
        if logs is not None:
            logs["val_smad"] = smad(Dz(self.z_spec, z_phot))


class EpochLog(keras.callbacks.Callback):
    """One log line per epoch (logger `hzexp.training`) in place of Keras' console lines, so
    they go where logging goes: the terminal of `hzexp train`, each run's `logs/hzexp.log`
    in MLflow, and not the terminal of a search, which shows progress bars instead."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        values = "  ".join(f"{k} {v:.4g}" for k, v in sorted((logs or {}).items()))
        log.info("epoch %d/%d: %s", epoch + 1, self.params["epochs"], values)


def learning_rate_schedule(training: TrainingConfig) -> list[keras.callbacks.Callback]:
    """The callback that sets the rate each epoch (none for a constant rate); Keras logs
    the rate each epoch was trained with as `learning_rate`."""
    floor = training.lr_floor * training.learning_rate
    if training.lr_schedule == "plateau":
        # min_delta 0: Huber losses with small deltas are ~1e-5, below Keras' default 1e-4
        # threshold, which would count every epoch as a plateau.
        return [keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=training.lr_decay_factor, min_delta=0.0,
            patience=training.lr_decay_patience, min_lr=floor)]
    if training.lr_schedule == "cosine":
        # Stepped per epoch: epoch 0 trains at learning_rate, the last one at the floor.
        cosine = keras.optimizers.schedules.CosineDecay(
            training.learning_rate, decay_steps=max(training.epochs - 1, 1),
            alpha=training.lr_floor)
        return [keras.callbacks.LearningRateScheduler(lambda epoch, _: float(cosine(epoch)))]
    return []


def train(config: PipelineConfig, dataset: Dataset,
          callbacks: list[keras.callbacks.Callback] | None = None,
          assignment: dict[str, np.ndarray] | None = None) -> TrainingResult:
    """Train Hybrid-z with early stopping on validation loss (best weights restored).

    The model is built, fitted and exported inside `distribution_scope`, so with
    `training.distribution = data_parallel` every step is split over the visible devices.
    """
    config.validate(stored_size=dataset.stored_size, data_path=dataset.path)
    dataset.check_labels("training")
    keras.utils.set_random_seed(config.training.seed)
    configure_precision(config.training)
    assignment = dict(assignment or assign_splits(len(dataset), config.split))
    smoothing = None
    if config.split.smooth_train_nz:
        train_rows = assignment["train"]
        smoothing = smooth_nz(redshifts(dataset, train_rows), seed=config.split.seed)
        assignment["train"] = train_rows[smoothing.indices]
        log.info("n(z) smoothing kept %d of %d training galaxies (%.1f%%)",
                 len(smoothing.indices), len(train_rows), 100 * smoothing.kept_fraction)
    scaling = fit_scaling(dataset, assignment["train"])
    with distribution_scope(config.training):
        core = build_hybrid_z(config.model, config.preprocess.cutout)
        compile_hybrid_z(core, config.training)

        def batches(split: str, training: bool):
            return make_dataset(dataset, assignment[split], config.preprocess, scaling,
                                batch_size=config.training.batch_size,
                                chunk_size=config.training.chunk_size,
                                training=training, seed=config.training.seed)

        val_smad = ValidationSMAD(evaluation_batches(dataset, assignment["val"], config, scaling),
                                  redshifts(dataset, assignment["val"]).astype(np.float64))
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.training.patience,
                                             restore_best_weights=True)
        fitted = core.fit(batches("train", True), validation_data=batches("val", False),
                          epochs=config.training.epochs,
                          callbacks=[val_smad, *learning_rate_schedule(config.training), stop,
                                     *(callbacks or []), EpochLog()],
                          shuffle=False, verbose=0)  # the input pipeline shuffles itself
        history = {k: [float(v) for v in values] for k, values in fitted.history.items()}
        predictions = {split: predict_rows(core, dataset, assignment[split], config, scaling)
                       for split in ("val", "test")}
        deployable = export_model(core, config.preprocess.cutout, dataset.stored_size,
                                  scaling.fill, scaling.mean, scaling.scale)
    return TrainingResult(core=core, deployable=deployable, assignment=assignment,
                          scaling=scaling, history=history, predictions=predictions,
                          epochs_run=len(history.get("loss", [])), smoothing=smoothing)
