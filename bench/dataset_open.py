"""What the content checks cost when a dataset is opened, at KiDS-Bright's size.

`Dataset.open` re-hashes the catalogue (to catch edits behind the manifest's back) and
compares images.h5's size and modification time with the manifest; the pixels are only
re-hashed by `hzexp verify`. This writes a dataset of --n-galaxies catalogue rows (default
1.2 million, KiDS-Bright) with 2 px stamps (the image check does not read pixels, so their
size does not matter) and times `Dataset.open` with and without the checks, best of
--repeats. Target: the checks add at most the time of reading the catalogue itself.

    python bench/dataset_open.py
    python bench/dataset_open.py --n-galaxies 100000 --repeats 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hzexp.data.store import MAG_COLUMNS, MAGERR_COLUMNS, Dataset, DatasetWriter

KIDS_BRIGHT = 1_200_000
STAMP = 2
ROWS_PER_APPEND = 200_000


def catalogue_rows(first: int, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """`n` contract rows with realistic value spreads (ids from `first`)."""
    z = rng.uniform(0.02, 0.8, n)
    columns = {"object_id": np.arange(first, first + n), "ra": rng.uniform(129, 141, n),
               "dec": rng.uniform(-2, 3, n), "z_spec": np.where(rng.random(n) < 0.2, z, np.nan)}
    for mag, err in zip(MAG_COLUMNS, MAGERR_COLUMNS):
        columns[mag] = rng.uniform(17, 24, n)
        columns[err] = rng.uniform(0.01, 0.2, n)
    columns["mag_r_auto"] = columns["mag_r"] - 0.1
    columns["masked"] = rng.random(n) < 0.15
    columns["galaxy_type"] = np.where(rng.random(n) < 0.4, "red", "blue")
    return pd.DataFrame(columns)


def write(path: Path, n_galaxies: int) -> None:
    rng = np.random.default_rng(0)
    with DatasetWriter(path, STAMP, {"bench": "dataset_open"}) as writer:
        for first in range(0, n_galaxies, ROWS_PER_APPEND):
            n = min(ROWS_PER_APPEND, n_galaxies - first)
            writer.append(catalogue_rows(first, n, rng),
                          rng.random((n, STAMP, STAMP, 4), dtype=np.float32))


def best_of(repeats: int, path: Path, check_content: bool) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        Dataset.open(path, check_content=check_content)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-galaxies", type=int, default=KIDS_BRIGHT)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ds"
        write(path, args.n_galaxies)
        plain = best_of(args.repeats, path, check_content=False)
        checked = best_of(args.repeats, path, check_content=True)
    print(f"{args.n_galaxies} galaxies: open {plain:.2f} s without content checks, "
          f"{checked:.2f} s with them: +{checked - plain:.2f} s (x{checked / plain:.2f})")


if __name__ == "__main__":
    main()
