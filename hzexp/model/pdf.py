"""The PDF output of Hybrid-z: a softmax over redshift bins, its loss and its calibration.

Why bins (Pasquet et al. 2019) rather than a Gaussian mixture (D'Isanto & Polsterer 2018):
the head is one dense layer in place of the point model's sigmoid, so the network and its
training stay the paper's; any shape a redshift PDF takes (skewed, bimodal between the
4000 A break and a Balmer-line solution) is representable without choosing a number of
components; and the CDF is a cumulative sum, which makes the loss below exact and cheap.

The loss is the CRPS of the binned CDF (a ranked probability score), not Pasquet's
cross-entropy: cross-entropy treats a neighbouring bin as wrong as a distant one, while the
CRPS grows with the distance between the predicted mass and the truth, so it respects the
order of the bins, and it is the score hzexp reports. Backend-neutral (`keras.ops`).

The CRPS judges the CDF, so it does not stop a softmax from piling its mass into a comb of
single bins (measured on the default mock: jagged PDFs, a median that jumps between the
teeth). `GaussianKernel` spreads each bin over its neighbours, so every PDF the network can
give is smooth on the kernel's scale: the head becomes a mixture of fixed-width Gaussians
on fixed centres whose weights the softmax gives.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def _right_edges(z_max: float, n_bins: int):
    return ops.linspace(z_max / n_bins, z_max, n_bins)


@keras.saving.register_keras_serializable(package="hzexp")
class BinnedCRPS(keras.losses.Loss):
    """Mean CRPS of bin probabilities (N, n_bins) on [0, z_max] against z_spec (N, 1):
    `sum_k width * (CDF(edge_k) - [z_spec <= edge_k])^2` over the right bin edges."""

    def __init__(self, z_max: float = 1.0, n_bins: int = 200, name: str = "binned_crps",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.z_max, self.n_bins = float(z_max), int(n_bins)

    def call(self, y_true, y_pred):
        z = ops.reshape(ops.cast(y_true, "float32"), (-1, 1))
        cdf = ops.cumsum(ops.cast(y_pred, "float32"), axis=-1)
        below = ops.cast(z <= _right_edges(self.z_max, self.n_bins)[None, :], "float32")
        return ops.sum((cdf - below) ** 2, axis=-1) * (self.z_max / self.n_bins)

    def get_config(self):
        return {**super().get_config(), "z_max": self.z_max, "n_bins": self.n_bins}


@keras.saving.register_keras_serializable(package="hzexp")
class GaussianKernel(keras.layers.Layer):
    """Bin probabilities (N, n_bins) on [0, z_max] -> the same spread by a Gaussian of
    standard deviation `width` (redshift), in float32.

    A fixed, row-stochastic matrix: bin k's mass goes to the bins whose centres lie near its
    own, normalised over the grid, so no mass leaves [0, z_max] and every PDF stays
    normalised and non-negative."""

    def __init__(self, width: float, z_max: float = 1.0, **kwargs):
        kwargs.pop("dtype", None)  # always float32, also when read back from its config
        super().__init__(dtype="float32", **kwargs)
        self.width, self.z_max = float(width), float(z_max)

    def build(self, input_shape):
        n_bins = int(input_shape[-1])
        centres = (np.arange(n_bins) + 0.5) * (self.z_max / n_bins)
        spread = np.exp(-0.5 * ((centres[None, :] - centres[:, None]) / self.width) ** 2)
        self.spread = self.add_weight(
            shape=(n_bins, n_bins), trainable=False, name="spread",
            initializer=keras.initializers.Constant(spread / spread.sum(axis=1, keepdims=True)))

    def call(self, probabilities):
        return ops.matmul(ops.cast(probabilities, "float32"), self.spread)

    def get_config(self):
        return {**super().get_config(), "width": self.width, "z_max": self.z_max}


@keras.saving.register_keras_serializable(package="hzexp")
class CalibratedPdf(keras.layers.Layer):
    """The deployed PDF: bin probabilities tempered by the calibration fitted on the
    validation split (`softmax(log p / temperature)`), in float32. It also carries the
    grid, `z_max` (the number of bins is its input's width), so a loaded model says what
    its outputs mean."""

    def __init__(self, z_max: float = 1.0, temperature: float = 1.0, **kwargs):
        kwargs.pop("dtype", None)  # always float32, also when read back from its config
        super().__init__(dtype="float32", **kwargs)
        self.z_max, self.temperature = float(z_max), float(temperature)

    def call(self, probabilities):
        log_p = ops.log(ops.maximum(ops.cast(probabilities, "float32"), 1e-30))
        return ops.softmax(log_p / self.temperature, axis=-1)

    def get_config(self):
        return {**super().get_config(), "z_max": self.z_max, "temperature": self.temperature}
