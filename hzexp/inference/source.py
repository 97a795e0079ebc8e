"""What `predict_catalogue` reads: a dataset directory, or an official Hybrid-z FITS table.

A FITS table is converted with `read_official_table` into a dataset directory inside the
prediction's work directory, rather than streamed from the FITS file directly: the
conversion already validates the table, applies the KiDS object_id rule and computes the
content hash recorded with the predictions, and everything downstream (chunked reading,
resume, evaluation) then has one input format. The price is one temporary copy of the
pixels next to the output (as large as the table); it is reused by a resumed run and
removed with the work directory when the catalogue is written.
"""

from __future__ import annotations

import json
from pathlib import Path

from hzexp._io import file_sha256, first_binary_table, is_fits, open_fits
from hzexp.data.kids.official import OFFICIAL_Z_COLUMN, find_image_column, read_official_table
from hzexp.data.store import MANIFEST_FILE, Dataset, DatasetError
from hzexp.inference.errors import PredictionError
from hzexp.inference.model import ModelFacts

CONVERTED_DATASET = "dataset"


def open_data(data: Path, model: ModelFacts, work_dir: Path, progress: bool) -> Dataset:
    """The dataset to predict, checked against the model before any pixel is read.

    For a FITS table the stamp size is read from its header first, so a model whose cutout
    does not fit fails before a (possibly 25 GB) conversion starts.
    """
    try:
        if is_fits(data):
            stamp_size, z_column = _fits_layout(data)
            model.check_stamps(stamp_size, str(data))
            dataset = Dataset.open(_converted(data, work_dir / CONVERTED_DATASET, z_column,
                                              progress))
        else:
            dataset = Dataset.open(data)
            model.check_stamps(dataset.stored_size, str(data))
    except DatasetError as err:
        raise PredictionError(str(err)) from None
    return dataset


def _fits_layout(path: Path) -> tuple[int, str | None]:
    """(stamp size, redshift column or None) of an official-layout table, from its header."""
    if not path.is_file():
        raise PredictionError(f"{path}: FITS table not found")
    with open_fits(path, PredictionError) as hdul:
        hdu = first_binary_table(hdul, path, PredictionError)
        stamp_size = hdu.data.dtype[find_image_column(hdu, str(path))].shape[0]
        z_column = OFFICIAL_Z_COLUMN if OFFICIAL_Z_COLUMN in hdu.columns.names else None
    return stamp_size, z_column


def _converted(table: Path, dataset_dir: Path, z_column: str | None, progress: bool) -> Path:
    """`dataset_dir` converted from `table`, reusing a conversion of the same file."""
    manifest = dataset_dir / MANIFEST_FILE
    if manifest.is_file():
        inputs = json.loads(manifest.read_text())["provenance"]["inputs"]
        if inputs["table"]["sha256"] == file_sha256(table):
            return dataset_dir
    return read_official_table(table, dataset_dir, z_column=z_column, progress=progress,
                               overwrite=True)
