"""Train/validation/test assignment of a labelled dataset (paper 3.2: 70/15/15).

Assignments are by catalogue row and seeded, so a run's split is reproducible from its
params and is also stored with the run (by object_id) for anyone re-evaluating it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, train_test_split

from hzexp.config import SplitConfig

SPLITS = ("train", "val", "test")


def assign_splits(n_rows: int, split: SplitConfig) -> dict[str, np.ndarray]:
    """Sorted row positions of each split; every row lands in exactly one split."""
    rows = np.arange(n_rows)
    if n_rows < 3:
        raise ValueError(f"cannot split {n_rows} galaxies into train, val and test")
    train, rest = train_test_split(rows, train_size=split.train, random_state=split.seed)
    val, test = train_test_split(rest, train_size=split.val / (split.val + split.test),
                                 random_state=split.seed)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def split_table(object_ids: np.ndarray, assignment: dict[str, np.ndarray]) -> pd.DataFrame:
    """`object_id, split` table, the form in which a run stores its split."""
    labels = np.full(len(object_ids), "unused", dtype=object)  # e.g. dropped by n(z) smoothing
    for name, rows in assignment.items():
        labels[rows] = name
    return pd.DataFrame({"object_id": object_ids, "split": labels})


def kfold_assignments(n_rows: int, k: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Paper 5.1: k folds; in run i fold i validates, fold i+1 tests, the rest trains.

    Every galaxy is validated once, tested once and trained on k-2 times across the runs.
    """
    if k < 3:
        raise ValueError(f"k-fold needs k >= 3 (one fold each for validation and test), got {k}")
    if n_rows < k:
        raise ValueError(f"cannot make {k} folds from {n_rows} galaxies")
    folds = [np.sort(test) for _, test in KFold(k, shuffle=True, random_state=seed).split(
        np.arange(n_rows))]
    runs = []
    for i in range(k):
        val, test = folds[i], folds[(i + 1) % k]
        train = np.sort(np.concatenate([f for j, f in enumerate(folds)
                                        if j not in (i, (i + 1) % k)]))
        runs.append({"train": train, "val": val, "test": test})
    return runs
