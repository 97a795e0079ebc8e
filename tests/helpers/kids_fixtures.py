"""A small but faithful KiDS DR4 + KiDS-Bright + GAMA scenario, built with astropy.

Two 400x400-pixel tiles (0.2"/px, TAN, north up and east left as KiDS) overlap by 100 pixels
in RA. Each has four band images with their own WCS (each band's reference pixel is shifted
by a few pixels, as independent astrometric solutions are), a Gaussian PSF per band and a
distinct flux per band (u:g:r:i = 1:2:4:8) so band order can be checked. Galaxies are
elliptical Gaussians rendered through each image's WCS at known sky positions and position
angles (east of north), so orientation in the cutouts is real.

Tile A's files are named KiDS-style (band in the name); tile B's carry the band only in the
FILTER header keyword. A KiDS weight image sits next to the science images and must be
skipped. Positions are laid out in tile A's r-band pixel frame (`LAYOUT`, x grows westwards)
with a 0.3 px sub-pixel offset so that no galaxy sits on a pixel-rounding boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

PIXEL_SCALE_DEG = 0.2 / 3600
TILE_PIXELS = 400
BANDS = ("u", "g", "r", "i")
PSF_SIGMA_ARCSEC = {"u": 0.24, "g": 0.2, "r": 0.17, "i": 0.2}
BAND_FLUX_FACTOR = {"u": 1.0, "g": 2.0, "r": 4.0, "i": 8.0}
BAND_CRPIX_SHIFT = {"u": (0, 0), "g": (3, -2), "r": (-2, 4), "i": (5, 1)}
TILE_A_CENTRE = (130.0, 0.5)
TILE_B_OFFSET_PX = -300  # tile B's centre in tile A's frame: 300 px east (x decreases east)
SKY_NOISE = 1e-3
SUBPIXEL = 0.3


def tan_wcs(ra0: float, dec0: float, shift: tuple[int, int] = (0, 0)) -> WCS:
    """A KiDS-like TAN WCS (CD matrix, north up, east left) of a 400x400 image."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra0, dec0]
    wcs.wcs.crpix = [(TILE_PIXELS + 1) / 2 + shift[0], (TILE_PIXELS + 1) / 2 + shift[1]]
    wcs.wcs.cd = [[-PIXEL_SCALE_DEG, 0.0], [0.0, PIXEL_SCALE_DEG]]
    return wcs


LAYOUT = tan_wcs(*TILE_A_CENTRE)
TILE_B_CENTRE = tuple(float(v) for v in LAYOUT.pixel_to_world_values(
    (TILE_PIXELS - 1) / 2 + TILE_B_OFFSET_PX, (TILE_PIXELS - 1) / 2))


@dataclass(frozen=True)
class Source:
    """One catalogue object: layout position, shape, catalogue flags and its spectra.

    `spectra`: (east offset ", north offset ", z, NQ) per GAMA entry near this object.
    `tile`: the tile its cutout must come from ("A", "B", None = not written).
    """

    name: str
    x: float
    y: float
    major: float = 1.0          # Gaussian sigma along the major axis, arcsec
    minor: float = 0.5
    pa: float = 30.0            # position angle of the major axis, degrees east of north
    flux: float = 100.0         # total flux, times BAND_FLUX_FACTOR[band] in each band
    rendered: bool = True
    mag_auto: float = 18.0
    class_star: float = 0.02
    sg2dphot: int = 0
    sg_flag: int = 1
    imaflags: int = 0
    mask: int = 0
    red: int = 0
    spectra: tuple[tuple[float, float, float, int], ...] = ()
    tile: str | None = "A"

    @property
    def radec(self) -> tuple[float, float]:
        ra, dec = LAYOUT.pixel_to_world_values(self.x + SUBPIXEL, self.y + SUBPIXEL)
        return float(ra), float(dec)


def _spec(east: float = 0.0, north: float = 0.0, z: float = 0.2, nq: int = 4):
    return ((east, north, z, nq),)


SOURCES = (
    Source("along_ra", 200, 200, major=1.2, minor=0.4, pa=90, spectra=_spec(0.2, 0, 0.11), red=1),
    Source("along_dec", 250, 120, major=1.2, minor=0.4, pa=0, spectra=_spec(0, 0.4, 0.15)),
    Source("masked_ne", 150, 300, major=1.2, minor=0.4, pa=45, mask=4,
           spectra=_spec(0.1, 0.1, 0.3)),
    Source("mag99", 330, 290, mask=2, spectra=_spec(-0.2, 0, 0.25)),
    Source("two_spectra", 150, 80, spectra=((0.3, 0, 0.21, 4), (0, -0.8, 0.35, 3))),
    Source("pair_near", 330, 100, spectra=_spec(-0.5, 0, 0.18)),   # spectrum 0.5" west
    Source("pair_far", 337, 100, tile=None),                        # 1.4" west: 0.9" from it
    Source("near_miss", 230, 350, spectra=_spec(1.5, 0, 0.4), tile=None),
    Source("bad_nq", 120, 200, spectra=_spec(0, 0, 0.2, 2), tile=None),
    Source("low_z", 280, 220, spectra=_spec(0, 0, 0.0005), tile=None),
    Source("overlap_to_b", 30, 200, spectra=_spec(0, 0, 0.12), tile="B"),
    Source("overlap_to_a", 80, 300, spectra=_spec(0, 0, 0.13), tile="A"),
    Source("only_b", -150, 200, spectra=_spec(0, 0, 0.14), tile="B"),
    Source("edge", 392, 200, spectra=_spec(0, 0, 0.16), tile=None),
    Source("outside", 600, 200, spectra=_spec(0, 0, 0.17), tile=None),
    Source("star", 280, 40, major=0.0, minor=0.0, class_star=0.9, sg_flag=0,
           spectra=_spec(0, 0, 1.6), tile=None),
    Source("faint", 180, 380, flux=10.0, mag_auto=20.5, tile=None),
    Source("sg2dphot", 60, 100, rendered=False, sg2dphot=1, tile=None),
    Source("sg_flag", 300, 360, rendered=False, sg_flag=0, tile=None),
    Source("imaflags", 40, 380, rendered=False, imaflags=1, tile=None),
)
SOURCE_BY_NAME = {s.name: s for s in SOURCES}
#: Objects that must be written by a labelled ingestion (drop policy) and their spec-z.
EXPECTED_LABELLED = {"along_ra": 0.11, "along_dec": 0.15, "masked_ne": 0.3, "mag99": 0.25,
                     "two_spectra": 0.21, "pair_near": 0.18, "overlap_to_b": 0.12,
                     "overlap_to_a": 0.13, "only_b": 0.14}
#: Blended pair: their cutouts hold each other's light, so centroids are not tested.
BLENDED = {"pair_near", "pair_far"}


def kids_id(source: Source) -> str:
    ra, dec = source.radec
    return f"KiDS J{ra:09.5f}{dec:+09.5f}"


def render(wcs: WCS, band: str, rng: np.random.Generator) -> np.ndarray:
    """One band image: every rendered source as a PSF-convolved elliptical Gaussian + noise."""
    image = rng.normal(0.0, SKY_NOISE, (TILE_PIXELS, TILE_PIXELS))
    psf = PSF_SIGMA_ARCSEC[band]
    for source in SOURCES:
        if not source.rendered:
            continue
        ra0, dec0 = source.radec
        x0, y0 = (float(v) for v in wcs.world_to_pixel_values(ra0, dec0))
        xs = np.arange(max(0, int(x0) - 25), min(TILE_PIXELS, int(x0) + 26))
        ys = np.arange(max(0, int(y0) - 25), min(TILE_PIXELS, int(y0) + 26))
        if len(xs) == 0 or len(ys) == 0:
            continue
        gx, gy = np.meshgrid(xs, ys)
        ra, dec = wcs.pixel_to_world_values(gx, gy)
        east = (ra - ra0) * np.cos(np.radians(dec0)) * 3600
        north = (dec - dec0) * 3600
        pa = np.radians(source.pa)
        along = east * np.sin(pa) + north * np.cos(pa)
        across = east * np.cos(pa) - north * np.sin(pa)
        s_major = np.hypot(source.major, psf)
        s_minor = np.hypot(source.minor, psf)
        flux = source.flux * BAND_FLUX_FACTOR[band] * 0.2**2 / (2 * np.pi * s_major * s_minor)
        image[gy, gx] += flux * np.exp(-0.5 * ((along / s_major) ** 2 + (across / s_minor) ** 2))
    return image.astype(np.float32)


@dataclass(frozen=True)
class Scenario:
    tiles_dir: Path
    photometry: Path
    spectra: Path


#: The seeing in the tile headers: A as PSF_FWHM (ESO), B as SEEING and none in i.
TILE_PSF_FWHM = {"A": {"u": 1.05, "g": 0.85, "r": 0.68, "i": 0.78},
                 "B": {"u": 0.95, "g": 0.9, "r": 0.75}}


def write_tiles(tiles_dir: Path, seed: int = 1) -> None:
    """Tile A named KiDS-style; tile B with the band only in FILTER; plus a weight image."""
    rng = np.random.default_rng(seed)
    tiles_dir.mkdir(parents=True)
    for band in BANDS:
        for tile, centre in (("A", TILE_A_CENTRE), ("B", TILE_B_CENTRE)):
            wcs = tan_wcs(*centre, BAND_CRPIX_SHIFT[band])
            header = wcs.to_header()
            header["FILTER"] = f"OCAM_{band}_SDSS"
            if tile == "A":
                name = f"KiDS_DR4.0_130.0_0.5_{band}_sci.fits"
                header["PSF_FWHM"] = TILE_PSF_FWHM["A"][band]
            else:
                header["OBJECT"] = "KIDS_130.017_0.5"
                if band in TILE_PSF_FWHM["B"]:
                    header["SEEING"] = TILE_PSF_FWHM["B"][band]
                name = f"tileB_coadd_{BANDS.index(band) + 1}.fits"
            fits.PrimaryHDU(render(wcs, band, rng), header).writeto(tiles_dir / name)
    weight = np.ones((TILE_PIXELS, TILE_PIXELS), dtype=np.float32)
    fits.PrimaryHDU(weight).writeto(tiles_dir / "KiDS_DR4.0_130.0_0.5_r_wei.fits")


def photometry_table(rename: dict[str, str] | None = None) -> Table:
    """The KiDS-Bright-like catalogue of all SOURCES, KiDS column names (renamed if asked)."""
    table = Table()
    table["ID"] = [kids_id(s) for s in SOURCES]
    table["RAJ2000"] = [s.radec[0] for s in SOURCES]
    table["DECJ2000"] = [s.radec[1] for s in SOURCES]
    for k, band in enumerate(("u", "g", "r", "i", "Z", "Y", "J", "H", "Ks")):
        mags = np.array([18.5 + 0.1 * k] * len(SOURCES))
        errs = np.full(len(SOURCES), 0.02 + 0.001 * k)
        row = [s.name for s in SOURCES].index("mag99")
        if band == "u":
            mags[row], errs[row] = 99.0, 99.0
        if band == "Ks":
            mags[row], errs[row] = -99.0, -99.0
        table[f"MAG_GAAP_{band}"] = mags
        table[f"MAGERR_GAAP_{band}"] = errs
    table["MAG_AUTO"] = [s.mag_auto for s in SOURCES]
    table["MASK"] = np.array([s.mask for s in SOURCES], dtype=np.int32)
    table["CLASS_STAR"] = [s.class_star for s in SOURCES]
    table["SG2DPHOT"] = np.array([s.sg2dphot for s in SOURCES], dtype=np.int16)
    table["SG_FLAG"] = np.array([s.sg_flag for s in SOURCES], dtype=np.int16)
    table["IMAFLAGS_ISO"] = np.array([s.imaflags for s in SOURCES], dtype=np.int16)
    table["RED_SEQUENCE"] = np.array([s.red for s in SOURCES], dtype=np.int16)
    for old, new in (rename or {}).items():
        table.rename_column(old, new)
    return table


def spectra_table() -> Table:
    """GAMA-like spectra (RA, DEC, Z, NQ, CATAID) at the given offsets from their sources."""
    rows = []
    for source in SOURCES:
        ra0, dec0 = source.radec
        for east, north, z, nq in source.spectra:
            rows.append((ra0 + east / 3600 / np.cos(np.radians(dec0)), dec0 + north / 3600, z, nq))
    table = Table(rows=rows, names=("RA", "DEC", "Z", "NQ"))
    table["CATAID"] = np.arange(1, len(table) + 1)
    return table


def build_scenario(root: Path) -> Scenario:
    write_tiles(root / "tiles")
    photometry_table().write(root / "kids_bright.fits")
    spectra_table().write(root / "gama.fits")
    return Scenario(root / "tiles", root / "kids_bright.fits", root / "gama.fits")
