"""One Hybrid-z training run on arrays and configs: split, scale, fit, predict.

No MLflow or Optuna here: callers pass Keras callbacks (per-epoch logging, pruning) and get
back everything they need to evaluate, log and register the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import keras
import numpy as np

from hzexp.config import ConfigError, ModelConfig, PipelineConfig, TrainingConfig
from hzexp.data.pipeline import (
    MagnitudeScaling,
    magnitudes,
    make_dataset,
    redshifts,
    tabular_inputs,
)
from hzexp.data.smoothing import SmoothingResult, smooth_nz
from hzexp.data.splits import assign_splits
from hzexp.data.store import PSF_COLUMNS, Dataset, tabular_columns
from hzexp.evaluation.metrics import Dz, smad
from hzexp.evaluation.novelty import TrainingCoverage
from hzexp.evaluation.pdfs import PdfGrid, coverage, crps, fit_temperature, quantiles, temper
from hzexp.model.augmentation import trainer
from hzexp.model.devices import configure_precision, distribution_scope
from hzexp.model.export import export_model
from hzexp.model.hybrid import build_hybrid_z, compile_hybrid_z
from hzexp.model.pdf import CalibratedPdf
from hzexp.model.preprocessing import fit_magnitude_standardiser

log = logging.getLogger(__name__)


@dataclass
class TrainingResult:
    """A fitted run: the core network, the deployable model with its preprocessing, the
    split used, the loss history and the Hybrid-z predictions on validation and test rows
    (z_phot; for a PDF model also its calibrated PDFs, the calibration's temperature, what
    the calibration did to the validation split, and the out-of-coverage flag's state)."""

    core: keras.Model
    deployable: keras.Model
    assignment: dict[str, np.ndarray]
    scaling: MagnitudeScaling
    history: dict[str, list[float]]
    predictions: dict[str, np.ndarray]
    epochs_run: int
    smoothing: SmoothingResult | None = None
    pdfs: dict[str, np.ndarray] = field(default_factory=dict)
    calibration: dict[str, float] = field(default_factory=dict)
    coverage: TrainingCoverage | None = None


def pdf_grid(model: ModelConfig) -> PdfGrid | None:
    """The redshift grid of a PDF model's output; None for a point model."""
    return PdfGrid(model.pdf_z_max, model.pdf_bins) if model.output == "pdf" else None


def point_estimates(output: np.ndarray, grid: PdfGrid | None) -> np.ndarray:
    """z_phot from the network's output: itself for a point model, the median of each PDF."""
    if grid is None:
        return np.asarray(output).reshape(-1).astype(np.float64)
    return quantiles(output, grid, 0.5)


def fit_scaling(dataset: Dataset, train_rows: np.ndarray,
                psf_inputs: bool = False) -> MagnitudeScaling:
    """Statistics of the magnitude branch's inputs (with `psf_inputs` the PSF FWHMs too)
    from the training split only (never validation or test)."""
    return MagnitudeScaling(*fit_magnitude_standardiser(
        tabular_inputs(dataset, train_rows, psf_inputs), tabular_columns(psf_inputs)))


def evaluation_batches(dataset: Dataset, rows: np.ndarray, config: PipelineConfig,
                       scaling: MagnitudeScaling):
    """Unlabelled, ordered batches of `rows` for the `trainer` model to predict."""
    return make_dataset(dataset, rows, config.preprocess, scaling,
                        batch_size=max(config.training.batch_size, 256),
                        chunk_size=config.training.chunk_size, labelled=False,
                        psf_inputs=config.model.psf_inputs)


def predict_rows(model: keras.Model, dataset: Dataset, rows: np.ndarray,
                 config: PipelineConfig, scaling: MagnitudeScaling) -> np.ndarray:
    """The output of `model` (from `trainer`) for catalogue rows, in the order of `rows`:
    (N, 1) z_phot, or (N, bins) PDFs."""
    batches = evaluation_batches(dataset, rows, config, scaling)
    return np.asarray(model.predict(batches, verbose=0), dtype=np.float64)


class ValidationSMAD(keras.callbacks.Callback):
    """Add `val_smad`, SMAD(Dz) on the validation split, to each epoch's logs, and for a PDF
    model `val_pdf_crps`, the mean CRPS of its (not yet calibrated) PDFs there.

    Keras' validation loss cannot rank trials: its scale changes with the Huber delta being
    searched. SMAD(Dz) on the validation split is comparable across trials, so pruning and
    the per-epoch MLflow curves use it. Callbacks after this one in the list see the value.
    """

    def __init__(self, batches, z_spec: np.ndarray, grid: PdfGrid | None = None) -> None:
        super().__init__()
        self.batches = batches
        self.z_spec = z_spec
        self.grid = grid

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        output = self.model.predict(self.batches, verbose=0)
        if logs is not None:
            logs["val_smad"] = smad(Dz(self.z_spec, point_estimates(output, self.grid)))
            if self.grid is not None:
                logs["val_pdf_crps"] = float(np.mean(crps(output, self.grid, self.z_spec)))


def calibrate(val_pdfs: np.ndarray, z_val: np.ndarray, grid: PdfGrid
              ) -> tuple[float, dict[str, float]]:
    """The temperature that calibrates the PDFs, fitted on the validation split only, and
    the validation CRPS and 68% coverage before and after it (logged with the run)."""
    temperature = fit_temperature(val_pdfs, grid, z_val)
    calibrated = temper(val_pdfs, grid, temperature)
    return temperature, {
        "pdf_temperature": temperature,
        "calibration_val_crps_raw": float(np.mean(crps(val_pdfs, grid, z_val))),
        "calibration_val_crps": float(np.mean(crps(calibrated, grid, z_val))),
        "calibration_val_coverage_68_raw": coverage(val_pdfs, grid, z_val, 0.6827),
        "calibration_val_coverage_68": coverage(calibrated, grid, z_val, 0.6827)}


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
    if config.model.psf_inputs:
        unknown = np.isnan(dataset.psf_array[assignment["train"]]).all(axis=0)
        if unknown.any():
            raise ConfigError(f"model.psf_inputs = True: {dataset.path} has no seeing in "
                              f"{', '.join(np.asarray(PSF_COLUMNS)[unknown])} for any "
                              "training galaxy")
    scaling = fit_scaling(dataset, assignment["train"], config.model.psf_inputs)
    with distribution_scope(config.training):
        core = build_hybrid_z(config.model, config.preprocess.cutout)
        model = trainer(core, config.preprocess, dataset.stored_size, config.training.seed)
        compile_hybrid_z(model, config.training, config.model)

        def batches(split: str, training: bool):
            return make_dataset(dataset, assignment[split], config.preprocess, scaling,
                                batch_size=config.training.batch_size,
                                chunk_size=config.training.chunk_size,
                                training=training, seed=config.training.seed,
                                psf_inputs=config.model.psf_inputs,
                                workers=config.training.input_workers)

        grid = pdf_grid(config.model)
        z_val = redshifts(dataset, assignment["val"]).astype(np.float64)
        val_smad = ValidationSMAD(evaluation_batches(dataset, assignment["val"], config, scaling),
                                  z_val, grid)
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.training.patience,
                                             restore_best_weights=True)
        fitted = model.fit(batches("train", True), validation_data=batches("val", False),
                          epochs=config.training.epochs,
                          # the epoch's line is written before a caller's callback can
                          # end the training (a pruned trial logs the epoch that pruned it)
                          callbacks=[val_smad, *learning_rate_schedule(config.training), stop,
                                     EpochLog(), *(callbacks or [])],
                          shuffle=False, verbose=0)  # the input pipeline shuffles itself
        history = {k: [float(v) for v in values] for k, values in fitted.history.items()}
        outputs = {split: predict_rows(model, dataset, assignment[split], config, scaling)
                   for split in ("val", "test")}
        pdfs, calibration, calibrated_pdf, coverage = {}, {}, None, None
        if grid is not None:
            coverage = TrainingCoverage.fit(magnitudes(dataset, assignment["train"]))
            temperature, calibration = calibrate(outputs["val"], z_val, grid)
            pdfs = {split: temper(output, grid, temperature) for split, output in outputs.items()}
            outputs = pdfs
            calibrated_pdf = CalibratedPdf(grid.z_max, temperature, name="z_pdf")
        predictions = {split: point_estimates(output, grid) for split, output in outputs.items()}
        deployable = export_model(core, config.preprocess.cutout, dataset.stored_size,
                                  scaling.fill, scaling.mean, scaling.scale, pdf=calibrated_pdf)
    return TrainingResult(core=core, deployable=deployable, assignment=assignment,
                          scaling=scaling, history=history, predictions=predictions,
                          epochs_run=len(history.get("loss", [])), smoothing=smoothing,
                          pdfs=pdfs, calibration=calibration, coverage=coverage)
