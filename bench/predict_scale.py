"""Catalogue prediction at scale: end-to-end speed vs the bare model, and memory vs size.

For each catalogue size a fresh subprocess (so ru_maxrss is that size's peak) runs
`predict_catalogue` on a mock dataset directory (end to end: wall time of the call, model
loading and output writing included; and its chunk loop alone), and times the same model's
`predict_on_batch` on preloaded in-memory arrays at the same batch size (before and after,
averaged). The preloaded arrays (20 batches) count in that size's peak RSS. Targets:
end-to-end / bare >= 0.9, and peak RSS(largest) / RSS(smallest) <= 1.2 (memory does not grow
with the catalogue). Prints the extrapolated time for KiDS-Bright's 1.2 million galaxies.

    python bench/predict_scale.py                          # default-architecture model
    python bench/predict_scale.py --model-uri models:/hybrid-z@champion --sizes 20000
    python bench/predict_scale.py --pdf                    # PDF model vs point model

`--pdf` measures, at each size and in one run, the default architecture with the PDF output
(summaries, and every PDF written with `--pdf-out`) beside the point model: targets PDF /
point end-to-end >= 0.8, and the PDF run's peak RSS(largest) / RSS(smallest) <= 1.2.

Without --model-uri an untrained model of the default architecture (pipelines/mock.yaml,
36 px cutout) is exported with a scaler fitted on the data and logged to a temporary MLflow
store: throughput does not depend on the weights. Mocks are cached under --cache
(~1100 galaxies/s to build, 37 kB a galaxy).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KIDS_BRIGHT = 1_200_000
PIPELINE = Path(__file__).parents[1] / "pipelines" / "mock.yaml"
BARE_BATCHES = 20


def mock_dataset(cache: Path, n_galaxies: int) -> Path:
    """The cached mock of `n_galaxies` (seed 42), simulated on first use."""
    from hzexp.data.mock import simulate

    path = cache / f"mock-{n_galaxies}-s42"
    if not path.exists():
        simulate(path, n_galaxies=n_galaxies, seed=42)
    return path


def default_model_uri(data: Path, store: Path, output: str = "point") -> str:
    """Log an untrained default-architecture deployable model (`output` point or pdf) to a
    store under `store`."""
    import dataclasses

    import keras
    import numpy as np

    from hzexp import tracking
    from hzexp.config import load_pipeline
    from hzexp.data.pipeline import magnitudes
    from hzexp.data.store import Dataset
    from hzexp.evaluation.novelty import TrainingCoverage
    from hzexp.model.export import export_model
    from hzexp.model.hybrid import build_hybrid_z
    from hzexp.model.pdf import CalibratedPdf
    from hzexp.model.preprocessing import fit_magnitude_standardiser

    dataset = Dataset.open(data)
    config = load_pipeline(PIPELINE)
    architecture = dataclasses.replace(config.model, output=output)
    cutout = config.preprocess.cutout
    keras.utils.set_random_seed(0)
    scaler = fit_magnitude_standardiser(magnitudes(dataset, np.arange(len(dataset))))
    calibration = (CalibratedPdf(architecture.pdf_z_max, 1.0, name="z_pdf")
                   if output == "pdf" else None)
    deployable = export_model(build_hybrid_z(architecture, cutout), cutout,
                              dataset.stored_size, *scaler, pdf=calibration)
    coverage = (TrainingCoverage.fit(magnitudes(dataset, np.arange(min(len(dataset), 14_000))))
                if output == "pdf" else None)
    os.chdir(store)
    tracking.configure_tracking("predict-bench")
    with tracking.start_run(f"predict-bench-{output}", tags={}):
        return tracking.log_deployable_model(deployable, dataset.stored_size, coverage)


def measure(data: Path, model_uri: str, batch_size: int, chunk_size: int,
            pdf_out: bool = False) -> dict:
    """One size, in this (fresh) process: end-to-end and bare-model galaxies/s, peak RSS
    (with `pdf_out`, every PDF also written to a qp file)."""
    import numpy as np

    from hzexp import tracking
    from hzexp.data.pipeline import magnitudes
    from hzexp.data.store import Dataset
    from hzexp.inference import predict_catalogue

    keras_model = tracking.load_hybrid_z_pyfunc(model_uri).model
    dataset = Dataset.open(data)
    rows = np.arange(min(len(dataset), BARE_BATCHES * batch_size))
    images, mags = dataset.read_images(rows), magnitudes(dataset, rows)
    batches = [{"image": images[i:i + batch_size], "mags": mags[i:i + batch_size]}
               for i in range(0, len(rows), batch_size)]
    keras_model.predict_on_batch(batches[0])  # trace once, as predict_catalogue does

    def bare_rate() -> float:
        started = time.perf_counter()
        for batch in batches:
            keras_model.predict_on_batch(batch)
        return len(rows) / (time.perf_counter() - started)

    # measured before and after the end-to-end run: on a shared machine the load drifts
    bare_before = bare_rate()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        report = predict_catalogue(data, Path(tmp) / "photoz.parquet", model_uri=model_uri,
                                   batch_size=batch_size, chunk_size=chunk_size,
                                   progress=False,
                                   pdf_out=Path(tmp) / "pdfs.hdf5" if pdf_out else None)
        end_to_end = report.n_galaxies / (time.perf_counter() - started)
    bare = (bare_before + bare_rate()) / 2
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"n": report.n_galaxies, "end_to_end": end_to_end,
            "streaming": report.galaxies_per_second, "bare": bare, "peak_rss_mb": peak_rss_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", help="MLflow model URI (default: an untrained "
                                            "default-architecture model in a temporary store)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--cache", type=Path, default=Path("data/bench"),
                        help="where the mock catalogues are kept")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--pdf", action="store_true",
                        help="also the PDF-output model with --pdf-out, against the point one")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # child process mode
    parser.add_argument("--pdf-out", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.model_uri, args.batch_size,
                                 args.chunk_size, args.pdf_out)))
        return
    if args.pdf and args.model_uri:
        sys.exit("--pdf compares the default architecture's two outputs: drop --model-uri")

    args.cache.mkdir(parents=True, exist_ok=True)
    datasets = {n: mock_dataset(args.cache.resolve(), n) for n in args.sizes}
    with tempfile.TemporaryDirectory() as store:
        env = dict(os.environ)
        models = {"point": args.model_uri}
        if args.model_uri is None:
            env["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(store) / 'mlflow.db'}"
            os.environ.update(env)
            smallest_data = datasets[min(args.sizes)]
            models = {output: default_model_uri(smallest_data, Path(store), output)
                      for output in (["point", "pdf"] if args.pdf else ["point"])}
        runs = {output: [] for output in models}
        for n, data in datasets.items():
            for output, model_uri in models.items():  # both outputs at one size back to back
                child = subprocess.run(
                    [sys.executable, __file__, "--measure", str(data), "--model-uri", model_uri,
                     "--batch-size", str(args.batch_size), "--chunk-size", str(args.chunk_size),
                     *(["--pdf-out"] if output == "pdf" else [])],
                    env=env, cwd=store, capture_output=True, text=True, check=False)
                if child.returncode:
                    sys.exit(f"measuring {n} galaxies ({output}) failed:\n"
                             f"{child.stderr[-3000:]}")
                runs[output].append(json.loads(child.stdout.strip().splitlines()[-1]))

    print(f"models {models}  batch {args.batch_size}  chunk {args.chunk_size}  "
          f"cpus {os.cpu_count()}  load average {os.getloadavg()[0]:.1f}")
    if "pdf" in runs:
        for point, pdf in zip(runs["point"], runs["pdf"]):
            print(f"{pdf['n']:>8} galaxies: PDF model with --pdf-out {pdf['end_to_end']:6.1f} "
                  f"gal/s vs point {point['end_to_end']:6.1f}: ratio "
                  f"{pdf['end_to_end'] / point['end_to_end']:.3f} (target >= 0.8); peak RSS "
                  f"{pdf['peak_rss_mb']:5.0f} MB vs {point['peak_rss_mb']:5.0f} MB")
        print(f"PDF run peak RSS {runs['pdf'][-1]['n']} / {runs['pdf'][0]['n']} galaxies: "
              f"{runs['pdf'][-1]['peak_rss_mb'] / runs['pdf'][0]['peak_rss_mb']:.3f} "
              "(target <= 1.2)")
    results = runs["point"]
    for r in results:
        print(f"{r['n']:>8} galaxies: end to end {r['end_to_end']:6.1f} gal/s (chunk loop "
              f"{r['streaming']:6.1f})  bare model {r['bare']:6.1f} gal/s  ratio "
              f"{r['end_to_end'] / r['bare']:.3f} (loop {r['streaming'] / r['bare']:.3f}; "
              f"target >= 0.9)  peak RSS {r['peak_rss_mb']:5.0f} MB")
    smallest, largest = results[0], results[-1]
    print(f"peak RSS {largest['n']} / {smallest['n']} galaxies: "
          f"{largest['peak_rss_mb'] / smallest['peak_rss_mb']:.3f} (target <= 1.2)")
    hours = KIDS_BRIGHT / largest["end_to_end"] / 3600
    print(f"extrapolated for {KIDS_BRIGHT:,} galaxies: {hours:.2f} h "
          f"at {largest['end_to_end']:.0f} gal/s")


if __name__ == "__main__":
    main()
