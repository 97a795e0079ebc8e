"""The photo-z catalogue file: parquet or FITS, with its provenance in the file itself.

A catalogue travels without its MLflow store, so the file says which model made it (name,
version, run id, URI), from which dataset (content hash) and with which hzexp: parquet
schema metadata `hzexp.<key>`, or FITS header keywords (8 characters, `FITS_KEYWORDS`).
Every file is written under a temporary name and renamed when complete, so a killed run
never leaves a file that looks finished.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.io import fits
from astropy.table import Table

from hzexp._io import atomic_file
from hzexp.evaluation.novelty import COVERAGE_COLUMN

#: `source_id`: the galaxy's ID in its source catalogue (`hzexp.data.kids.ids.source_ids`).
ID_COLUMNS = ("object_id", "source_id", "ra", "dec")
#: A point model's catalogue; a PDF model's has its summaries after `z_phot`
#: (`hzexp.evaluation.pdfs.SUMMARY_COLUMNS`) and then `in_train_coverage`.
OUTPUT_COLUMNS = (*ID_COLUMNS, "z_phot")
PARQUET_PREFIX = "hzexp."
FITS_KEYWORDS = {"model_uri": "MODELURI", "model_name": "MODELNAM", "model_version": "MODELVER",
                 "model_run_id": "MODELRUN", "dataset_hash": "DATAHASH",
                 "hzexp_version": "HZEXPVER"}


def is_fits_output(out: Path) -> bool:
    return out.name.lower().endswith(".fits")


def stats_path(out: Path) -> Path:
    """`<out stem>_stats.csv` next to the catalogue."""
    return out.with_name(f"{out.stem}_stats.csv")


def catalogue_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of `frame` a catalogue holds, in order: the IDs, then the estimates
    (`z_phot` and, from a PDF model, its other summaries and its coverage flag)."""
    return [*ID_COLUMNS, *(c for c in frame.columns if c.startswith("z_phot")),
            *(c for c in frame.columns if c == COVERAGE_COLUMN)]


def write_catalogue(frame: pd.DataFrame, out: Path, metadata: dict[str, str]) -> None:
    """Write `frame` (`catalogue_columns`) to `out`: FITS if it ends in .fits, else parquet.

    `metadata` keys are those of `FITS_KEYWORDS`.
    """
    frame = frame.loc[:, catalogue_columns(frame)]
    with atomic_file(out) as tmp:
        if is_fits_output(out):
            table = Table.from_pandas(frame)
            table.meta.update({FITS_KEYWORDS[k]: v for k, v in metadata.items()})
            table.write(tmp, format="fits")
        else:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            extra = {f"{PARQUET_PREFIX}{k}": v for k, v in metadata.items()}
            pq.write_table(table.replace_schema_metadata({**table.schema.metadata, **extra}),
                           tmp)


def read_predictions(path: str | Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """A catalogue written by `predict_catalogue` and its provenance (FITS_KEYWORDS keys)."""
    path = Path(path)
    if is_fits_output(path):
        table = Table.read(path, format="fits")
        table.convert_bytestring_to_unicode()  # FITS strings (source_id) read back as bytes
        return table.to_pandas(), _fits_provenance(table.meta)
    table = pq.read_table(path)
    return table.to_pandas(), _parquet_provenance(table.schema.metadata)


def read_provenance(path: str | Path) -> dict[str, str]:
    """The provenance of the catalogue at `path` without reading its rows; empty for a file
    that is not an hzexp catalogue (or not parquet/FITS at all)."""
    path = Path(path)
    try:
        if is_fits_output(path):
            return _fits_provenance(fits.getheader(path, 1))
        return _parquet_provenance(pq.read_schema(path).metadata)
    except (OSError, IndexError, ValueError, pa.ArrowException):
        return {}


def _fits_provenance(header) -> dict[str, str]:
    by_keyword = {v: k for k, v in FITS_KEYWORDS.items()}
    return {by_keyword[k]: str(v) for k, v in header.items() if k in by_keyword}


def _parquet_provenance(schema_metadata: dict[bytes, bytes] | None) -> dict[str, str]:
    return {k.decode()[len(PARQUET_PREFIX):]: v.decode()
            for k, v in (schema_metadata or {}).items()
            if k.decode().startswith(PARQUET_PREFIX)}


def write_stats(table: pd.DataFrame, path: Path) -> None:
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False)
