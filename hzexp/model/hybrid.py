"""The Hybrid-z network: an Inception image branch and a dense magnitude branch, merged.

Built as a pure function of `ModelConfig` and the cutout size, so a run (or an Optuna
trial) is reproduced by its config alone; weight seeds are the caller's business
(`keras.utils.set_random_seed`) and the only process-wide setting, the dtype policy, is
set explicitly by `hzexp.model.devices.configure_precision`.
"""

from __future__ import annotations

import keras

from hzexp.config import ModelConfig, TrainingConfig
from hzexp.data.store import IMAGE_BANDS, tabular_columns
from hzexp.model.inception import conv_relu, inception_module, scale_filters
from hzexp.model.losses import Huber
from hzexp.model.metrics import R2
from hzexp.model.pdf import BinnedCRPS, GaussianKernel


def build_hybrid_z(model: ModelConfig, cutout: int) -> keras.Model:
    """The uncompiled network on preprocessed inputs: `image` (cutout, cutout, 4) min-max
    normalised stamps and `mags` (9,) standardised magnitudes (13: then the standardised PSF
    FWHMs, with `model.psf_inputs`) -> `z_phot` (N, 1) in (0, 1), or the PDF (N, pdf_bins):
    a softmax, spread by a Gaussian of `model.pdf_kernel_width` when that is set.

    Stem and module layout follow the authors' released code; every convolution pads
    'same' so the spatial size is ceil(ceil(cutout / 3) / 2) >= 1 for any cutout.
    `model.width` scales the Inception module filters only.
    """
    image = keras.Input((cutout, cutout, len(IMAGE_BANDS)), name="image")
    mags = keras.Input((len(tabular_columns(model.psf_inputs)),), name="mags")

    stem = model.stem_filters
    x = conv_relu(image, stem[0], 7, "stem_conv7")
    x = keras.layers.AveragePooling2D(3, padding="same", name="stem_pool_1")(x)
    x = conv_relu(x, stem[1], 1, "stem_conv1")
    x = conv_relu(x, stem[2], 3, "stem_conv3")
    x = keras.layers.AveragePooling2D(3, strides=2, padding="same", name="stem_pool_2")(x)
    filters = scale_filters(model.inception_filters, model.width)
    for i in range(1, model.depth + 1):
        x = inception_module(x, filters, f"inception_{i}")
    x = keras.layers.Flatten(name="image_flatten")(x)

    m = mags
    for i, units in enumerate(model.mag_units, start=1):
        m = _dense_relu(m, units, f"mag_dense_{i}")
        if i == 2:
            m = keras.layers.BatchNormalization(name="mag_batchnorm")(m)
            m = keras.layers.Dropout(model.mag_dropout, name="mag_dropout")(m)

    h = keras.layers.Concatenate(name="merge")([x, m])
    for i, units in enumerate(model.head_units, start=1):
        h = _dense_relu(h, units, f"head_dense_{i}")
    # float32 output under mixed_float16: the sigmoid saturates early in half precision.
    if model.output == "pdf":
        if not model.pdf_kernel_width:
            z_pdf = keras.layers.Dense(model.pdf_bins, activation="softmax", dtype="float32",
                                       name="z_pdf")(h)
            return keras.Model([image, mags], z_pdf, name="hybrid_z")
        weights = keras.layers.Dense(model.pdf_bins, activation="softmax", dtype="float32",
                                     name="z_pdf_weights")(h)
        z_pdf = GaussianKernel(model.pdf_kernel_width, model.pdf_z_max, name="z_pdf")(weights)
        return keras.Model([image, mags], z_pdf, name="hybrid_z")
    z_phot = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="z_phot")(h)
    return keras.Model([image, mags], z_phot, name="hybrid_z")


def _dense_relu(x, units: int, name: str):
    return keras.layers.Dense(units, activation="relu", kernel_initializer="he_normal",
                              name=name)(x)


def compile_hybrid_z(model: keras.Model, training: TrainingConfig,
                     architecture: ModelConfig | None = None) -> None:
    """Compile in place: Adam, Huber loss (robust to catastrophic outliers), mae/mse/r2;
    for a PDF output (`architecture.output == "pdf"`) the binned CRPS and no point metrics (the
    training's `val_smad` and `val_crps` callbacks judge its median and its PDFs).

    The losses and metric are the registered `hzexp` versions, so a checkpoint saved to
    `.keras` reloads with the same delta and keeps reporting `r2`.

    XLA stays off unless asked for: on the 2-core CPU it made a step ~3x slower.
    """
    pdf = architecture is not None and architecture.output == "pdf"
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=training.learning_rate),
        loss=(BinnedCRPS(architecture.pdf_z_max, architecture.pdf_bins) if pdf
              else Huber(delta=training.huber_delta)),
        metrics=[] if pdf else ["mae", "mse", R2()],
        jit_compile=training.jit_compile,
    )
