"""The Inception-v1 module (Szegedy et al. 2015) as used by Hybrid-z (paper fig. 2).

Four parallel branches see the same input at different receptive fields (1x1, 3x3, 5x5 and
a pooled view) and are concatenated on channels, so the network can pick the scale of
galaxy structure that carries redshift information instead of us fixing it.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

BRANCH_NAMES = ("1x1", "3x3_reduce", "3x3", "5x5_reduce", "5x5", "pool_proj")


def scale_filters(filters: Sequence[int], width: float) -> tuple[int, ...]:
    """Filter counts multiplied by `width` (Python rounding), never below 1.

    `width` lets a search trade capacity for speed without changing the topology.
    """
    return tuple(max(1, round(f * width)) for f in filters)


def conv_relu(x, filters: int, kernel: int, name: str, strides: int = 1):
    """Conv2D + ReLU with 'same' padding and He init, the building block everywhere.

    'same' padding keeps every cutout size from 20 to 48 px valid at any depth.
    """
    return keras.layers.Conv2D(filters, kernel, strides=strides, padding="same",
                               activation="relu", kernel_initializer="he_normal",
                               name=name)(x)


def inception_module(x, filters: Sequence[int], name: str):
    """One module: `filters` = (1x1, 3x3-reduce, 3x3, 5x5-reduce, 5x5, pool-proj) counts.

    The output keeps the spatial size and has `f[0] + f[2] + f[4] + f[5]` channels.
    Layer names are `<name>_branch_<kind>` (Keras 3 forbids "/" in names).
    """
    if len(filters) != len(BRANCH_NAMES):
        raise ValueError(f"an Inception module needs {len(BRANCH_NAMES)} filter counts "
                         f"({', '.join(BRANCH_NAMES)}), got {tuple(filters)}")
    n = dict(zip(BRANCH_NAMES, filters))

    def branch(kind: str):
        return f"{name}_branch_{kind}"

    one = conv_relu(x, n["1x1"], 1, branch("1x1"))
    three = conv_relu(conv_relu(x, n["3x3_reduce"], 1, branch("3x3_reduce")),
                      n["3x3"], 3, branch("3x3"))
    five = conv_relu(conv_relu(x, n["5x5_reduce"], 1, branch("5x5_reduce")),
                     n["5x5"], 5, branch("5x5"))
    pooled = keras.layers.AveragePooling2D(3, strides=1, padding="same",
                                           name=branch("pool"))(x)
    pool = conv_relu(pooled, n["pool_proj"], 1, branch("pool_proj"))
    return keras.layers.Concatenate(axis=-1, name=f"{name}_concat")([one, three, five, pool])
