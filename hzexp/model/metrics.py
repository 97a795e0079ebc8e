"""The coefficient of determination as a streaming Keras metric.

Averaging per-batch R2 values is wrong (R2 is a ratio of sums), so `R2` accumulates the
sums it needs and forms the ratio once per epoch. Sums are kept in float64 so the
`sum(y^2) - sum(y)^2 / n` form does not lose precision on large epochs.
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
        self._sums = [self.add_variable(shape=(), initializer="zeros", dtype="float64", name=n)
                      for n in ("weight", "y", "y_squared", "residual_squared")]

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.reshape(ops.cast(y_true, "float64"), (-1,))
        y_pred = ops.reshape(ops.cast(y_pred, "float64"), (-1,))
        weight = (ops.ones_like(y_true) if sample_weight is None
                  else ops.broadcast_to(ops.reshape(ops.cast(sample_weight, "float64"), (-1,)),
                                        ops.shape(y_true)))
        terms = (weight, weight * y_true, weight * y_true**2, weight * (y_true - y_pred) ** 2)
        for total, term in zip(self._sums, terms):
            total.assign_add(ops.sum(term))

    def result(self):
        weight, y, y_squared, residual_squared = self._sums
        total_squared = y_squared - y**2 / ops.maximum(weight, 1e-300)
        score = ops.where(total_squared > 0,
                          1 - residual_squared / ops.where(total_squared > 0, total_squared, 1),
                          ops.where(residual_squared > 0, 0.0, 1.0))
        return ops.cast(score, "float32")

    def reset_state(self):
        for total in self._sums:
            total.assign(ops.zeros((), dtype="float64"))
