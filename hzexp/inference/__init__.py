"""A registered Hybrid-z model applied to a whole catalogue: the `hzexp predict` library.

`catalogue` drives it (`predict_catalogue`, `predict_dataset_rows`), `cluster` runs its
chunks on a Dask cluster and `shards` predicts several dataset directories as one catalogue;
`source` opens what is
read (a dataset directory or an official Hybrid-z FITS table), `model` pins and loads the
registered version, `stream` reads chunks ahead in a background thread, `parts` keeps
finished chunks so an interrupted run resumes, `output` writes the catalogue atomically
with its provenance, `pdf_file` a PDF model's PDFs in qp's format, `target` keeps it
from destroying its input or another file and two runs from writing one output, and
`errors` holds the one exception they raise (`PredictionError`).

The names are exported lazily: the CLI imports `PredictionError` at start-up, and that must
not pull in TensorFlow and MLflow, which the driver needs.
"""

import importlib

_EXPORTS = {
    "DEFAULT_MODEL_URI": "catalogue", "PredictionReport": "catalogue",
    "predict_catalogue": "catalogue", "predict_dataset_rows": "catalogue",
    "PredictionError": "errors", "read_predictions": "output", "OUTPUT_COLUMNS": "output",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
