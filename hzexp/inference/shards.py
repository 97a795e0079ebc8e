"""A survey in shards: several dataset directories predicted as one catalogue.

Deep surveys come as many dataset directories (one per tile or sky region). `--data` takes
several of them, or a glob, in the order given (a glob's matches sorted by name); their
`object_id`s must be unique across all of them, which is checked before anything is
predicted, naming the clashing ids and their shards. The model URI is resolved once, so an
alias that moves while the survey runs cannot give two shards two versions; with `workers`
one local Dask cluster predicts every shard, its workers loading the model once.

Each shard is predicted by `predict_catalogue`, so it keeps every promise (order,
provenance, atomic output, resume, the lock) shard by shard. The output is either one file
(`--out photoz.parquet`), the shards' catalogues concatenated in order, or with `--out DIR/`
a partitioned parquet dataset with one file per shard (`DIR/<shard name>.parquet`, each
carrying its shard's provenance), which pyarrow, pandas and dask read as one table. Such a
directory is complete when the command succeeds; every file in it is complete at any time.
"""

from __future__ import annotations

import glob
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from hzexp import tracking
from hzexp.data.store import CATALOGUE_FILE, MANIFEST_FILE
from hzexp.inference.catalogue import PredictionReport, predict_catalogue
from hzexp.inference.cluster import cluster_client
from hzexp.inference.errors import PredictionError
from hzexp.inference.model import lookup_source, pinned_uri
from hzexp.inference.output import read_predictions, read_provenance, write_catalogue
from hzexp.inference.target import check_replaced_hash, check_targets, output_lock

#: Clashing ids named in the refusal, at most.
NAMED_CLASHES = 5


def expand_inputs(data: list[str | Path]) -> list[Path]:
    """The shard directories of `--data`: each entry a directory or a glob pattern."""
    shards: list[Path] = []
    for entry in map(str, data):
        if glob.has_magic(entry):
            matches = sorted(Path(m) for m in glob.glob(entry))
            if not matches:
                raise PredictionError(f"--data {entry}: matches no dataset directory")
            shards.extend(matches)
        else:
            shards.append(Path(entry))
    repeated = sorted({s for s in shards if shards.count(s) > 1})
    if repeated:
        raise PredictionError(f"--data: {repeated[0]} is given more than once")
    return shards


def check_unique_ids(shards: list[Path]) -> None:
    """Refuse shards whose object_ids clash, naming the ids and the shards holding them."""
    ids, owners = [], []
    for index, shard in enumerate(shards):
        path = shard / CATALOGUE_FILE
        try:
            column = pq.read_table(path, columns=["object_id"])["object_id"].to_numpy()
        except (OSError, KeyError) as err:
            raise PredictionError(f"{path}: cannot read its object_id "
                                  f"({str(err).splitlines()[0]})") from None
        ids.append(column)
        owners.append(np.full(len(column), index))
    ids, owners = np.concatenate(ids), np.concatenate(owners)
    order = np.argsort(ids, kind="stable")
    repeated = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if len(repeated):
        clashes = [f"{ids[order][i]} ({shards[owners[order][i]]}, "
                   f"{shards[owners[order][i + 1]]})" for i in repeated[:NAMED_CLASHES]]
        raise PredictionError(f"--data: {len(repeated)} object_id(s) appear in more than one "
                              f"shard: {'; '.join(clashes)}")


@dataclass
class ShardedReport:
    """What a sharded prediction wrote: one report per shard (None for a shard whose
    catalogue an interrupted run had already finished)."""

    out: Path
    shards: list[PredictionReport | None]
    n_galaxies: int

    def summary(self) -> str:
        done = [r for r in self.shards if r is not None]
        kept = len(self.shards) - len(done)
        return (f"wrote z_phot of {self.n_galaxies} galaxies in {len(self.shards)} shards to "
                f"{self.out}" + (f" ({kept} finished by an earlier run)" if kept else "")
                + f"; {sum(r.seconds for r in done):.1f} s in all")


def is_directory_output(out: str | Path) -> bool:
    """`--out DIR/` (or an existing directory): one parquet file per shard."""
    return str(out).endswith("/") or Path(out).is_dir()


def combined_hash(hashes: list[str]) -> str:
    """The content hash of a sharded catalogue: of its shards' hashes, in order."""
    return hashlib.sha256(",".join(hashes).encode()).hexdigest()


def predict_shards(data: list[str | Path], out: str | Path,
                   model_uri: str = "models:/hybrid-z@champion", overwrite: bool = False,
                   **options) -> ShardedReport:
    """Predict the shards of `data` (see the module) into `out`, a file or `DIR/`.
    `options` are `predict_catalogue`'s (batch and chunk sizes, cluster, restart, ...)."""
    shards = expand_inputs(data)
    missing = [s for s in shards if not (s / MANIFEST_FILE).is_file()]
    if missing:
        raise PredictionError(f"{missing[0]}: not a dataset directory (no {MANIFEST_FILE})")
    check_unique_ids(shards)
    model_uri = pinned_uri(lookup_source(model_uri))
    # one local cluster for every shard: its workers keep the model they loaded for the first
    workers = options.pop("workers", None) if options.get("scheduler") is None else None
    with cluster_client(workers, None) as cluster:
        if cluster is not None:
            options["scheduler"] = cluster.scheduler.address
        return _predict_shards(shards, out, model_uri, overwrite, options)


def _predict_shards(shards: list[Path], out: str | Path, model_uri: str, overwrite: bool,
                    options: dict) -> ShardedReport:
    if is_directory_output(out):
        directory = Path(out)
        directory.mkdir(exist_ok=True)
        reports = [_predict_shard(shard, directory / f"{shard.name}.parquet", model_uri,
                                  overwrite, options) for shard in shards]
        return ShardedReport(directory, reports, _n_rows(directory, shards))
    out = Path(out)
    recorded = [check_targets(shard, [out], overwrite) for shard in shards][0]
    work = out.with_name(f".{out.name}.shards")
    with output_lock(out):
        work.mkdir(exist_ok=True)
        reports = [_predict_shard(shard, work / f"{shard.name}.parquet", model_uri, True,
                                  options) for shard in shards]
        frames = [read_predictions(work / f"{shard.name}.parquet") for shard in shards]
        content_hash = combined_hash([metadata["dataset_hash"] for _, metadata in frames])
        check_replaced_hash(out, recorded, content_hash)
        write_catalogue(pd.concat([frame for frame, _ in frames], ignore_index=True), out,
                        {**frames[0][1], "dataset_hash": content_hash})
        shutil.rmtree(work)
    return ShardedReport(out, reports, sum(len(frame) for frame, _ in frames))


def _predict_shard(shard: Path, out: Path, model_uri: str, overwrite: bool,
                   options: dict) -> PredictionReport | None:
    """`predict_catalogue` of one shard, unless `out` already holds this model's catalogue
    of this shard (an interrupted sharded run finished it)."""
    manifest = json.loads((shard / MANIFEST_FILE).read_text())
    finished = read_provenance(out) if out.is_file() else {}
    made_by = tracking.ModelSource(finished.get("model_uri", ""),
                                   finished.get("model_name") or None,
                                   finished.get("model_version") or None, None)
    if (finished.get("dataset_hash") == manifest.get("content_hash")
            and pinned_uri(made_by) == model_uri):
        return None
    return predict_catalogue(shard, out, model_uri=model_uri, overwrite=overwrite, **options)


def _n_rows(directory: Path, shards: list[Path]) -> int:
    return sum(pq.ParquetFile(directory / f"{s.name}.parquet").metadata.num_rows
               for s in shards)
