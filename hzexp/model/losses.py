"""The training loss: Huber with the paper's small delta, safe to save and reload.

Keras 3.15's `keras.losses.Huber.get_config` drops `delta` (keras-team/keras PR #23286,
fixed upstream later), so a compiled model saved to `.keras` and loaded again would
silently continue training with delta = 1.0, i.e. plain MSE/2 for redshift errors.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="hzexp")
class Huber(keras.losses.Huber):
    """`keras.losses.Huber` whose config keeps `delta`."""

    def __init__(self, delta: float = 1.0, **kwargs):
        super().__init__(delta=delta, **kwargs)
        self.delta = delta

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}
