"""Throughput and peak memory of writing a mock dataset.

Run it at two sizes to see that peak RSS does not grow with N (the mock streams blocks into
the writer):

    python bench/mock_speed.py --n-galaxies 20000
    python bench/mock_speed.py --n-galaxies 100000
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from hzexp.data.mock import MockSurvey, simulate


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-galaxies", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--out", type=Path, help="dataset directory (default: a temporary one)")
    args = parser.parse_args()

    MockSurvey()  # build/load the cached flux table outside the timed part
    baseline = peak_rss_mb()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch) / "mock"
        start = time.perf_counter()
        simulate(out, args.n_galaxies, seed=args.seed, chunk_size=args.chunk_size,
                 progress=False, overwrite=True)
        elapsed = time.perf_counter() - start
        size_gb = sum(f.stat().st_size for f in out.iterdir()) / 1e9
    print(f"n_galaxies: {args.n_galaxies}  chunk_size: {args.chunk_size}")
    print(f"time: {elapsed:.1f} s  -> {args.n_galaxies / elapsed:.0f} galaxies/s")
    print(f"peak RSS: {peak_rss_mb():.0f} MB (after imports and setup: {baseline:.0f} MB)")
    print(f"dataset size: {size_gb:.2f} GB")


if __name__ == "__main__":
    main()
