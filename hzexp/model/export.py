"""The deployable model: raw dataset rows in, photo-z out.

The trained core sees preprocessed tensors; the exported model puts the preprocessing
layers in front of it so that MLflow logs one self-contained artifact and `predict` can
never apply a different crop, normalisation or scaler than training did.
"""

from __future__ import annotations

import keras

from hzexp.data.store import IMAGE_BANDS, MAG_BANDS, PSF_COLUMNS, PSF_INPUT, tabular_columns
from hzexp.model.pdf import CalibratedPdf
from hzexp.model.preprocessing import CentreCrop, MagnitudeStandardiser, MinMaxNormalise


def takes_psf(model: keras.Model) -> bool:
    """Whether a deployable model has the `PSF_INPUT` (trained with PSF inputs)."""
    return PSF_INPUT in {tensor.name for tensor in model.inputs}


def export_model(core: keras.Model, cutout: int, stored_size: int, fill, mean,
                 scale, pdf: CalibratedPdf | None = None) -> keras.Model:
    """Wrap `core` (from `build_hybrid_z`) with crop -> min-max and the NaN-filling scaler.

    Inputs: `image` (stored_size, stored_size, 4) raw fluxes and `mags` (9,) raw AB
    magnitudes (NaN allowed), and for a core with PSF inputs `psf_fwhm` (4,) arcsec (NaN:
    unknown); output `z_phot` (N, 1), or for a PDF core `z_pdf` (N, bins) through `pdf`, its
    calibration. The core's weights are shared, not copied. `fill, mean, scale` come from
    `fit_magnitude_standardiser` on the training split (13 values with PSF inputs).
    """
    core_cutout = core.get_layer("image").output.shape[1]
    if core_cutout != cutout:
        raise ValueError(f"the core was built for {core_cutout} px cutouts, not {cutout} px")
    if stored_size < cutout:
        raise ValueError(f"cutout {cutout} px is larger than the stored {stored_size} px images")
    if (pdf is not None) != (core.output.shape[-1] > 1):
        raise ValueError("a PDF core is exported with its calibration, a point core without")
    psf_inputs = core.get_layer("mags").output.shape[-1] == len(tabular_columns(True))
    image = keras.Input((stored_size, stored_size, len(IMAGE_BANDS)), name="image")
    mags = keras.Input((len(MAG_BANDS),), name="mags")
    inputs = [image, mags]
    tabular = mags
    if psf_inputs:
        psf = keras.Input((len(PSF_COLUMNS),), name=PSF_INPUT)
        inputs.append(psf)
        tabular = keras.layers.Concatenate(name="mags_and_psf", dtype="float32")([mags, psf])
    x = MinMaxNormalise(name="minmax_normalise")(CentreCrop(cutout, name="centre_crop")(image))
    m = MagnitudeStandardiser(fill, mean, scale, name="standardise_magnitudes")(tabular)
    if pdf is not None:
        return keras.Model(inputs, pdf(core([x, m])), name=f"{core.name}_export")
    # A float32 identity names the output `z_phot` for signatures and keeps it float32
    # under a mixed_float16 policy.
    z_phot = keras.layers.Identity(dtype="float32", name="z_phot")(core([x, m]))
    return keras.Model(inputs, z_phot, name=f"{core.name}_export")
