"""Where the model runs: the dtype policy and data-parallel training over several devices.

Written against Keras 3's backend-neutral API so the same training runs on TensorFlow (the
default backend), JAX or PyTorch: only the multi-device strategy differs by backend, and it
is chosen here, in one place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

from hzexp.config import ConfigError, TrainingConfig


def accelerators() -> list[str]:
    """The GPUs (or TPUs) Keras' backend sees, as "gpu:0", ...; empty on a CPU-only host."""
    if keras.backend.backend() == "torch":
        import torch

        return [f"gpu:{i}" for i in range(torch.cuda.device_count())]
    devices = keras.distribution.list_devices()
    return [d for d in devices if not d.lower().startswith("cpu")]


def configure_precision(training: TrainingConfig) -> str:
    """Set Keras' global dtype policy for the next model built; returns the policy name.

    `mixed_<training.mixed_dtype>` only when mixed precision is asked for and an accelerator
    is visible (on CPU it is slower, not faster); otherwise float32, which also undoes an
    earlier mixed setting in the same process (e.g. between search trials). bfloat16 needs
    no loss scaling and suits Ampere/Hopper GPUs; float16 suits older ones.
    """
    policy = (f"mixed_{training.mixed_dtype}" if training.mixed_precision and accelerators()
              else "float32")
    keras.config.set_dtype_policy(policy)
    return policy


@contextlib.contextmanager
def distribution_scope(training: TrainingConfig) -> Iterator[int]:
    """Build, compile, fit and predict inside this block; yields the number of replicas.

    `training.distribution = data_parallel` replicates the model on every visible device and
    splits each batch between them: `keras.distribution.DataParallel` on JAX,
    `tf.distribute.MirroredStrategy` on TensorFlow. With one device it changes nothing but
    the code path. `none` (the default) runs on the backend's default device.
    """
    if training.distribution == "none":
        yield 1
        return
    backend = keras.backend.backend()
    if backend == "jax":
        previous = keras.distribution.distribution()
        parallel = keras.distribution.DataParallel()
        keras.distribution.set_distribution(parallel)
        try:
            yield int(parallel.device_mesh.devices.size)
        finally:
            keras.distribution.set_distribution(previous)
    elif backend == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy()
        with strategy.scope():
            yield int(strategy.num_replicas_in_sync)
    else:
        raise ConfigError(f"training.distribution = {training.distribution!r}: not available "
                          f"on the {backend} backend (use KERAS_BACKEND=jax or tensorflow)")
