"""A survey in shards: one catalogue from several dataset directories, as one file or as a
partitioned parquet dataset, with clashing ids refused and finished shards kept."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from hzexp.data.store import DatasetWriter
from hzexp.inference import PredictionError, predict_catalogue, read_predictions
from hzexp.inference.output import read_provenance
from hzexp.inference.shards import predict_shards
from tests.helpers.inference import leftovers


def shard(dataset, rows, path):
    """Rows `rows` of `dataset` written as a dataset directory of their own."""
    with DatasetWriter(path, dataset.stored_size, {"shard of": str(dataset.path)}) as writer:
        writer.append(dataset.catalogue.iloc[rows].drop(columns="image_index"),
                      dataset.read_images(rows))
    return path


@pytest.fixture(scope="module")
def shards(champion, tmp_path_factory):
    dataset = champion["dataset"]
    root = tmp_path_factory.mktemp("survey")
    return [shard(dataset, np.arange(0, 100), root / "shard-a"),
            shard(dataset, np.arange(100, len(dataset)), root / "shard-b")]


@pytest.fixture(scope="module")
def whole(champion, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "photoz.parquet"
    predict_catalogue(champion["dataset"].path, out, progress=False)
    return read_predictions(out)[0]


def test_shards_predict_as_one_catalogue_in_one_file(shards, whole, tmp_path):
    out = tmp_path / "photoz.parquet"
    report = predict_shards(shards, out, progress=False)
    frame, metadata = read_predictions(out)
    pd.testing.assert_frame_equal(frame, whole)
    assert report.n_galaxies == len(whole) and "2 shards" in report.summary()
    assert metadata["model_version"] == "1" and len(metadata["dataset_hash"]) == 64
    assert leftovers(tmp_path) == ["photoz.parquet"]


@pytest.mark.slow
def test_shards_on_a_local_cluster_share_one_cluster_and_predict_the_same(shards, whole,
                                                                          tmp_path,
                                                                          monkeypatch):
    import dask.distributed

    started = []

    class CountedCluster(dask.distributed.LocalCluster):
        def __init__(self, *args, **kwargs):
            started.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(dask.distributed, "LocalCluster", CountedCluster)
    out = tmp_path / "photoz.parquet"
    predict_shards(shards, out, progress=False, chunk_size=64, workers=2)
    pd.testing.assert_frame_equal(read_predictions(out)[0], whole)
    assert len(started) == 1  # not one cluster (and model load) per shard
    assert leftovers(tmp_path) == ["photoz.parquet"]


def test_a_directory_output_is_one_parquet_file_per_shard_read_as_one_table(shards, whole,
                                                                           tmp_path):
    import dask.dataframe as dd

    out = tmp_path / "photoz"
    pattern = str(shards[0].parent / "shard-*")
    predict_shards([pattern], f"{out}/", progress=False, chunk_size=64)
    assert sorted(p.name for p in out.iterdir()) == ["shard-a.parquet", "shard-b.parquet"]
    for name, part in (("shard-a", shards[0]), ("shard-b", shards[1])):
        provenance = read_provenance(out / f"{name}.parquet")
        assert provenance["dataset_hash"] in (part / "manifest.json").read_text()
    expected = whole.reset_index(drop=True)
    # the same values whichever reader (its string type for source_id may differ)
    for table in (pq.read_table(out).to_pandas(), pd.read_parquet(out),
                  dd.read_parquet(out).compute().reset_index(drop=True)):
        pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    # rerun after an interruption: finished shards are kept, not predicted again
    (out / "shard-b.parquet").unlink()
    first = (out / "shard-a.parquet").stat().st_mtime_ns
    report = predict_shards([pattern], out, progress=False)
    assert report.shards[0] is None and report.shards[1] is not None
    assert (out / "shard-a.parquet").stat().st_mtime_ns == first
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected, check_dtype=False)


def test_shards_with_clashing_ids_are_refused_naming_them(champion, shards, tmp_path):
    clash = shard(champion["dataset"], np.arange(90, 110), tmp_path / "overlap")
    ids = champion["dataset"].catalogue["object_id"].to_numpy()
    with pytest.raises(PredictionError, match=r"--data: 20 object_id\(s\) appear in more than "
                                              rf"one shard: {ids[90]} \(.*shard-a, .*overlap\)"):
        predict_shards([*shards, clash], tmp_path / "z.parquet", progress=False)
    assert not (tmp_path / "z.parquet").exists()
    with pytest.raises(PredictionError, match=r"--data .*nothing-\*: matches no dataset"):
        predict_shards([str(tmp_path / "nothing-*")], tmp_path / "z.parquet", progress=False)
