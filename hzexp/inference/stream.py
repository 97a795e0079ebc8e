"""Dataset chunks read ahead in a background thread, so the model is rarely idle."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hzexp.background import in_background
from hzexp.data.pipeline import magnitudes
from hzexp.data.store import Dataset


@dataclass
class Chunk:
    """Catalogue rows [start, start + len) with their raw stamps and magnitudes."""

    start: int
    rows: pd.DataFrame
    images: np.ndarray
    mags: np.ndarray


def prefetched_chunks(dataset: Dataset, start: int, chunk_size: int,
                      depth: int = 2) -> Iterator[Chunk]:
    """Chunks of catalogue rows `start`..end, in order, read up to `depth` chunks ahead.

    An error in the reader (a non-finite pixel, an unreadable file) is raised here, in the
    consumer; leaving the loop early (an error or interrupt there) stops the reader.
    """
    def chunks() -> Iterator[Chunk]:
        first = start
        for rows, images in dataset.iter_chunks(np.arange(start, len(dataset)), chunk_size):
            mags = magnitudes(dataset, np.arange(first, first + len(rows)))
            yield Chunk(first, rows, images, mags)
            first += len(rows)

    return in_background(chunks, depth, "hzexp-predict-reader")
