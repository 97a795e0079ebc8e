"""`predict --pdf-out`: every galaxy's PDF in qp's HDF5 format, written chunk by chunk.

The file is a `qp` histogram ensemble (LSST-DESC qp, what RAIL estimators write): `meta/`
holds `pdf_name` "hist" and `bins`, the redshift bin edges; `data/pdfs` the (N, bins)
densities (probability per unit redshift, each row integrating to 1); `ancil/object_id` the
galaxies' IDs, in catalogue order like the catalogue beside it. `qp.read(path)` gives the
ensemble back; `qp.iterator(path, chunk_size=...)` reads it in pieces, and
`qp.read(path, read_slice=slice(a, b))` a range of rows.

It is assembled from the prediction's finished chunks one chunk at a time, so memory stays
flat whatever the catalogue's size, and like the catalogue it is written under a temporary
name and renamed when complete.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from hzexp._io import atomic_file
from hzexp.evaluation.pdfs import PdfGrid


def write_pdf_file(out: Path, grid: PdfGrid, object_ids: np.ndarray,
                   chunks: Iterator[tuple[int, np.ndarray]]) -> None:
    """Write the qp file `out` of `len(object_ids)` PDFs from `chunks` of (first row, bin
    probabilities) covering every row in order."""
    import qp

    n_total = len(object_ids)
    with atomic_file(out) as tmp:
        groups = handle = ensemble = None
        covered = 0
        for start, probabilities in chunks:
            end = start + len(probabilities)
            ensemble = qp.Ensemble(
                qp.hist, data={"bins": grid.edges,
                               "pdfs": np.asarray(probabilities, dtype=np.float64) / grid.width},
                ancil={"object_id": np.asarray(object_ids[start:end], dtype=np.int64)})
            if handle is None:
                groups, handle = ensemble.initializeHdf5Write(str(tmp), npdf=n_total)
            ensemble.writeHdf5Chunk(groups, start, end)
            covered = end
        if ensemble is None or covered != n_total:
            if handle is not None:
                handle.close()
            raise ValueError(f"{out}: the PDF chunks cover {covered} of {n_total} rows")
        ensemble.finalizeHdf5Write(handle)
