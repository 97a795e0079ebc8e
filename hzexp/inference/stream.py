"""Dataset chunks read ahead in a background thread, so the model is rarely idle."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hzexp.background import in_background
from hzexp.data.store import Dataset


@dataclass
class Chunk:
    """Catalogue rows [start, start + len) with their raw stamps, magnitudes and PSF FWHMs."""

    start: int
    rows: pd.DataFrame
    images: np.ndarray
    mags: np.ndarray
    psf: np.ndarray


def chunk_bounds(ranges: list[tuple[int, int]], chunk_size: int) -> list[tuple[int, int]]:
    """The row ranges cut into chunks of at most `chunk_size` rows, never across a range's
    end (so a chunk never overlaps a part that is already finished)."""
    return [(first, min(first + chunk_size, stop)) for start, stop in ranges
            for first in range(start, stop, chunk_size)]


def read_chunk(dataset: Dataset, first: int, stop: int) -> Chunk:
    """Catalogue rows [first, stop) with their stamps, magnitudes and PSF FWHMs."""
    rows = np.arange(first, stop)
    return Chunk(first, dataset.catalogue.iloc[rows].reset_index(drop=True),
                 dataset.read_images(rows), dataset.magnitude_array[rows], dataset.psf_array[rows])


def prefetched_chunks(dataset: Dataset, ranges: list[tuple[int, int]], chunk_size: int,
                      depth: int = 2) -> Iterator[Chunk]:
    """Chunks of the catalogue row `ranges`, in order, read up to `depth` chunks ahead.

    An error in the reader (a non-finite pixel, an unreadable file) is raised here, in the
    consumer; leaving the loop early (an error or interrupt there) stops the reader.
    """
    def chunks() -> Iterator[Chunk]:
        for first, stop in chunk_bounds(ranges, chunk_size):
            yield read_chunk(dataset, first, stop)

    return in_background(chunks, depth, "hzexp-predict-reader")
