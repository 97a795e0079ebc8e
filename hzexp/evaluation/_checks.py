"""Input validation shared by the evaluation modules.

Metrics computed on silently broadcast, empty or NaN-polluted arrays look plausible and are
wrong, so every public entry point funnels its arrays through these checks and fails with a
message that names the offending argument.
"""

from __future__ import annotations

import numpy as np


def finite_1d(values, name: str) -> np.ndarray:
    """Return `values` as a non-empty 1-D float array with only finite entries."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    n_bad = int(np.count_nonzero(~np.isfinite(array)))
    if n_bad:
        raise ValueError(f"{name} has {n_bad} non-finite value(s) (NaN or inf)")
    return array


def same_length(**arrays: np.ndarray) -> None:
    """Raise if the named arrays do not all have the same length."""
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise ValueError(f"length mismatch: {described}")


def require_columns(frame, columns) -> None:
    """Raise naming every column of `columns` that `frame` lacks."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"frame is missing required column(s): {', '.join(missing)}")
