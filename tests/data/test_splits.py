import numpy as np

from hzexp.config import SplitConfig
from hzexp.data.splits import assign_splits, split_table


def test_splits_partition_rows_70_15_15_reproducibly():
    a = assign_splits(1000, SplitConfig(seed=3))
    b = assign_splits(1000, SplitConfig(seed=3))
    assert [len(a[s]) for s in ("train", "val", "test")] == [700, 150, 150]
    assert np.array_equal(np.sort(np.concatenate(list(a.values()))), np.arange(1000))
    assert all(np.array_equal(a[s], b[s]) for s in a)
    assert not np.array_equal(a["test"], assign_splits(1000, SplitConfig(seed=4))["test"])


def test_split_table_labels_every_object():
    table = split_table(np.arange(10, 20), assign_splits(10, SplitConfig(seed=1)))
    assert table["split"].value_counts().to_dict() == {"train": 7, "test": 2, "val": 1}
    assert table["object_id"].tolist() == list(range(10, 20))


def test_kfold_rotates_validation_and_test_folds():
    from hzexp.data.splits import kfold_assignments

    runs = kfold_assignments(100, 5, seed=0)
    assert len(runs) == 5
    for i, run in enumerate(runs):
        assert [len(run[s]) for s in ("train", "val", "test")] == [60, 20, 20]
        assert np.array_equal(np.sort(np.concatenate(list(run.values()))), np.arange(100))
        assert np.array_equal(run["test"], runs[(i + 1) % 5]["val"])
    assert np.array_equal(np.sort(np.concatenate([r["test"] for r in runs])), np.arange(100))
