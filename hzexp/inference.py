"""A logged or registered Hybrid-z model applied to dataset rows, chunk by chunk.

The model carries its own preprocessing, so it is fed raw dataset rows: uncropped images
and raw magnitudes, exactly what `images.h5` and `catalogue.parquet` hold.
"""

from __future__ import annotations

import numpy as np

from hzexp.data.pipeline import magnitudes
from hzexp.data.store import Dataset


def predict_dataset_rows(model, dataset: Dataset, rows: np.ndarray,
                         chunk_size: int = 2048) -> np.ndarray:
    """z_phot of catalogue rows `rows` (in that order) from a pyfunc model."""
    rows = np.asarray(rows, dtype=np.int64)
    out = [np.asarray(model.predict({"image": dataset.read_images(part),
                                     "mags": magnitudes(dataset, part)})).reshape(-1)
           for part in np.array_split(rows, max(1, -(-len(rows) // chunk_size)))]
    return np.concatenate(out).astype(np.float64) if out else np.empty(0)
