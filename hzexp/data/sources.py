"""Resolve a pipeline's `data` section to an opened dataset directory.

`source: mock` generates the built-in mock survey at `path` on first use and reuses it
afterwards (checking that the cached one was made with the requested size and seed);
`source: directory` opens an existing dataset directory (ingested KiDS data, for example).
"""

from __future__ import annotations

from pathlib import Path

from hzexp.config import DataConfig
from hzexp.data.store import Dataset, DatasetError


def resolve_dataset(data: DataConfig, progress: bool = True) -> Dataset:
    """Open the dataset a pipeline names, building the mock first when needed."""
    path = Path(data.path)
    if data.source == "directory":
        return Dataset.open(path)
    if not path.exists():
        from hzexp.data.mock import simulate

        simulate(path, n_galaxies=data.mock.n_galaxies, seed=data.mock.seed, progress=progress)
    dataset = Dataset.open(path)
    made = dataset.manifest.get("provenance", {})
    wanted = {"n_galaxies": data.mock.n_galaxies, "seed": data.mock.seed}
    found = {k: made.get(k) for k in wanted}
    if found != wanted:
        raise DatasetError(f"{path}: cached mock was made with {found}, the pipeline asks for "
                           f"{wanted}; delete the directory or point data.path elsewhere")
    return dataset
