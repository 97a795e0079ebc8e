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
from typing import Any

import keras
import numpy as np
import pandas as pd

from hzexp import tracking
from hzexp._io import atomic_file
from hzexp.config import PipelineConfig, flatten
from hzexp.data.kids.ids import source_ids
from hzexp.data.pipeline import magnitudes, redshifts
from hzexp.data.sources import resolve_dataset
from hzexp.data.splits import kfold_assignments, split_table
from hzexp.data.store import Dataset
from hzexp.evaluation.baselines import KnnPdfBaseline, fit_knn_baseline, fit_mlp_baseline
from hzexp.evaluation.figures import nz_comparison
from hzexp.evaluation.pdfs import PdfGrid, summaries
from hzexp.evaluation.report import build_report
from hzexp.evaluation.tables import photoz_table, subsample_metrics, subsample_pdf_metrics
from hzexp.inference.catalogue import predict_dataset_pdfs, predict_dataset_rows
from hzexp.inference.model import lookup_source
from hzexp.tracking.callbacks import EpochMetricsLogger
from hzexp.training import TrainingResult, pdf_grid, train

log = logging.getLogger(__name__)

HYBRID_LABEL = "Hybrid-z"
BASELINE_LABELS = {"mlp": "MLP baseline (magnitudes)", "knn": "kNN baseline (magnitudes)"}
BASELINE_PREFIXES = {"mlp": "baseline_", "knn": "baseline_knn_"}
#: The splits of its dataset a run uses (`mlflow.log_input` tag), by the split it evaluates.
SPLITS_USED = {"test": ("training", "validation", "test"), "val": ("training", "validation")}
PREDICTION_COLUMNS = {HYBRID_LABEL: "z_phot", **{label: f"z_phot_{name}"
                                                   for name, label in BASELINE_LABELS.items()}}


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
                  assignment: dict[str, np.ndarray]) -> dict[str, Any]:
    """Magnitude-only baselines fitted on the same training split (validation for tuning)."""
    fitters = {"mlp": partial(fit_mlp_baseline, seed=config.training.seed),
               "knn": fit_knn_baseline}
    train_rows, val_rows = assignment["train"], assignment["val"]
    return {name: fitter(magnitudes(dataset, train_rows), redshifts(dataset, train_rows),
                         magnitudes(dataset, val_rows), redshifts(dataset, val_rows))
            for name, fitter in fitters.items() if getattr(config.baselines, name)}


def tracked_training(config: PipelineConfig, pipeline_file: str | None = None,
                     run_name: str | None = None, nested: bool = False,
                     callbacks: list[keras.callbacks.Callback] | None = None,
                     evaluate_on: str = "test", dataset: Dataset | None = None,
                     assignment: dict[str, np.ndarray] | None = None,
                     extra_params: dict | None = None,
                     extra_tags: dict[str, str] | None = None) -> TrainingOutcome:
    """Train, evaluate and log one run; the MLflow run ends FAILED if anything raises."""
    tracking.configure_tracking()
    dataset = dataset or resolve_dataset(config.data)
    config.validate(stored_size=dataset.stored_size, data_path=dataset.path)
    tags = {**tracking.run_tags(dataset.content_hash, str(dataset.path)),
            "evaluated_on": evaluate_on, **(extra_tags or {})}
    prefix = "val_" if evaluate_on == "val" else ""
    with (tracking.start_run(run_name=run_name or config.name, tags=tags, nested=nested) as run,
          tracking.run_log()):
        tracking.log_dataset_input(dataset, "training", SPLITS_USED[evaluate_on])
        tracking.log_params({**flatten(config), **(extra_params or {})})
        if pipeline_file:
            tracking.log_file(Path(pipeline_file), "config")
        result = train(config, dataset, assignment=assignment,
                       callbacks=[EpochMetricsLogger(), *(callbacks or [])])
        rows = result.assignment[evaluate_on]
        frame = dataset.catalogue.iloc[rows].reset_index(drop=True)
        z_phot = {HYBRID_LABEL: result.predictions[evaluate_on]}
        metrics = subsample_metrics(frame, z_phot[HYBRID_LABEL], prefix=prefix)
        grid = pdf_grid(config.model)
        pdfs = {HYBRID_LABEL: result.pdfs[evaluate_on]} if grid is not None else {}
        if grid is not None:
            metrics.update(subsample_pdf_metrics(frame, pdfs[HYBRID_LABEL], grid, prefix=prefix))
            metrics.update(result.calibration)
            metrics.update(result.coverage.rule())
            metrics[f"{prefix}in_train_coverage_frac"] = float(np.mean(
                result.coverage.flags(magnitudes(dataset, rows))))
        for name, baseline in fit_baselines(config, dataset, result.assignment).items():
            predicted = baseline.predict(magnitudes(dataset, rows)).astype(np.float64)
            z_phot[BASELINE_LABELS[name]] = predicted
            metrics.update(subsample_metrics(frame, predicted,
                                             prefix=prefix + BASELINE_PREFIXES[name]))
            if name == "mlp":
                tracking.log_baseline_model(baseline)
            if name == "knn" and grid is not None:
                knn_pdfs = knn_pdf_baseline(baseline, dataset, result.assignment, grid)
                pdfs[BASELINE_LABELS[name]] = knn_pdfs.predict_pdfs(magnitudes(dataset, rows),
                                                                    grid)
                metrics.update(subsample_pdf_metrics(frame, pdfs[BASELINE_LABELS[name]], grid,
                                                     prefix=prefix + BASELINE_PREFIXES[name]))
                metrics["baseline_knn_pdf_kernel_width"] = knn_pdfs.kernel_width
        metrics["epochs_run"] = result.epochs_run
        table, figures = build_report(frame, z_phot, result.history, pdfs, grid)
        if result.smoothing is not None:
            metrics["nz_kept_fraction"] = result.smoothing.kept_fraction
            figures["nz_smoothing"] = smoothing_figure(dataset, result)
        tracking.log_metrics(metrics)
        tracking.log_frame(table, f"photoz_table_{evaluate_on}")
        tracking.log_parquet(split_table(dataset.catalogue["object_id"].to_numpy(),
                                         result.assignment), "split")
        hybrid_summaries = (summaries(pdfs[HYBRID_LABEL], grid) if grid is not None
                            else None)
        tracking.log_parquet(prediction_table(frame, source_ids(dataset)[rows], z_phot,
                                              hybrid_summaries), f"predictions_{evaluate_on}")
        tracking.log_figures(figures)
        model_uri = tracking.log_deployable_model(result.deployable, dataset.stored_size,
                                                  result.coverage)
        return TrainingOutcome(run_id=run.info.run_id, model_uri=model_uri,
                               evaluated_on=evaluate_on, metrics=metrics, result=result)


def prediction_table(frame: pd.DataFrame, source_id: np.ndarray,
                     z_phot: dict[str, np.ndarray],
                     hybrid_summaries: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-galaxy `object_id, source_id, z_spec, masked` and each method's photo-z (`z_phot`,
    `z_phot_mlp`, `z_phot_knn`), and a PDF model's other summaries (`z_phot_mode`,
    `z_phot_err`, `z_phot_lo68`, `z_phot_hi68`): what the table was computed from, so a
    reader can bootstrap its errors, cut samples of their own or join it back to the source
    catalogue."""
    table = frame[["object_id", "z_spec", "masked"]].reset_index(drop=True)
    table.insert(1, "source_id", source_id)
    table = table.assign(**{PREDICTION_COLUMNS[label]: np.asarray(values, dtype=np.float64)
                            for label, values in z_phot.items()})
    if hybrid_summaries is not None:
        table = table.assign(**{name: hybrid_summaries[name].to_numpy(dtype=np.float64)
                                for name in hybrid_summaries if name != "z_phot"})
    return table


def knn_pdf_baseline(knn, dataset: Dataset, assignment: dict[str, np.ndarray],
                     grid: PdfGrid) -> KnnPdfBaseline:
    """ANNz2-like KNN PDFs on the kNN baseline, its kernel fitted on the validation split."""
    val_rows = assignment["val"]
    return KnnPdfBaseline(knn, redshifts(dataset, assignment["train"]),
                          magnitudes(dataset, val_rows), redshifts(dataset, val_rows), grid)


def smoothing_figure(dataset: Dataset, result: TrainingResult):
    """n(z) of the training split before and after smoothing (paper fig. 7b)."""
    smoothing = result.smoothing
    kept = redshifts(dataset, result.assignment["train"])
    original = np.repeat(0.5 * (smoothing.edges[1:] + smoothing.edges[:-1]),
                         smoothing.original_counts)
    return nz_comparison(original, {"smoothed training set": kept},
                         bins=len(smoothing.original_counts),
                         z_range=(smoothing.edges[0], smoothing.edges[-1]))


def tracked_kfold(config: PipelineConfig, k: int, pipeline_file: str | None = None,
                  run_name: str | None = None) -> dict[str, float]:
    """Paper 5.1: k nested runs rotating validation and test folds; the parent run logs
    the mean and standard deviation over folds of every test metric."""
    tracking.configure_tracking()
    dataset = resolve_dataset(config.data)
    config.validate(stored_size=dataset.stored_size, data_path=dataset.path)
    folds = kfold_assignments(len(dataset), k, config.split.seed)
    tags = {**tracking.run_tags(dataset.content_hash, str(dataset.path)), "kfold": str(k)}
    with tracking.start_run(run_name=run_name or f"{config.name}-kfold{k}", tags=tags):
        tracking.log_dataset_input(dataset, "training", SPLITS_USED["test"])
        tracking.log_params({**flatten(config), "kfold": k})
        per_fold = [tracked_training(config, pipeline_file, run_name=f"fold-{i}", nested=True,
                                     dataset=dataset, assignment=assignment,
                                     extra_params={"fold": i}).metrics
                    for i, assignment in enumerate(folds)]
        summary = {}
        for name in per_fold[0]:
            values = np.array([m[name] for m in per_fold], dtype=float)
            summary[f"kfold_mean_{name}"] = float(np.mean(values))
            summary[f"kfold_std_{name}"] = float(np.std(values, ddof=1))
        tracking.log_metrics(summary)
        return summary


TABLE2_SAMPLE = "all"


def tracked_evaluation(model_uri: str, data: str | Path, name: str | None = None,
                       out: str | Path | None = None) -> pd.DataFrame:
    """Paper 5.2 / Table 2: a model (and its run's baseline) on an external labelled sample;
    for a PDF model also the PDF metrics and Table 2's PDF columns.

    Logged as its own MLflow run tagged with the model URI, registered name and version,
    so the external validation sits beside the model it validates.
    """
    tracking.configure_tracking()
    dataset = Dataset.open(data)
    dataset.check_labels("external validation")
    name = name or dataset.path.name
    source = lookup_source(model_uri)
    rows = np.arange(len(dataset))
    hybrid = tracking.load_pyfunc(model_uri)
    grid = hybrid.unwrap_python_model().pdf_grid
    pdfs = {}
    if grid is None:
        z_phot = {HYBRID_LABEL: predict_dataset_rows(hybrid, dataset, rows)}
    else:  # the network runs once: z_phot is its PDFs' median, as the pyfunc answers it
        pdfs[HYBRID_LABEL] = predict_dataset_pdfs(hybrid.unwrap_python_model(), dataset, rows)
        z_phot = {HYBRID_LABEL: summaries(pdfs[HYBRID_LABEL], grid)["z_phot"]
                  .to_numpy(dtype=np.float64)}
    baseline = tracking.load_baseline_for(source)
    if baseline is not None:
        z_phot[BASELINE_LABELS["mlp"]] = baseline.predict(magnitudes(dataset, rows))
    frame = dataset.catalogue
    table = photoz_table(frame, z_phot, pdfs=pdfs, grid=grid)
    table = table[table["sample"] == TABLE2_SAMPLE].assign(sample=name).reset_index(drop=True)
    tags = {**tracking.run_tags(dataset.content_hash, str(dataset.path)),
            "evaluated_model_uri": model_uri, "evaluated_model_name": source.name or "",
            "evaluated_model_version": source.version or "",
            "evaluated_model_run_id": source.run_id or ""}
    with tracking.start_run(run_name=f"evaluate-{name}", tags=tags):
        tracking.log_dataset_input(dataset, "evaluation")
        metrics = subsample_metrics(frame, z_phot[HYBRID_LABEL])
        if pdfs:
            metrics.update(subsample_pdf_metrics(frame, pdfs[HYBRID_LABEL], grid))
        if baseline is not None:
            metrics.update(subsample_metrics(frame, z_phot[BASELINE_LABELS["mlp"]],
                                             prefix=BASELINE_PREFIXES["mlp"]))
        tracking.log_metrics(metrics)
        tracking.log_frame(table, f"table2_{name}")
    if out is not None:
        with atomic_file(Path(out)) as tmp:
            table.to_csv(tmp, index=False)
    return table
