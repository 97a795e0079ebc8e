"""Catalogue prediction on a Dask cluster against the in-process prediction, on one machine.

On the same mock and the same (untrained, default-architecture) model, in one run:
- end to end as a user runs it: `hzexp predict` against `hzexp predict --workers W`, each a
  fresh process (its imports, model loads, cluster start and output included), alternated
  `--repeats` times: target ratio >= 0.85 for 2 workers on 2 cores (the engine costs under
  15%);
- inside one warm process: the rate of a started cluster (`--scheduler`), the scheduler's
  overhead per task (a round of no-op tasks) and the chunk size that keeps it under 2% of a
  task's prediction time, and each worker's peak RSS: target RSS(largest) / RSS(smallest)
  <= 1.2;
- on paper: hours for 10^9 galaxies on N nodes from the measured rate per core.

    python bench/predict_dask.py                  # 20k and 100k galaxies, 2 workers
    python bench/predict_dask.py --sizes 20000 --workers 2 --repeats 3

Mocks are cached under --cache like bench/predict_scale.py's.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from predict_scale import default_model_uri, mock_dataset  # noqa: E402

NOOP_TASKS = 2000
SURVEY = 10**9


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_predict(data: Path, model_uri: str, chunk_size: int, **cluster) -> float:
    """Galaxies per second of one `predict_catalogue` call, end to end."""
    from hzexp.inference import predict_catalogue

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        report = predict_catalogue(data, Path(tmp) / "photoz.parquet", model_uri=model_uri,
                                   chunk_size=chunk_size, progress=False, **cluster)
        return report.n_galaxies / (time.perf_counter() - started)


def command_rate(data: Path, n_galaxies: int, model_uri: str, chunk_size: int,
                 *options: str) -> float:
    """Galaxies per second of one `hzexp predict` command in a fresh process, end to end."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hzexp", "predict", "--data", str(data),
                        "--out", str(Path(tmp) / "photoz.parquet"), "--model-uri", model_uri,
                        "--chunk-size", str(chunk_size), "--no-progress", *options],
                       check=True, capture_output=True)
        return n_galaxies / (time.perf_counter() - started)


def commands(data: Path, n_galaxies: int, model_uri: str, chunk_size: int, workers: int,
             repeats: int) -> list[tuple[float, float]]:
    """(in-process, cluster) rates of the two commands, alternated `repeats` times."""
    return [(command_rate(data, n_galaxies, model_uri, chunk_size),
             command_rate(data, n_galaxies, model_uri, chunk_size, "--workers", str(workers)))
            for _ in range(repeats)]


def on_cluster(data: Path, model_uri: str, chunk_size: int, workers: int) -> dict:
    """In this process, on a started local cluster (the one `--workers` starts): the rate of
    a prediction, the scheduler overhead per task, and the workers' peak RSS."""
    from hzexp.inference.cluster import cluster_client

    with cluster_client(workers, None) as client:
        rate = timed_predict(data, model_uri, chunk_size, scheduler=client.scheduler.address)
        noop_started = time.perf_counter()
        client.gather(client.map(int, range(NOOP_TASKS), pure=False))
        overhead = (time.perf_counter() - noop_started) / NOOP_TASKS * workers
        rss = list(client.run(_peak_rss_mb).values())
    return {"rate": rate, "task_overhead_s": overhead, "worker_rss_mb": max(rss)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2,
                        help="alternated pairs of commands at each size")
    parser.add_argument("--cache", type=Path, default=Path("data/bench"))
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    datasets = {n: mock_dataset(args.cache.resolve(), n) for n in args.sizes}
    with tempfile.TemporaryDirectory() as store:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(store) / 'mlflow.db'}"
        model_uri = default_model_uri(datasets[min(args.sizes)], Path(store))
        results = {}
        for n, data in datasets.items():
            pairs = commands(data, n, model_uri, args.chunk_size, args.workers, args.repeats)
            results[n] = {"pairs": pairs, "in_process": timed_predict(data, model_uri,
                                                                      args.chunk_size),
                          **on_cluster(data, model_uri, args.chunk_size, args.workers)}

    print(f"{args.workers} workers x 1 thread, chunk {args.chunk_size}, cpus {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    for n, r in results.items():
        ratios = [cluster / alone for alone, cluster in r["pairs"]]
        print(f"{n:>8} galaxies, commands end to end: `hzexp predict` "
              f"{statistics.median(a for a, _ in r['pairs']):6.1f} gal/s, with --workers "
              f"{args.workers} {statistics.median(c for _, c in r['pairs']):6.1f} gal/s; "
              f"ratio {statistics.median(ratios):.3f} (median of {len(ratios)}: "
              f"{', '.join(f'{x:.3f}' for x in ratios)}; target >= 0.85)")
        print(f"{n:>8} galaxies, warm process: in process {r['in_process']:6.1f} gal/s, on the "
              f"started cluster {r['rate']:6.1f} gal/s (ratio {r['rate'] / r['in_process']:.3f})"
              f"; worker peak RSS {r['worker_rss_mb']:5.0f} MB")
    sizes = sorted(results)
    print(f"worker peak RSS {sizes[-1]} / {sizes[0]} galaxies: "
          f"{results[sizes[-1]]['worker_rss_mb'] / results[sizes[0]]['worker_rss_mb']:.3f} "
          "(target <= 1.2)")
    largest = results[sizes[-1]]
    per_worker = largest["rate"] / args.workers
    overhead = largest["task_overhead_s"]
    print(f"scheduler overhead {overhead * 1e3:.2f} ms per task; under 2% of a task from "
          f"{overhead / 0.02 * per_worker:.0f} galaxies per chunk at {per_worker:.0f} "
          f"gal/s per worker (chunk {args.chunk_size}: "
          f"{overhead / (args.chunk_size / per_worker):.2%})")
    per_core = largest["rate"] / (os.cpu_count() or 1)
    for nodes, cores in ((10, 16), (100, 16), (100, 64)):
        hours = SURVEY / (per_core * nodes * cores) / 3600
        print(f"10^9 galaxies on {nodes} nodes x {cores} cores at {per_core:.0f} gal/s per "
              f"core: {hours:.1f} h")


if __name__ == "__main__":
    main()
