"""The out-of-coverage flag: is a galaxy like those the model was trained on? (ANNz2's
`inTrainFlag` idea.)

A network extrapolates silently, and its PDF then need not be wider: a galaxy whose
magnitudes and colours lie far from every training galaxy gets a flag instead. The rule, in
the magnitude-only baselines' feature space (the 9 magnitudes and 8 adjacent colours,
missing bands filled with the training median, standardised on the training split): the
distance to the galaxy's k-th nearest training galaxy is compared with the same distance of
the training galaxies themselves (to their k-th nearest other training galaxy); a galaxy
is `in_train_coverage` when its distance is at most that distribution's `quantile`. So
about 1 - quantile of galaxies drawn like the training set are flagged, and many more of a
sample unlike it.

The state is plain arrays (`save` / `load`), so it travels inside a logged model as an
`.npz` file with no pickled code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.neighbors import NearestNeighbors

from hzexp.evaluation.baselines import magnitude_features

DEFAULT_K = 10
DEFAULT_QUANTILE = 0.99
#: The flag's column in a PDF model's answers and catalogues.
COVERAGE_COLUMN = "in_train_coverage"


@dataclass
class TrainingCoverage:
    """The training set's features and the distance threshold of the flag."""

    features: np.ndarray      # (n_train, 17) standardised training features
    fill: np.ndarray          # (9,) training medians that replace missing magnitudes
    mean: np.ndarray          # (17,) feature means and scales of the standardisation
    scale: np.ndarray
    k: int
    quantile: float
    threshold: float

    @classmethod
    def fit(cls, train_mags, k: int = DEFAULT_K,
            quantile: float = DEFAULT_QUANTILE) -> TrainingCoverage:
        mags = np.asarray(train_mags, dtype=np.float64)
        if len(mags) <= k:
            raise ValueError(f"the coverage flag needs more than k = {k} training galaxies, "
                             f"got {len(mags)}")
        fill = np.nan_to_num(np.nanmedian(mags, axis=0), nan=0.0)
        raw = magnitude_features(np.where(np.isnan(mags), fill, mags))
        mean, scale = raw.mean(axis=0), raw.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        features = ((raw - mean) / scale).astype(np.float32)
        # each training galaxy's k-th nearest *other* galaxy: k + 1 neighbours, self first
        distance, _ = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
        threshold = float(np.quantile(distance[:, k], quantile))
        return cls(features, fill, mean, scale, k, quantile, threshold)

    def flags(self, mags) -> np.ndarray:
        """`in_train_coverage` of each galaxy of raw (N, 9) magnitudes (NaN allowed)."""
        mags = np.asarray(mags, dtype=np.float64)
        raw = magnitude_features(np.where(np.isnan(mags), self.fill, mags))
        features = ((raw - self.mean) / self.scale).astype(np.float32)
        distance, _ = self._index.kneighbors(features, n_neighbors=self.k)
        return distance[:, -1] <= self.threshold

    @property
    def _index(self) -> NearestNeighbors:
        if not hasattr(self, "_fitted"):
            self._fitted = NearestNeighbors().fit(self.features)
        return self._fitted

    def rule(self) -> dict[str, float]:
        """What a run logs about the flag."""
        return {"coverage_k": self.k, "coverage_quantile": self.quantile,
                "coverage_threshold": self.threshold}

    def save(self, path: Path) -> None:
        np.savez(path, features=self.features, fill=self.fill, mean=self.mean,
                 scale=self.scale, k=self.k, quantile=self.quantile, threshold=self.threshold)

    @classmethod
    def load(cls, path: str | Path) -> TrainingCoverage:
        with np.load(path) as stored:
            return cls(stored["features"], stored["fill"], stored["mean"], stored["scale"],
                       int(stored["k"]), float(stored["quantile"]), float(stored["threshold"]))
