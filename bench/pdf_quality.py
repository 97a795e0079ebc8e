"""PDF quality on the default mock: the PDF model against the point model and against the
probabilistic magnitude-only baseline, on the same split and seed.

Trains `--point` (default pipelines/mock.yaml) and `--pdf` (pipelines/mock_pdf.yaml) as
tracked runs, or reads two finished runs (`--runs POINT_RUN_ID PDF_RUN_ID`), and prints,
from the runs' logged metrics and per-galaxy test predictions:
- SMAD(Dz) of both models' z_phot and their ratio, with a paired bootstrap interval over
  the test galaxies (target: PDF / point <= 1.03);
- coverage_68 (target 0.64-0.72), coverage_95 (0.92-0.97) and pit_ks (<= 0.04) of the PDFs;
- the CRPS of Hybrid-z's PDFs over the kNN PDF baseline's (target <= 0.85).

    python bench/pdf_quality.py                       # two ~40-minute trainings on 2 cores
    python bench/pdf_quality.py --runs <point run id> <pdf run id>

Runs go to MLFLOW_TRACKING_URI (default sqlite:///mlflow.db), like `hzexp train`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REPO = Path(__file__).parents[1]
BOOTSTRAP = 2000


def train(pipeline: Path) -> str:
    from hzexp.config import load_pipeline
    from hzexp.experiment import tracked_training

    return tracked_training(load_pipeline(pipeline), pipeline_file=str(pipeline)).run_id


def logged(run_id: str):
    """(metrics, per-galaxy test predictions) of a finished run."""
    import mlflow
    import pandas as pd

    from hzexp import tracking

    tracking.configure_tracking()
    path = mlflow.artifacts.download_artifacts(run_id=run_id,
                                               artifact_path="data/predictions_test.parquet")
    return mlflow.get_run(run_id).data.metrics, pd.read_parquet(path)


def smad_ratio_interval(z_spec, point, pdf, seed: int = 0) -> tuple[float, float, float]:
    """SMAD(Dz) ratio PDF / point and its 90% paired bootstrap interval over galaxies."""
    from hzexp.evaluation.metrics import Dz, smad

    d_point, d_pdf = Dz(z_spec, point), Dz(z_spec, pdf)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(z_spec), size=(BOOTSTRAP, len(z_spec)))
    ratios = [smad(d_pdf[i]) / smad(d_point[i]) for i in draws]
    return smad(d_pdf) / smad(d_point), *np.quantile(ratios, [0.05, 0.95])


def check(name: str, value: float, ok: bool, target: str) -> str:
    return f"{name:<34} {value:8.4f}   target {target:<12} {'met' if ok else 'NOT MET'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--point", type=Path, default=REPO / "pipelines" / "mock.yaml")
    parser.add_argument("--pdf", type=Path, default=REPO / "pipelines" / "mock_pdf.yaml")
    parser.add_argument("--runs", nargs=2, metavar=("POINT_RUN_ID", "PDF_RUN_ID"))
    args = parser.parse_args()
    point_run, pdf_run = args.runs or (train(args.point), train(args.pdf))
    point_metrics, point = logged(point_run)
    pdf_metrics, pdf = logged(pdf_run)
    if not np.array_equal(point["object_id"], pdf["object_id"]):
        raise SystemExit("the two runs were tested on different galaxies (split or data differ)")
    ratio, lo, hi = smad_ratio_interval(point["z_spec"].to_numpy(), point["z_phot"].to_numpy(),
                                        pdf["z_phot"].to_numpy())
    crps_ratio = pdf_metrics["crps"] / pdf_metrics["baseline_knn_crps"]
    print(f"runs: point {point_run}, pdf {pdf_run}; {len(point)} test galaxies")
    print(f"SMAD(Dz): point {point_metrics['smad_dz']:.4f}, pdf {pdf_metrics['smad_dz']:.4f}; "
          f"mean Dz point {point_metrics['dz_mean']:+.5f}, pdf {pdf_metrics['dz_mean']:+.5f}")
    print(f"calibration temperature {pdf_metrics['pdf_temperature']:.3f} (validation CRPS "
          f"{pdf_metrics['calibration_val_crps_raw']:.5f} -> "
          f"{pdf_metrics['calibration_val_crps']:.5f}, coverage_68 "
          f"{pdf_metrics['calibration_val_coverage_68_raw']:.3f} -> "
          f"{pdf_metrics['calibration_val_coverage_68']:.3f})")
    print(f"CRPS: Hybrid-z {pdf_metrics['crps']:.5f}, kNN PDF baseline "
          f"{pdf_metrics['baseline_knn_crps']:.5f}")
    print(check("SMAD ratio pdf/point", ratio, ratio <= 1.03, "<= 1.03")
          + f"   90% interval {lo:.3f}-{hi:.3f}")
    c68, c95, ks = (pdf_metrics[k] for k in ("coverage_68", "coverage_95", "pit_ks"))
    print(check("coverage_68", c68, 0.64 <= c68 <= 0.72, "0.64-0.72"))
    print(check("coverage_95", c95, 0.92 <= c95 <= 0.97, "0.92-0.97"))
    print(check("pit_ks", ks, ks <= 0.04, "<= 0.04"))
    print(check("CRPS ratio Hybrid-z / kNN PDF", crps_ratio, crps_ratio <= 0.85, "<= 0.85"))


if __name__ == "__main__":
    main()
