"""A tracked training run: train Hybrid-z and its baselines on one split, evaluate, log.

This is what `hzexp train` runs and what each search trial runs (as a nested run). The
evaluation sample is the test split for a training run; a search trial evaluates on the
validation split instead, so the test set is touched only to report the chosen model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import keras
import numpy as np

from hzexp import tracking
from hzexp.config import PipelineConfig, flatten
from hzexp.data.pipeline import magnitudes, redshifts
from hzexp.data.sources import resolve_dataset
from hzexp.data.splits import split_table
from hzexp.data.store import Dataset
from hzexp.evaluation.baselines import fit_knn_baseline, fit_mlp_baseline
from hzexp.evaluation.report import build_report
from hzexp.evaluation.tables import subsample_metrics
from hzexp.training import TrainingResult, train

log = logging.getLogger(__name__)

HYBRID_LABEL = "Hybrid-z"
BASELINE_LABELS = {"mlp": "MLP baseline (magnitudes)", "knn": "kNN baseline (magnitudes)"}
BASELINE_PREFIXES = {"mlp": "baseline_", "knn": "baseline_knn_"}


@dataclass
class TrainingOutcome:
    """What a tracked run produced: ids to find it again and its headline numbers."""

    run_id: str
    model_uri: str
    evaluated_on: str
    metrics: dict[str, float]
    result: TrainingResult = field(repr=False)

    def summary(self) -> str:
        p = "val_" if self.evaluated_on == "val" else ""
        m = {k[len(p):]: v for k, v in self.metrics.items() if k.startswith(p)}
        lines = [f"run {self.run_id}  model {self.model_uri}",
                 f"{self.evaluated_on}: SMAD(Dz) {m['smad_dz']:.4f}  mean Dz {m['dz_mean']:+.5f}"
                 f"  outliers {m['outlier_frac']:.4f}  n {int(m['n_test'])}"]
        if "baseline_smad_dz" in m:
            lines.append(f"magnitude-only MLP baseline SMAD(Dz) {m['baseline_smad_dz']:.4f}  "
                         f"ratio {m['smad_dz'] / m['baseline_smad_dz']:.3f}")
        return "\n".join(lines)


def fit_baselines(config: PipelineConfig, dataset: Dataset,
                  assignment: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Magnitude-only baselines trained on the same training split, predicted on `rows`."""
    fitters = {"mlp": partial(fit_mlp_baseline, seed=config.training.seed),
               "knn": fit_knn_baseline}
    train_rows, val_rows = assignment["train"], assignment["val"]
    predictions = {}
    for name, fitter in fitters.items():
        if getattr(config.baselines, name):
            model = fitter(magnitudes(dataset, train_rows), redshifts(dataset, train_rows),
                           magnitudes(dataset, val_rows), redshifts(dataset, val_rows))
            predictions[name] = model.predict(magnitudes(dataset, rows)).astype(np.float64)
    return predictions


def tracked_training(config: PipelineConfig, pipeline_file: str | None = None,
                     run_name: str | None = None, nested: bool = False,
                     callbacks: list[keras.callbacks.Callback] | None = None,
                     evaluate_on: str = "test", dataset: Dataset | None = None,
                     extra_params: dict | None = None,
                     extra_tags: dict[str, str] | None = None) -> TrainingOutcome:
    """Train, evaluate and log one run; the MLflow run ends FAILED if anything raises."""
    tracking.configure_tracking()
    dataset = dataset or resolve_dataset(config.data)
    config.validate(stored_size=dataset.stored_size)
    tags = {**tracking.run_tags(dataset.content_hash, str(dataset.path)),
            "evaluated_on": evaluate_on, **(extra_tags or {})}
    prefix = "val_" if evaluate_on == "val" else ""
    with tracking.start_run(run_name=run_name or config.name, tags=tags, nested=nested) as run:
        tracking.log_params({**flatten(config), **(extra_params or {})})
        if pipeline_file:
            tracking.log_file(Path(pipeline_file), "config")
        result = train(config, dataset, callbacks=[tracking.EpochMetricsLogger(),
                                                   *(callbacks or [])])
        rows = result.assignment[evaluate_on]
        frame = dataset.catalogue.iloc[rows].reset_index(drop=True)
        z_phot = {HYBRID_LABEL: result.predictions[evaluate_on]}
        baselines = fit_baselines(config, dataset, result.assignment, rows)
        z_phot.update({BASELINE_LABELS[k]: v for k, v in baselines.items()})
        metrics = subsample_metrics(frame, z_phot[HYBRID_LABEL], prefix=prefix)
        for name, predicted in baselines.items():
            metrics.update(subsample_metrics(frame, predicted,
                                             prefix=prefix + BASELINE_PREFIXES[name]))
        metrics["epochs_run"] = result.epochs_run
        tracking.log_metrics(metrics)
        table, figures = build_report(frame, z_phot, result.history)
        tracking.log_frame(table, f"photoz_table_{evaluate_on}")
        tracking.log_split(split_table(dataset.catalogue["object_id"].to_numpy(),
                                       result.assignment))
        tracking.log_figures(figures)
        model_uri = tracking.log_deployable_model(result.deployable, dataset.stored_size)
        return TrainingOutcome(run_id=run.info.run_id, model_uri=model_uri,
                               evaluated_on=evaluate_on, metrics=metrics, result=result)
