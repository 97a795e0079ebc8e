"""Dataset chunks read ahead in a background thread, so the model is rarely idle.

TensorFlow releases the GIL while it computes, so one reader thread filling a bounded
queue overlaps the HDF5 reads (and their pixel checks) with prediction. The queue bound
keeps at most `depth` chunks waiting: memory does not grow with the catalogue.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hzexp.data.pipeline import magnitudes
from hzexp.data.store import Dataset

_POLL_SECONDS = 0.1
_DONE = object()


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
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            first = start
            for rows, images in dataset.iter_chunks(np.arange(start, len(dataset)), chunk_size):
                mags = magnitudes(dataset, np.arange(first, first + len(rows)))
                if not put(Chunk(first, rows, images, mags)):
                    return
                first += len(rows)
            put(_DONE)
        except BaseException as err:  # handed to the consumer, which re-raises it
            put(err)

    reader = threading.Thread(target=read, name="hzexp-predict-reader", daemon=True)
    reader.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()
