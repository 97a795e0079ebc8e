"""Finished chunks of an unfinished prediction, kept so a rerun resumes instead of restarting.

The work directory `.<out name>.parts/` next to the output holds one parquet part per
finished chunk (`part-<first row>.parquet`, written atomically), with `--pdf-out` the
chunk's PDFs before it (`pdf-<first row>.npy`), and `state.json`: the model (URI as given,
resolved version, run id), the dataset content hash and the PDF file asked for. A rerun with
the same arguments continues after the last part; a rerun that would mix models or datasets
in one catalogue, or add or drop the PDFs, is refused. The chunk size may change between
runs: parts are keyed by row.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hzexp._io import atomic_file
from hzexp.inference.errors import PredictionError

STATE_FILE = "state.json"
STATE_FORMAT = "hzexp-predict-parts/1"
#: state.json entries that must match for a resume: the pinned model URI (`models:/name/version`),
#: its run, the dataset content hash and the PDF file (the others are for people).
RESUME_KEYS = ("model", "model_run_id", "dataset_hash", "pdf_out")


class PartStore:
    """The work directory of the prediction writing `out`."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = out.with_name(f".{out.name}.parts")

    def parts(self) -> list[Path]:
        return sorted(self.path.glob("part-*.parquet"))

    def pdf_part(self, part: Path) -> Path:
        """The PDFs of the chunk whose predictions are `part`."""
        return part.with_name(f"pdf-{part.stem.removeprefix('part-')}.npy")

    def _discard(self, part: Path) -> None:
        part.unlink()
        self.pdf_part(part).unlink(missing_ok=True)

    def start(self, state: dict[str, str], n_rows: int) -> list[tuple[int, int]]:
        """Record `state` for a new run, or check it against the unfinished run's; return
        the row ranges [start, stop) of the catalogue's `n_rows` still to predict."""
        state_file = self.path / STATE_FILE
        if state_file.is_file():
            previous = json.loads(state_file.read_text())
            changed = [f"{k} {previous.get(k) or '-'} (now {state[k] or '-'})"
                       for k in RESUME_KEYS if previous.get(k) != state[k]]
            if changed:
                raise PredictionError(
                    f"{self.path}: an unfinished prediction with another "
                    f"{', '.join(changed)} is here; rerun it with its arguments to resume, "
                    "or pass --restart to discard it")
            return self._missing(n_rows)
        for part in self.parts():
            self._discard(part)
        self.path.mkdir(parents=True, exist_ok=True)
        with atomic_file(state_file) as tmp:
            tmp.write_text(json.dumps({"format": STATE_FORMAT, **state}, indent=2))
        return [(0, n_rows)] if n_rows else []

    def _missing(self, n_rows: int) -> list[tuple[int, int]]:
        """The row ranges no finished part covers. Parts need not be contiguous (workers of
        a cluster finish chunks out of order); one overlapping an earlier part is dropped."""
        missing, covered = [], 0
        for part in self.parts():
            first = int(part.stem.removeprefix("part-"))
            if first < covered:
                self._discard(part)
                continue
            if first > covered:
                missing.append((covered, first))
            covered = first + pq.ParquetFile(part).metadata.num_rows
        if covered < n_rows:
            missing.append((covered, n_rows))
        return missing

    def write_chunk(self, start: int, frame: pd.DataFrame, pdfs: np.ndarray | None) -> None:
        """A finished chunk: its PDFs (when kept) first, then its predictions, whose part
        marks it finished."""
        if pdfs is not None:
            self.write_pdfs(start, pdfs)
        self.write(start, frame)

    def write(self, start: int, frame: pd.DataFrame) -> None:
        with atomic_file(self.path / f"part-{start:012d}.parquet") as tmp:
            frame.to_parquet(tmp, index=False)

    def write_pdfs(self, start: int, pdfs: np.ndarray) -> None:
        """The chunk's PDFs, written before its predictions (`write`), whose part marks the
        chunk finished."""
        with atomic_file(self.pdf_part(self.path / f"part-{start:012d}.parquet")) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, np.asarray(pdfs, dtype=np.float32))

    def read_pdfs(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, PDFs) of every finished chunk in row order, one chunk in memory."""
        for part in self.parts():
            yield (int(part.stem.removeprefix("part-")),
                   np.load(self.pdf_part(part), mmap_mode="r"))

    def read_all(self) -> pd.DataFrame:
        """All parts in row order (object_id, ra, dec, z_phot: 28 bytes a galaxy)."""
        return pa.concat_tables([pq.read_table(p) for p in self.parts()]).to_pandas()

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
