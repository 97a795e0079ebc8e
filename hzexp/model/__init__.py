"""The Hybrid-z network: Inception module, builder, losses, R2, PDF head, preprocessing,
in-model augmentation, export.

Importing this package registers the custom layers, loss and metric with Keras
(package "hzexp"), which `keras.models.load_model` needs to read a saved model.
"""

from hzexp.model.augmentation import RandomView, trainer
from hzexp.model.devices import configure_precision, distribution_scope
from hzexp.model.export import export_model
from hzexp.model.hybrid import build_hybrid_z, compile_hybrid_z
from hzexp.model.losses import Huber
from hzexp.model.metrics import R2
from hzexp.model.pdf import BinnedCRPS, CalibratedPdf, GaussianKernel
from hzexp.model.preprocessing import (
    CentreCrop,
    MagnitudeStandardiser,
    MinMaxNormalise,
    centre_crop,
    fit_magnitude_standardiser,
    minmax_normalise,
    standardise_magnitudes,
)

__all__ = [
    "BinnedCRPS", "CalibratedPdf", "CentreCrop", "GaussianKernel", "Huber", "MagnitudeStandardiser",
    "MinMaxNormalise", "R2", "RandomView", "build_hybrid_z",
    "centre_crop", "compile_hybrid_z", "configure_precision", "distribution_scope", "export_model",
    "fit_magnitude_standardiser", "minmax_normalise", "standardise_magnitudes", "trainer",
]
