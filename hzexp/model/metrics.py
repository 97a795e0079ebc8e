"""The coefficient of determination as a streaming Keras metric.

Averaging per-batch R2 values is wrong (R2 is a ratio of sums), so `R2` accumulates what it
needs and forms the ratio once per epoch. The total sum of squares is merged batch by batch
with Chan et al.'s pairwise update (running weight, mean and sum of squared deviations)
rather than as `sum(y^2) - sum(y)^2 / n`, whose cancellation needs float64: JAX runs without
float64 by default, and the merged form is accurate in float32 on every backend.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="hzexp")
class R2(keras.metrics.Metric):
    """`1 - SS_res / SS_tot` over everything seen since the last reset (weighted if given).

    Follows sklearn's `r2_score` for a constant target: 1 for a perfect fit, else 0.
    """

    def __init__(self, name: str = "r2", **kwargs):
        super().__init__(name=name, **kwargs)
        self._state = [self.add_variable(shape=(), initializer="zeros", dtype="float32", name=n)
                       for n in ("weight", "mean", "squared_deviation", "residual_squared")]

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.reshape(ops.cast(y_true, "float32"), (-1,))
        y_pred = ops.reshape(ops.cast(y_pred, "float32"), (-1,))
        weight = (ops.ones_like(y_true) if sample_weight is None
                  else ops.broadcast_to(ops.reshape(ops.cast(sample_weight, "float32"), (-1,)),
                                        ops.shape(y_true)))
        total, mean, squared_deviation, residual_squared = (v.value for v in self._state)
        batch_weight = ops.sum(weight)
        batch_mean = ops.sum(weight * y_true) / ops.maximum(batch_weight, 1e-30)
        batch_deviation = ops.sum(weight * (y_true - batch_mean) ** 2)
        merged = total + batch_weight
        share = batch_weight / ops.maximum(merged, 1e-30)
        delta = batch_mean - mean
        residual_squared = residual_squared + ops.sum(weight * (y_true - y_pred) ** 2)
        updated = (merged, mean + delta * share,
                   squared_deviation + batch_deviation + delta**2 * total * share,
                   residual_squared)
        for variable, value in zip(self._state, updated):
            variable.assign(value)

    def result(self):
        _, _, total_squared, residual_squared = (v.value for v in self._state)
        return ops.where(total_squared > 0,
                         1 - residual_squared / ops.where(total_squared > 0, total_squared, 1),
                         ops.where(residual_squared > 0, 0.0, 1.0))

    def reset_state(self):
        for value in self._state:
            value.assign(ops.zeros((), dtype="float32"))
