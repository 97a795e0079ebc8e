"""What a dataset made from KiDS inputs records about them: checksums and the KiDS IDs.

KiDS identifies objects by strings ("KiDS J085804.85-000432.95"), the dataset contract by a
unique int64 `object_id`. The mapping is a pure function of the ID string (the first 63 bits
of its SHA-256), so the same galaxy gets the same `object_id` in every dataset built from any
KiDS product (tiles + catalogue, the official Hybrid-z table) and predictions can be joined
back to KiDS catalogues without a lookup. KiDS `SeqNr` is not used: it restarts in every tile.
For 1.2 million IDs the chance of any collision is ~1e-7, and the dataset writer rejects
duplicates anyway. The reverse direction (object_id -> KiDS ID) is kept in a side table,
`kids_ids.parquet`, written next to the catalogue inside the writer's temporary directory so
it appears atomically with the rest of the dataset, and `source_ids` reads it back so
predictions and logged tables carry the KiDS ID (`source_id`) beside the object_id.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hzexp.data.store import Dataset, DatasetError, DatasetWriter

KIDS_ID_FILE = "kids_ids.parquet"
OBJECT_ID_RULE = "object_id = first 8 bytes (big-endian) of SHA-256(KiDS ID, stripped, UTF-8) >> 1"


def kids_id_text(kids_id: str | bytes) -> str:
    """The canonical form of a KiDS ID: text (FITS string columns may arrive as bytes),
    without the padding blanks of fixed-width FITS strings."""
    return (kids_id.decode() if isinstance(kids_id, bytes) else str(kids_id)).strip()


def kids_object_ids(kids_ids: pd.Series | np.ndarray) -> np.ndarray:
    """int64 object_ids (non-negative, 63-bit) of KiDS IDs; see `OBJECT_ID_RULE`."""
    return np.fromiter(
        (int.from_bytes(hashlib.sha256(kids_id_text(kid).encode()).digest()[:8], "big") >> 1
         for kid in kids_ids), dtype=np.int64, count=len(kids_ids))


class KidsIdTable:
    """Stream (object_id, kids_id) rows into `kids_ids.parquet` of a dataset being written."""

    def __init__(self, writer: DatasetWriter) -> None:
        self._path = writer.tmp_dir / KIDS_ID_FILE
        self._parquet: pq.ParquetWriter | None = None

    def append(self, object_ids: np.ndarray, kids_ids: pd.Series | np.ndarray) -> None:
        table = pa.table({"object_id": pa.array(object_ids, pa.int64()),
                          "kids_id": pa.array([kids_id_text(k) for k in kids_ids], pa.string())})
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._path, table.schema)
        self._parquet.write_table(table)

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()

    def __enter__(self) -> KidsIdTable:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def source_ids(dataset: Dataset) -> np.ndarray:
    """Each catalogue row's ID in its source catalogue, as text, in catalogue order.

    For a dataset built from KiDS inputs (`ingest`, `import-official`) that is the KiDS ID
    kept in `kids_ids.parquet`; a dataset without that table (the mock, whose object_id is
    its own ID) gets its object_id written as text, so the column is never empty.
    """
    object_ids = dataset.catalogue["object_id"].to_numpy()
    path = dataset.path / KIDS_ID_FILE
    if not path.is_file():
        return object_ids.astype(str).astype(object)
    table = pq.read_table(path, columns=["object_id", "kids_id"])
    if not np.array_equal(table["object_id"].to_numpy(), object_ids):
        raise DatasetError(f"{path}: object_id does not match the catalogue row by row")
    return table["kids_id"].to_numpy(zero_copy_only=False)
