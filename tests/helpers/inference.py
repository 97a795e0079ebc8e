"""Helpers of the prediction tests: the champion's in-process predictions, leftover files,
and official-layout FITS tables cut from a dataset."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from hzexp import tracking
from hzexp.config import load_pipeline
from hzexp.data.store import Dataset
from hzexp.experiment import tracked_training
from hzexp.inference import predict_dataset_rows
from tests.helpers import use_private_tracking

CHUNK = 64
OFFICIAL_MAGS = ("umag", "gmag", "rmag", "imag", "Zmag", "Ymag", "Jmag", "Hmag", "KSmag")


def in_process(dataset, rows=None):
    model = tracking.load_pyfunc("models:/hybrid-z@champion")
    return predict_dataset_rows(model, dataset, np.arange(len(dataset)) if rows is None else rows)


def leftovers(directory, *keep):
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def official_table(path, dataset, rows, stamp_size, drop=()):
    """An official-layout Hybrid-z table of dataset `rows`, stamps centre-cut to `stamp_size`."""
    catalogue = dataset.catalogue.iloc[rows]
    start = (dataset.stored_size - stamp_size) // 2
    table = Table()
    table["KiDS_ID"] = [f"KiDS J{k:06d}.000+00.0000" for k in rows]
    table["RA"], table["DEC"] = catalogue["ra"].to_numpy(), catalogue["dec"].to_numpy()
    table["image"] = dataset.read_images(rows)[:, start:start + stamp_size,
                                               start:start + stamp_size]
    table["Zspec"] = catalogue["z_spec"].to_numpy()
    for name, band in zip(OFFICIAL_MAGS, ("u", "g", "r", "i", "Z", "Y", "J", "H", "Ks")):
        table[name] = np.nan_to_num(catalogue[f"mag_{band}"].to_numpy(), nan=99.0)
    table.remove_columns(list(drop))
    table.write(path)
    return path


def registered_champion(smoke_pipeline, tmp_path_factory, overrides=()):
    """A private MLflow store whose `hybrid-z@champion` is a 1-epoch smoke training run
    (with `overrides` to the smoke pipeline, e.g. a PDF output).

    A generator for fixtures (one ~10 s training per fixture scope): MLFLOW_TRACKING_URI
    and the working directory (./mlruns artifacts) stay set for the scope's tests.
    """
    root = tmp_path_factory.mktemp("registry")
    with pytest.MonkeyPatch.context() as patch:
        use_private_tracking(patch, root)
        config = load_pipeline(smoke_pipeline, ["training.epochs=1", "baselines.mlp=false",
                                                "baselines.knn=false", *overrides])
        outcome = tracked_training(config)
        dataset = Dataset.open(config.data.path)
        registration = tracking.register_model(outcome.model_uri, 0.1, dataset.content_hash,
                                               {}, {})
        assert registration.alias == "champion"
        yield {"dataset": dataset, "run_id": outcome.run_id, "version": registration.version,
               "result": outcome.result}
