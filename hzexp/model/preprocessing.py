"""Preprocessing that travels with the model (DESIGN: "Preprocessing belongs to the model").

Each operation is written once, as a function on tensors built from `keras.ops`, and used
twice: by the tf.data training pipeline (`hzexp/data/pipeline.py` maps the functions) and
by the serialisable layers below, which `hzexp.model.export.export_model` puts in front of
the trained network. Training and prediction therefore cannot drift apart, and a logged
model takes raw dataset rows (stored-size flux stamps, AB magnitudes with NaN).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler

from hzexp.data.store import MAG_COLUMNS

_PIXEL_AXES = (-3, -2, -1)


def centre_crop(images, cutout: int):
    """The central `cutout` x `cutout` pixels of (N, S, S, C) or (S, S, C) stamps.

    For odd `S - cutout` the extra pixel is dropped on the high-index side, the same
    convention for every caller.
    """
    images = ops.convert_to_tensor(images)
    stored = images.shape[-3]
    if stored is not None and not 1 <= cutout <= stored:
        raise ValueError(f"cutout {cutout} px must be between 1 and the stored {stored} px")
    start = (ops.shape(images)[-3] - cutout) // 2
    return images[..., start:start + cutout, start:start + cutout, :]


def minmax_normalise(images):
    """Per-galaxy min-max scaling of all bands and pixels jointly (paper eq. 1).

    Joint scaling keeps the colour information (band ratios) that a per-band scaling would
    erase. A constant stamp (max == min, e.g. a blank or masked cutout) maps to zeros
    rather than NaN, so one bad stamp cannot poison a batch's gradients.
    """
    images = ops.convert_to_tensor(images)
    low = ops.min(images, axis=_PIXEL_AXES, keepdims=True)
    span = ops.max(images, axis=_PIXEL_AXES, keepdims=True) - low
    return (images - low) / ops.where(span > 0, span, ops.ones_like(span))


def standardise_magnitudes(mags, fill, mean, scale):
    """Replace NaN magnitudes by the per-band `fill`, then standardise with `mean`, `scale`.

    With `fill` the training median, an undetected band lands near 0 in standardised
    units: the least informative value the network can see (see `PreprocessConfig`).
    """
    mags = ops.convert_to_tensor(mags)
    fill, mean, scale = (ops.cast(v, mags.dtype) for v in (fill, mean, scale))
    return (ops.where(ops.isnan(mags), fill, mags) - mean) / scale


def fit_magnitude_standardiser(train_mags: np.ndarray, columns: tuple[str, ...] = MAG_COLUMNS
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(fill, mean, scale)` for `standardise_magnitudes`, fitted on the training split only
    (`columns` name the inputs, the magnitudes and perhaps the PSF FWHMs, in messages).

    Uses sklearn's median `SimpleImputer` followed by `StandardScaler` (fitted on the
    imputed values), so the result equals that sklearn pipeline's transform; the numbers are
    then carried by the model instead of being refitted at inference (the official Hybrid-z
    code's bug).
    """
    train_mags = np.asarray(train_mags, dtype=np.float64)
    if train_mags.ndim != 2 or train_mags.shape[0] == 0:
        raise ValueError(f"training magnitudes must be a non-empty (N, bands) array, "
                         f"got shape {train_mags.shape}")
    empty = np.flatnonzero(np.isnan(train_mags).all(axis=0))
    if empty.size:
        names = [columns[i] if i < len(columns) else f"index {i}" for i in empty]
        raise ValueError(f"column {', '.join(names)} is NaN for every training galaxy: no "
                         "median to fill with and nothing to standardise")
    imputer = SimpleImputer(strategy="median").fit(train_mags)
    scaler = StandardScaler().fit(imputer.transform(train_mags))
    return imputer.statistics_, scaler.mean_, scaler.scale_


class Float32Layer(keras.layers.Layer):
    """Preprocessing runs in float32 even under a mixed_float16 policy: raw fluxes and
    magnitude differences lose too much precision in float16."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)


@keras.saving.register_keras_serializable(package="hzexp")
class CentreCrop(Float32Layer):
    """`centre_crop` as a layer: stored-size stamps in, model-size cutouts out."""

    def __init__(self, cutout: int, **kwargs):
        super().__init__(**kwargs)
        self.cutout = int(cutout)

    def call(self, images):
        return centre_crop(images, self.cutout)

    def get_config(self):
        return {**super().get_config(), "cutout": self.cutout}


@keras.saving.register_keras_serializable(package="hzexp")
class MinMaxNormalise(Float32Layer):
    """`minmax_normalise` as a layer."""

    def call(self, images):
        return minmax_normalise(images)


@keras.saving.register_keras_serializable(package="hzexp")
class MagnitudeStandardiser(Float32Layer):
    """`standardise_magnitudes` with the training split's fill, mean and scale frozen in.

    The numbers are both config (so the saved model describes itself and can be rebuilt)
    and non-trainable weights (so they show in the weight list and are restored with it).
    """

    def __init__(self, fill, mean, scale, **kwargs):
        super().__init__(**kwargs)
        values = [np.asarray(v, dtype=np.float64).reshape(-1) for v in (fill, mean, scale)]
        if len({v.size for v in values}) != 1:
            raise ValueError("fill, mean and scale need one value per band, got sizes "
                             f"{[v.size for v in values]}")
        if not all(np.isfinite(v).all() for v in values) or (values[2] <= 0).any():
            raise ValueError("fill, mean and scale must be finite and scale > 0")
        self._config = {k: v.tolist() for k, v in zip(("fill", "mean", "scale"), values)}
        self.fill, self.mean, self.scale = (self._frozen(k, v) for k, v in self._config.items())

    def _frozen(self, name: str, value: list[float]):
        weight = self.add_weight(shape=(len(value),), initializer="zeros", trainable=False,
                                 name=name)
        weight.assign(np.asarray(value, dtype=weight.dtype))
        return weight

    def call(self, mags):
        return standardise_magnitudes(mags, self.fill, self.mean, self.scale)

    def get_config(self):
        return {**super().get_config(), **self._config}
