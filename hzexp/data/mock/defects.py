"""Image defects of real KiDS cutouts: neighbouring galaxies and masked-area artefacts.

~1% of stamps contain a neighbour (another mock galaxy, fainter, 10-22 px away): the
catalogue photometry is deblended, the image is not. ~15% of galaxies lie in areas the KiDS
MASK flags (B21: `masked`); their stamps get the artefact that caused the flag, drawn before
the sky noise: mostly a saturated star's halo and diffraction spikes crossing the stamp,
otherwise a bad (hot) detector column in one band.
"""

from __future__ import annotations

import numpy as np

from hzexp.data.mock.images import moffat_alpha

#: Fraction of artefacts that are bright stars (the rest are bad columns).
STAR_ARTEFACT_FRACTION = 0.7
#: Star magnitude range (r, AB) and their colours relative to r in u, g, r, i.
STAR_MAG_RANGE = (11.0, 15.0)
STAR_COLOURS = np.array([1.3, 0.4, 0.0, -0.15])
#: Brightness (AB mag in one pixel) at which the coadd saturates.
SATURATION_MAG_PER_PIXEL = 17.5


def _shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """`image` (size, size, bands) moved by whole pixels, zero-filled, no wrap-around."""
    out = np.zeros_like(image)
    size = image.shape[0]
    src_y, dst_y = slice(max(0, -dy), size - max(0, dy)), slice(max(0, dy), size - max(0, -dy))
    src_x, dst_x = slice(max(0, -dx), size - max(0, dx)), slice(max(0, dx), size - max(0, -dx))
    out[dst_y, dst_x] = image[src_y, src_x]
    return out


def add_neighbours(stamps: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Add a fainter copy of another galaxy of the batch to ~`fraction` of the noiseless
    stamps (in place); returns the rows that got one."""
    n = len(stamps)
    rows = np.flatnonzero(rng.random(n) < fraction)
    donors = (rows + 1 + rng.integers(0, max(n - 1, 1), len(rows))) % n
    angle = rng.uniform(0.0, 2.0 * np.pi, len(rows))
    distance = rng.uniform(10.0, 22.0, len(rows))
    dimming = 10.0 ** (-0.4 * rng.uniform(0.5, 2.5, len(rows)))
    originals = stamps[donors].copy()
    for k, row in enumerate(rows):
        dy = int(round(distance[k] * np.sin(angle[k])))
        dx = int(round(distance[k] * np.cos(angle[k])))
        stamps[row] += dimming[k] * _shifted(originals[k], dy, dx)
    return rows


def _star(size: int, y0: float, x0: float, flux: np.ndarray, psf_fwhm_px: np.ndarray,
          spike_angle: float, saturation_flux: float) -> np.ndarray:
    """A bright star: Moffat core, a broad scattered-light halo and four diffraction spikes,
    clipped at saturation (size, size, bands)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    dy, dx = y - y0, x - x0
    r2 = dy**2 + dx**2
    along = dx * np.cos(spike_angle) + dy * np.sin(spike_angle)
    across = dy * np.cos(spike_angle) - dx * np.sin(spike_angle)
    spikes = (np.exp(-0.5 * (across / 0.8) ** 2) / (1.0 + np.abs(along) / 5.0)
              + np.exp(-0.5 * (along / 0.8) ** 2) / (1.0 + np.abs(across) / 5.0))
    halo = 1e-3 * (1.0 + r2 / 30.0**2) ** -1.5
    alpha2 = moffat_alpha(psf_fwhm_px, 3.0)[None, None, :] ** 2
    core = (1.0 + r2[..., None] / alpha2) ** -3.0 / (np.pi * alpha2 / 2.0)
    image = flux * (core + (halo + 3e-3 * spikes)[..., None])
    return np.minimum(image, saturation_flux).astype(np.float32)


def add_artefacts(stamps: np.ndarray, masked: np.ndarray, psf_fwhm_px: np.ndarray,
                  sky_sigma: np.ndarray, zero_point_ab: float, rng: np.random.Generator) -> None:
    """Draw an artefact into every masked stamp (in place): a saturated star 12-40 px from
    the centre, or a hot column in one band at 5-50 sky sigma."""
    n, size, _, n_bands = stamps.shape
    saturation_flux = 10.0 ** (-0.4 * (SATURATION_MAG_PER_PIXEL - zero_point_ab))
    for row in np.flatnonzero(masked):
        if rng.random() < STAR_ARTEFACT_FRACTION:
            angle, distance = rng.uniform(0, 2 * np.pi), rng.uniform(12.0, 40.0)
            centre = (size - 1) / 2.0
            star_mag = rng.uniform(*STAR_MAG_RANGE) + STAR_COLOURS
            star_flux = 10.0 ** (-0.4 * (star_mag - zero_point_ab))
            stamps[row] += _star(size, centre + distance * np.sin(angle),
                                 centre + distance * np.cos(angle), star_flux,
                                 psf_fwhm_px[row], rng.uniform(0, np.pi / 2), saturation_flux)
        else:
            band, column = rng.integers(n_bands), rng.integers(size)
            stamps[row, :, column, band] += rng.uniform(5.0, 50.0) * sky_sigma[band]
