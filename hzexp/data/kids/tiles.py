"""KiDS DR4 co-added tiles: find them, assign galaxies to them, cut the galaxies out.

A tile is four FITS images (u, g, r, i), each with its own WCS (the bands' astrometric
solutions differ slightly, so every band is cut at its own pixel position of the galaxy).
The band of a file comes from a `u`/`g`/`r`/`i` token in its name
(`KiDS_DR4.0_129.0_-0.5_u_sci.fits`: tile `KiDS_DR4.0_129.0_-0.5_sci`) or, failing that, from
its FILTER or BAND header keyword (`OCAM_u_SDSS`), the tile then being named by OBJECT.
Weight and mask images that DR4 ships next to the science images (`..._wei.fits`,
`..._msk.fits`) are skipped.

Orientation: a cutout is a slice of the tile's pixel array, never resampled or flipped.
Array axis 0 is the tile's y (FITS NAXIS2), axis 1 its x (NAXIS1); shown with
origin="lower" (as ds9 and the KiDS viewers do) a cutout looks exactly like that patch of the
tile. KiDS tiles are TAN projections with north up and east left, so RA runs along x
(increasing towards -x) and Dec along y.

Centring: `Cutout2D` puts the catalogue position within half a pixel of the cutout's centre
(pixel (S-1)/2 on each axis); sub-pixel offsets are kept rather than interpolated away.
"""

from __future__ import annotations

import re
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.coordinates import angular_separation
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales

from hzexp._io import open_fits
from hzexp.data.store import IMAGE_BANDS, PSF_FWHM_MAX_ARCSEC, DatasetError

TILE_SUFFIXES = (".fits", ".fits.fz", ".fit")
NON_SCIENCE_TOKENS = frozenset({"wei", "weight", "msk", "mask", "flag", "flags"})
BAND_KEYWORDS = ("FILTER", "BAND")
#: Header keywords with a band image's PSF FWHM in arcsec, in the order read: PSF_FWHM is the
#: ESO Science Data Products standard's (KiDS DR4 coadds are ESO Phase 3 products), SEEING
#: Astro-WISE's. A file with neither (searched in the image HDU, then the primary) has
#: unknown seeing: its galaxies get NaN and the ingest report names the tile.
PSF_KEYWORDS = ("PSF_FWHM", "SEEING")
#: Pixel scales of all bands and tiles must agree to this fraction (cutouts share one size).
PIXEL_SCALE_TOLERANCE = 0.01


@dataclass(frozen=True)
class BandImage:
    """One band of one tile: file, HDU, array shape (ny, nx) and celestial WCS."""

    path: Path
    hdu_index: int
    shape: tuple[int, int]
    wcs: WCS
    psf_fwhm_arcsec: float = float("nan")

    def pixel_positions(self, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """0-based (x, y) pixel coordinates, pixel centres at integers."""
        x, y = self.wcs.world_to_pixel_values(ra, dec)
        return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


@dataclass(frozen=True)
class Tile:
    """A tile's four band images, keyed and ordered u, g, r, i."""

    name: str
    bands: dict[str, BandImage]

    def files(self) -> list[Path]:
        return [self.bands[b].path for b in IMAGE_BANDS]

    @property
    def psf_fwhm_arcsec(self) -> list[float]:
        """u, g, r, i PSF FWHM from the headers (NaN where unknown)."""
        return [self.bands[b].psf_fwhm_arcsec for b in IMAGE_BANDS]


def _stem_tokens(path: Path) -> list[str]:
    stem = path.name
    for suffix in TILE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[:-len(suffix)]
            break
    return stem.split("_")


def _band_tokens(tokens: list[str]) -> list[str]:
    return [t for t in tokens if t in IMAGE_BANDS]


def _open_band_image(path: Path) -> tuple[BandImage, fits.Header]:
    """The first 2-D image HDU of `path` with its celestial WCS; raise naming the file."""
    with open_fits(path, DatasetError) as hdul:
        for index, hdu in enumerate(hdul):
            if hdu.is_image and hdu.header.get("NAXIS", 0) == 2:
                header = hdu.header.copy()
                shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
                break
        else:
            raise DatasetError(f"{path}: no 2-D image HDU")
        psf_fwhm = _psf_fwhm(path, [header, hdul[0].header])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header)
    if not wcs.has_celestial:
        raise DatasetError(f"{path}: no celestial WCS in the header (cannot place galaxies)")
    return BandImage(path, index, shape, wcs.celestial, psf_fwhm), header


def _psf_fwhm(path: Path, headers: list[fits.Header]) -> float:
    """The first `PSF_KEYWORDS` value found in `headers` (arcsec), NaN if none; raise
    naming file and keyword for a value that is not a plausible FWHM."""
    for header in headers:
        for keyword in PSF_KEYWORDS:
            if keyword not in header:
                continue
            try:
                value = float(header[keyword])
            except (TypeError, ValueError):
                value = float("nan")
            if not 0 < value < PSF_FWHM_MAX_ARCSEC:
                raise DatasetError(f"{path}: header keyword {keyword} = {header[keyword]!r} is "
                                   f"not a PSF FWHM in (0, {PSF_FWHM_MAX_ARCSEC:g}) arcsec")
            return value
    return float("nan")


def _band_and_tile(path: Path, header: fits.Header) -> tuple[str, str]:
    """(band, tile name) from the file name's band token, else FILTER/BAND and OBJECT."""
    tokens = _stem_tokens(path)
    bands = _band_tokens(tokens)
    if len(bands) == 1:
        return bands[0], "_".join(t for t in tokens if t != bands[0])
    for keyword in BAND_KEYWORDS:
        found = _band_tokens(re.split(r"[^A-Za-z0-9]+", str(header.get(keyword, ""))))
        if len(found) == 1:
            return found[0], str(header.get("OBJECT", "_".join(tokens))).strip()
    raise DatasetError(f"{path}: cannot tell the band (no single u/g/r/i token in the file "
                       f"name and no {'/'.join(BAND_KEYWORDS)} header keyword naming one)")


def discover_tiles(tiles_dir: str | Path) -> list[Tile]:
    """All tiles under `tiles_dir`, sorted by name, each with all four bands and a WCS."""
    tiles_dir = Path(tiles_dir)
    if not tiles_dir.is_dir():
        raise DatasetError(f"{tiles_dir}: tiles directory not found")
    paths = sorted(p for p in tiles_dir.iterdir()
                   if p.name.lower().endswith(TILE_SUFFIXES)
                   and _stem_tokens(p)[-1].lower() not in NON_SCIENCE_TOKENS)
    if not paths:
        raise DatasetError(f"{tiles_dir}: no FITS tiles ({', '.join(TILE_SUFFIXES)}) found")
    groups: dict[str, dict[str, BandImage]] = defaultdict(dict)
    for path in paths:
        image, header = _open_band_image(path)
        band, tile = _band_and_tile(path, header)
        if band in groups[tile]:
            raise DatasetError(f"tile {tile}: band {band} found twice "
                               f"({groups[tile][band].path.name} and {path.name})")
        groups[tile][band] = image
    tiles = []
    for name in sorted(groups):
        missing = [b for b in IMAGE_BANDS if b not in groups[name]]
        if missing:
            found = ", ".join(f"{b}: {i.path.name}" for b, i in groups[name].items())
            raise DatasetError(f"tile {name}: band {','.join(missing)} missing in {tiles_dir} "
                               f"(found {found})")
        tiles.append(Tile(name, {b: groups[name][b] for b in IMAGE_BANDS}))
    return tiles


def pixel_scale_arcsec(tiles: list[Tile]) -> float:
    """The common pixel scale; raise naming the first file whose scale differs."""
    scales = {image.path: proj_plane_pixel_scales(image.wcs) * 3600.0
              for tile in tiles for image in tile.bands.values()}
    reference = float(next(iter(scales.values()))[0])
    for path, scale in scales.items():
        if np.any(np.abs(scale / reference - 1) > PIXEL_SCALE_TOLERANCE):
            raise DatasetError(f"{path}: pixel scale {scale.round(4).tolist()} arcsec differs "
                               f"from {reference:.4f} arcsec of the other images")
    return reference


def _cutout_placement(image: BandImage, ra: np.ndarray, dec: np.ndarray,
                      size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per object: does a `size` cutout lie fully on this image (as `Cutout2D` rounds it),
    and the distance of the object from the image edge in pixels (negative outside)."""
    x, y = image.pixel_positions(ra, dec)
    ny, nx = image.shape
    with np.errstate(invalid="ignore"):
        low_x, low_y = np.ceil(x - size / 2), np.ceil(y - size / 2)
        fits_fully = (low_x >= 0) & (low_y >= 0) & (low_x + size <= nx) & (low_y + size <= ny)
    distance = np.minimum.reduce([x + 0.5, nx - 0.5 - x, y + 0.5, ny - 0.5 - y])
    return fits_fully, np.where(np.isfinite(distance), distance, -np.inf)


def _near_tile(tile: Tile, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Rows within the circle around the tile that holds all its bands' footprints."""
    reference = tile.bands["r"]
    ny, nx = reference.shape
    ra0, dec0 = (float(v) for v in reference.wcs.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2))
    corners = np.concatenate([image.wcs.calc_footprint(axes=image.shape[::-1])
                              for image in tile.bands.values()])
    radius = np.max(angular_separation(*np.radians([ra0, dec0]), *np.radians(corners.T)))
    radius += np.radians(2 * np.max(proj_plane_pixel_scales(reference.wcs)))
    rows = np.flatnonzero(np.abs(np.radians(dec - dec0)) <= radius)
    inside = angular_separation(np.radians(ra0), np.radians(dec0),
                                np.radians(ra[rows]), np.radians(dec[rows])) <= radius
    return rows[inside]


@dataclass(frozen=True)
class TileAssignment:
    """Per galaxy: index of its tile (-1: its centre lies on no tile) and whether its full
    cutout lies on that tile in all four bands (False: it would run off the edge)."""

    tile: np.ndarray
    fits_fully: np.ndarray


def assign_to_tiles(tiles: list[Tile], ra: np.ndarray, dec: np.ndarray,
                    size: int) -> TileAssignment:
    """Choose, per galaxy, a tile on which its whole cutout lies in all four bands, and among
    overlapping tiles the one where it is farthest from the edge. A galaxy whose cutout fits
    on no tile goes to the tile (if any) where its centre is farthest from the edge, with
    `fits_fully` False, so the caller can drop or pad it."""
    n = len(ra)
    best_tile = np.full(n, -1)
    best_fits = np.zeros(n, dtype=bool)
    best_distance = np.full(n, -np.inf)
    for index, tile in enumerate(tiles):
        rows = _near_tile(tile, ra, dec)
        placements = [_cutout_placement(image, ra[rows], dec[rows], size)
                      for image in tile.bands.values()]
        fits_fully = np.logical_and.reduce([f for f, _ in placements])
        distance = np.minimum.reduce([d for _, d in placements])
        better = (distance > 0) & (
            (fits_fully & ~best_fits[rows])
            | ((fits_fully == best_fits[rows]) & (distance > best_distance[rows])))
        chosen = rows[better]
        best_tile[chosen] = index
        best_fits[chosen] = fits_fully[better]
        best_distance[chosen] = distance[better]
    return TileAssignment(best_tile, best_fits)


def cut_out(tile: Tile, ra: np.ndarray, dec: np.ndarray, size: int,
            fits_fully: np.ndarray) -> np.ndarray:
    """float32 (n, size, size, 4) cutouts in band order u,g,r,i around (ra, dec).

    Cutouts that fit are cut with mode="strict" (an error if the assignment was wrong); the
    others with mode="partial", the missing part filled with zeros (the caller flags them).
    """
    images = np.empty((len(ra), size, size, len(IMAGE_BANDS)), dtype=np.float32)
    for b, band in enumerate(IMAGE_BANDS):
        image = tile.bands[band]
        x, y = image.pixel_positions(ra, dec)
        with fits.open(image.path, memmap=True) as hdul:
            data = hdul[image.hdu_index].data
            for k in range(len(ra)):
                images[k, :, :, b] = Cutout2D(
                    data, (x[k], y[k]), size, mode="strict" if fits_fully[k] else "partial",
                    fill_value=0.0).data
    return images
