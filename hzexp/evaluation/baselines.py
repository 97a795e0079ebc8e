"""Magnitude-only photo-z baselines trained on the same split as Hybrid-z.

They answer "what do the images add?": the paper compares Hybrid-z with ANNz2 on 9-band
KiDS+VIKING magnitudes, and these are the reproducible stand-ins, an ANNz2-like MLP and a
kNN regressor (both sklearn Pipelines taking the raw (N, 9) magnitude array, NaN allowed,
so they can be logged and reloaded like any sklearn model), and for PDF models ANNz2's KNN
PDFs built on the kNN regressor (`KnnPdfBaseline`).

Predictions are returned raw, not clipped to Hybrid-z's sigmoid range (0, 1): a baseline that
predicts z < 0 should be seen to do so in the metrics, not be quietly repaired.
"""

from __future__ import annotations

import copy

import numpy as np
from scipy import optimize, stats
from sklearn.impute import SimpleImputer
from sklearn.neighbors import KNeighborsRegressor
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from hzexp.evaluation._checks import finite_1d, same_length
from hzexp.evaluation.metrics import Dz, smad
from hzexp.evaluation.pdfs import PdfGrid, crps

N_BANDS = 9  # u g r i Z Y J H Ks, in wavelength order so neighbours make colours


def magnitude_features(mags) -> np.ndarray:
    """The 9 magnitudes followed by the 8 adjacent colours (u-g, g-r, ..., H-Ks).

    Colours carry the redshift information of the SED shape; the magnitudes keep the
    brightness. A NaN magnitude gives NaN in its colours: impute before calling this.
    """
    mags = _magnitude_array(mags, "mags")
    return np.hstack([mags, mags[:, :-1] - mags[:, 1:]])


def _magnitude_array(mags, name: str) -> np.ndarray:
    """`mags` as an (N, 9) float array; NaN is allowed (it means "not measured")."""
    mags = np.asarray(mags, dtype=float)
    if mags.ndim != 2 or mags.shape[1] != N_BANDS:
        raise ValueError(f"{name} must have shape (N, {N_BANDS}), got {mags.shape}")
    return mags


def _check_split(mags, z, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate one split's magnitudes and redshifts, naming the split in any error."""
    mags = _magnitude_array(mags, f"{name} magnitudes")
    z = finite_1d(z, f"{name} z")
    same_length(**{f"{name} magnitudes": mags, f"{name} z": z})
    return mags, z


def _fit_preprocessing(train_mags: np.ndarray) -> Pipeline:
    """Median imputation, features, standardisation, all fitted on the training split only.

    A NaN magnitude becomes the training median of its band before colours are formed, the
    same rule as the Hybrid-z magnitude input, so both models see the same information.
    """
    steps = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("features", FunctionTransformer(magnitude_features)),
            ("scale", StandardScaler()),
        ]
    )
    return steps.fit(train_mags)


def fit_mlp_baseline(
    X_train_mags,  # noqa: N803 - sklearn convention for design matrices
    z_train,
    X_val_mags,  # noqa: N803
    z_val,
    seed: int = 0,
    hidden_layer_sizes: tuple[int, ...] = (64, 64),
    max_epochs: int = 200,
    patience: int = 20,
    min_rel_improvement: float = 1e-3,
) -> Pipeline:
    """ANNz2-like MLP (ReLU, adam, squared loss) with early stopping on the given validation set.

    sklearn's own `early_stopping` would carve a validation set out of the training data;
    instead the network is trained epoch by epoch (`partial_fit`) and the weights with the
    lowest validation MSE are kept, stopping after `patience` epochs without a relative
    improvement of at least `min_rel_improvement`, as Hybrid-z's training does on the same
    validation split. Deterministic for a given seed; with the defaults a fit on 14k
    galaxies takes well under a minute on two cores even if it never stops early.
    """
    train_mags, z_train = _check_split(X_train_mags, z_train, "train")
    val_mags, z_val = _check_split(X_val_mags, z_val, "validation")
    preprocessing = _fit_preprocessing(train_mags)
    train_features = preprocessing.transform(train_mags)
    val_features = preprocessing.transform(val_mags)
    mlp = MLPRegressor(
        hidden_layer_sizes=hidden_layer_sizes,
        solver="adam",
        learning_rate_init=1e-3,
        batch_size=min(256, z_train.size),
        alpha=1e-4,
        random_state=seed,
    )
    best, best_loss, epochs_since_best = None, np.inf, 0
    # The matrices are tiny (batch x 64): multi-threaded BLAS only adds synchronisation,
    # and on a busy 2-core machine made an epoch ~15x slower than one thread does.
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(max_epochs):
            mlp.partial_fit(train_features, z_train)
            val_loss = float(np.mean((mlp.predict(val_features) - z_val) ** 2))
            if val_loss < best_loss * (1.0 - min_rel_improvement):
                best, best_loss, epochs_since_best = copy.deepcopy(mlp), val_loss, 0
            else:
                epochs_since_best += 1
                if epochs_since_best >= patience:
                    break
    return Pipeline([*preprocessing.steps, ("mlp", best)])


def fit_knn_baseline(
    X_train_mags,  # noqa: N803 - sklearn convention for design matrices
    z_train,
    X_val_mags,  # noqa: N803
    z_val,
    k_values: tuple[int, ...] = (5, 10, 20, 40),
) -> Pipeline:
    """Distance-weighted kNN regressor, k chosen by the validation SMAD of Dz.

    The validation SMAD is the same objective the Hybrid-z hyperparameter search uses. The
    returned model is fitted on the training split only, like every other model compared.
    """
    train_mags, z_train = _check_split(X_train_mags, z_train, "train")
    val_mags, z_val = _check_split(X_val_mags, z_val, "validation")
    candidates = [k for k in k_values if 1 <= k <= z_train.size]
    if not candidates:
        raise ValueError(f"no k in {k_values} is between 1 and the {z_train.size} training rows")
    preprocessing = _fit_preprocessing(train_mags)
    train_features = preprocessing.transform(train_mags)
    val_features = preprocessing.transform(val_mags)
    fitted = [
        KNeighborsRegressor(n_neighbors=k, weights="distance").fit(train_features, z_train)
        for k in candidates
    ]
    scores = [smad(Dz(z_val, knn.predict(val_features))) for knn in fitted]
    return Pipeline([*preprocessing.steps, ("knn", fitted[int(np.argmin(scores))])])


#: Galaxies per block when kNN PDFs are built (a block's neighbour array is block x k x bins).
_KNN_PDF_BLOCK = 1024


class KnnPdfBaseline:
    """The probabilistic magnitude-only baseline: ANNz2's KNN idea. A galaxy's PDF is the
    redshifts of its k nearest training neighbours in the kNN baseline's feature space,
    weighted by inverse distance as that regressor weights them, each smoothed by a
    Gaussian kernel whose width is fitted on the validation split (minimum mean CRPS).

    `knn`: a pipeline from `fit_knn_baseline`; `z_train`: the redshifts it was fitted on.
    """

    def __init__(self, knn: Pipeline, z_train, z_val_mags, z_val, grid: PdfGrid,
                 widths: tuple[float, float] = (1e-3, 0.2)) -> None:
        self.knn, self.z_train = knn, finite_1d(z_train, "train z")
        val_mags, z_val = _check_split(z_val_mags, z_val, "validation")
        weights, neighbour_z = self._neighbours(val_mags)
        result = optimize.minimize_scalar(
            lambda log_width: float(np.mean(crps(
                self._smoothed(weights, neighbour_z, grid, np.exp(log_width)), grid, z_val))),
            bounds=np.log(widths), method="bounded", options={"xatol": 1e-2})
        self.kernel_width = float(np.exp(result.x))

    def _neighbours(self, mags) -> tuple[np.ndarray, np.ndarray]:
        features = self.knn[:-1].transform(_magnitude_array(mags, "mags"))
        distance, index = self.knn[-1].kneighbors(features)
        weights = 1.0 / np.maximum(distance, 1e-12)
        return weights / weights.sum(axis=1, keepdims=True), self.z_train[index]

    @staticmethod
    def _smoothed(weights, neighbour_z, grid: PdfGrid, width: float) -> np.ndarray:
        pdfs = np.empty((len(weights), grid.n_bins))
        for start in range(0, len(weights), _KNN_PDF_BLOCK):
            block = slice(start, start + _KNN_PDF_BLOCK)
            cdf = stats.norm.cdf((grid.edges - neighbour_z[block, :, None]) / width)
            pdfs[block] = np.einsum("nk,nkb->nb", weights[block], np.diff(cdf, axis=2))
        # mass beyond the grid is dropped; a PDF with none left on it falls back to its edge
        empty = pdfs.sum(axis=1) <= 0
        pdfs[empty, np.where(neighbour_z[empty, 0] > grid.z_max, grid.n_bins - 1, 0)] = 1.0
        return pdfs / pdfs.sum(axis=1, keepdims=True)

    def predict_pdfs(self, mags, grid: PdfGrid) -> np.ndarray:
        """(N, bins) PDFs of raw magnitudes on `grid`."""
        return self._smoothed(*self._neighbours(mags), grid, self.kernel_width)
