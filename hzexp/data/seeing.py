"""Seeing augmentation: stamps made to look as if observed in worse seeing.

A band observed with PSF FWHM F is convolved with a Gaussian of FWHM F sqrt((1 + g)^2 - 1),
so that its PSF grows to (1 + g) F: exactly for a Gaussian PSF, for KiDS' Moffat-like PSFs
in the core (the wings grow a little less). Only growth is possible (g >= 0): a stamp is
never sharpened.

The convolution also smooths the sky noise, which a worse-seeing exposure does not have: it
has the same sky, with a wider PSF. White noise is added back so that each pixel's sky noise
(estimated per stamp and band from the stamp's border, robustly) stays as observed; without
it the network could tell augmented stamps by their smoother background.

Convolutions are separable and done as matrix products G X G^T per stamp and band, with the
rows of G normalised to unit sum so that flux near the stamp edge is kept.
"""

from __future__ import annotations

import numpy as np

#: sigma = FWHM / (2 sqrt(2 ln 2)) for a Gaussian.
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
#: Width (px) of the stamp border whose pixels estimate the sky noise.
SKY_BORDER_PX = 4
#: Kernels narrower than this (px) are the identity: the blur would be below float noise.
_MIN_SIGMA_PX = 1e-3


def kernel_sigma_px(fwhm_px: np.ndarray, growth: np.ndarray) -> np.ndarray:
    """Gaussian sigma (px) that widens a PSF of `fwhm_px` by the factor 1 + `growth`; 0 where
    the FWHM is unknown (NaN) or the growth is 0."""
    sigma = np.asarray(fwhm_px) * np.sqrt((1.0 + np.asarray(growth)) ** 2 - 1.0) * FWHM_TO_SIGMA
    return np.nan_to_num(sigma, nan=0.0)


def gaussian_matrices(sigma_px: np.ndarray, size: int) -> np.ndarray:
    """(..., size, size) row-normalised 1-D Gaussian convolution matrices, one per sigma;
    the identity where sigma is ~0."""
    offsets = np.arange(size, dtype=np.float32)
    distance2 = (offsets[:, None] - offsets[None, :]) ** 2
    sigma = np.asarray(sigma_px, dtype=np.float32)[..., None, None]
    blurred = sigma > _MIN_SIGMA_PX
    kernel = np.exp(-distance2 / (2.0 * np.where(blurred, sigma, 1.0) ** 2))
    kernel = np.where(blurred, kernel, np.eye(size, dtype=np.float32))
    return kernel / kernel.sum(axis=-1, keepdims=True)


def sky_sigma(images: np.ndarray, border: int = SKY_BORDER_PX) -> np.ndarray:
    """(n, bands) sky noise per pixel from each stamp's border: 1.4826 x the median absolute
    deviation, robust to a neighbour or the galaxy's own wings crossing it."""
    size = images.shape[1]
    frame = np.ones((size, size), bool)
    frame[border:size - border, border:size - border] = False
    pixels = np.ascontiguousarray(np.moveaxis(images[:, frame, :], 1, -1))  # (n, bands, px)
    deviation = np.abs(pixels - np.median(pixels, axis=-1, keepdims=True))
    return 1.4826 * np.median(deviation, axis=-1)


def degrade_seeing(images: np.ndarray, fwhm_px: np.ndarray, growth: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """Stamps (n, S, S, bands) whose PSF FWHM (`fwhm_px`, (n, bands)) grows by the factor
    1 + `growth` (n, bands), with the sky noise restored; a new float32 array."""
    size = images.shape[1]
    matrices = gaussian_matrices(kernel_sigma_px(fwhm_px, growth), size)  # (n, b, S, S)
    planes = np.moveaxis(images, -1, 1)  # (n, b, S, S)
    blurred = matrices @ planes @ np.swapaxes(matrices, -1, -2)
    # White noise through G X G^T keeps sum_ij (g_i g_j)^2 of its variance at a pixel: the
    # central row's sum of squares, squared.
    centre_row = matrices[..., size // 2, :]
    kept = np.sum(centre_row ** 2, axis=-1) ** 2  # (n, b); 1 for the identity
    added = sky_sigma(images) * np.sqrt(np.clip(1.0 - kept, 0.0, None))
    noise = rng.standard_normal(blurred.shape, dtype=np.float32)
    blurred += noise * added[..., None, None].astype(np.float32)
    return np.ascontiguousarray(np.moveaxis(blurred, 1, -1), dtype=np.float32)
