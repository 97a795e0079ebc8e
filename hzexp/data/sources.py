"""Resolve a pipeline's `data` section to an opened dataset directory.

`source: mock` generates the built-in mock survey at `path` on first use and reuses it
afterwards, after checking that the cached one was made with the requested size and seed
by the current mock model (its fingerprint: parameters and model version), and
rebuilding it when it was not;
`source: directory` opens an existing dataset directory (ingested KiDS data, for example).
"""

from __future__ import annotations

import logging
from pathlib import Path

from hzexp.config import DataConfig
from hzexp.data.store import Dataset, DatasetError

log = logging.getLogger(__name__)


def resolve_dataset(data: DataConfig, progress: bool = True) -> Dataset:
    """Open the dataset a pipeline names, building the mock first when needed.

    A pipeline's dataset is a training set: every galaxy needs a usable `z_spec`, checked
    here, before a run or a study starts.
    """
    dataset = _open_or_build(data, progress)
    dataset.check_labels("training")
    return dataset


def _open_or_build(data: DataConfig, progress: bool) -> Dataset:
    path = Path(data.path)
    if data.source == "directory":
        return Dataset.open(path)
    from hzexp.data.mock import MockParameters, mock_fingerprint, simulate

    params = MockParameters.with_overrides(data.mock.parameters, "data.mock.parameters.")
    wanted = {"n_galaxies": data.mock.n_galaxies, "seed": data.mock.seed,
              "mock_fingerprint": mock_fingerprint(params)}
    if path.exists():
        made = Dataset.open(path).manifest.get("provenance", {})
        found = {k: made.get(k) for k in wanted}
        if found == wanted:
            return Dataset.open(path)
        if made.get("source") != "mock":
            raise DatasetError(f"{path}: not a mock dataset, but the pipeline's data.source is "
                               f"mock; point data.path elsewhere")
        log.warning("%s: cached mock was made with %s, the pipeline asks for %s: rebuilding it",
                    path, found, wanted)
    simulate(path, n_galaxies=data.mock.n_galaxies, seed=data.mock.seed, progress=progress,
             overwrite=True, params=params)
    return Dataset.open(path)
