"""The built-in KiDS-like mock survey (KiDS-Bright x GAMA stand-in), written as a dataset.

`simulate` draws galaxies block by block and streams them into a `DatasetWriter`, so memory
does not grow with the number of galaxies. Each block of `GENERATION_BLOCK` galaxies has its
own random generator seeded from (seed, block index): the content (and its hash) depends on
the seed only, not on `chunk_size` (the write buffering), and galaxy i is the same in every
mock of the same seed that contains it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hzexp.config import ConfigError
from hzexp.data.mock.defects import add_artefacts, add_neighbours
from hzexp.data.mock.flux_table import FluxTable, survey_flux_table
from hzexp.data.mock.images import PADDED_SIZE, render_stamps, sky_sigma_per_pixel
from hzexp.data.mock.parameters import MockParameters
from hzexp.data.mock.photometry import component_fluxes, observe_catalogue, zero_point_factors
from hzexp.data.mock.population import CandidateSampler, CosmologyGrid, add_structure
from hzexp.data.mock.sed import SEDPY_FILTER_NAMES, TEMPLATE_FILES
from hzexp.data.store import IMAGE_BANDS, MAG_BANDS, PSF_COLUMNS, DatasetWriter

#: Version of the generative model: bump it whenever the code that turns parameters and a
#: seed into galaxies changes (new physics, a different order of random draws), so cached
#: mock datasets written by older code are detected as stale through `mock_fingerprint`.
#: 2: bulge/disk with separate SED variation (tight old bulges, scattered disks), compact
#:    bulges, stronger B/T-type link, catalogue zero-point error 0.02 mag.
#: 3: zero-point errors (0.01 mag) shared by the images and the catalogue's u,g,r,i (they
#:    are measured on the same coadds) instead of independent 0.02 mag image and catalogue
#:    draws; GAaP aperture errors (0.03 mag) catalogue-only; less disk SED scatter.
#: 4: seeing per 1 deg tile and band (KiDS DR4-like), written as psf_fwhm_u..i; positions
#:    drawn before the images.
MOCK_MODEL_VERSION = 4
#: Galaxies per random-generator block: fixed, so results never depend on `chunk_size`.
GENERATION_BLOCK = 512
#: First object_id; ids are OBJECT_ID_OFFSET + position in the mock.
OBJECT_ID_OFFSET = 9_000_000_000
_IMAGE_BAND_INDEX = [MAG_BANDS.index(b) for b in IMAGE_BANDS]
#: Sub-pixel jitter of the galaxy centre (px), as for cutouts centred on catalogue positions.
_CENTRE_JITTER_PX = 0.3
#: Range of a wrong (blunder) spectroscopic redshift.
_BLUNDER_Z_RANGE = (0.02, 0.8)
#: Entropy word of the tile-seeing generator, apart from the block generators' indices.
_TILE_SEEING_STREAM = 2**32 - 1


@dataclass(frozen=True)
class GalaxyBlock:
    """Selected galaxies: structure, true component fluxes (n, 9), the zero-point factors
    (n, 9) their images and catalogue share, and catalogue columns."""

    galaxies: pd.DataFrame
    bulge_flux: np.ndarray
    disk_flux: np.ndarray
    zero_point: np.ndarray
    catalogue: pd.DataFrame

    def head(self, n: int) -> GalaxyBlock:
        return GalaxyBlock(self.galaxies.iloc[:n].reset_index(drop=True), self.bulge_flux[:n],
                           self.disk_flux[:n], self.zero_point[:n],
                           self.catalogue.iloc[:n].reset_index(drop=True))


class MockSurvey:
    """Precomputed state of one mock (flux table, cosmology, LF sampler) and the draws."""

    def __init__(self, params: MockParameters | None = None, table: FluxTable | None = None):
        self.params = params or MockParameters()
        self.table = table or survey_flux_table()
        self.cosmology = CosmologyGrid.build(self.params)
        self.sampler = CandidateSampler(self.params, self.cosmology, self.table)
        p = self.params
        self._tile_seeing: dict[int, np.ndarray] = {}
        self.sky_sigma = sky_sigma_per_pixel(
            np.asarray(p.depth_5sigma)[_IMAGE_BAND_INDEX], np.asarray(p.psf_fwhm_median_arcsec),
            p.psf_moffat_beta, p.depth_aperture_diameter_arcsec, p.pixel_scale_arcsec,
            p.image_zero_point_ab).astype(np.float32)

    def draw_galaxies(self, rng: np.random.Generator, n: int) -> GalaxyBlock:
        """`n` galaxies passing r_auto < limit, with photometry but no images."""
        p = self.params
        parts: list[GalaxyBlock] = []
        selected = 0
        while selected < n:
            candidates = add_structure(self.sampler.draw(rng, 2 * n), self.cosmology, p, rng)
            candidates["masked"] = rng.random(len(candidates)) < p.masked_fraction
            bulge, disk = component_fluxes(candidates, self.table, self.cosmology, p, rng)
            zero_point = zero_point_factors(len(candidates), p, rng)
            catalogue = observe_catalogue((bulge + disk) * zero_point,
                                          candidates["half_light_arcsec"].to_numpy(),
                                          candidates["masked"].to_numpy(), p, rng)
            keep = (catalogue["mag_r_auto"] < p.r_auto_limit).to_numpy()
            parts.append(GalaxyBlock(candidates[keep].reset_index(drop=True), bulge[keep],
                                     disk[keep], zero_point[keep],
                                     catalogue[keep].reset_index(drop=True)))
            selected += int(keep.sum())
        return GalaxyBlock(pd.concat([b.galaxies for b in parts], ignore_index=True),
                           np.concatenate([b.bulge_flux for b in parts]),
                           np.concatenate([b.disk_flux for b in parts]),
                           np.concatenate([b.zero_point for b in parts]),
                           pd.concat([b.catalogue for b in parts], ignore_index=True)).head(n)

    def tile_seeing(self, seed: int) -> np.ndarray:
        """(180, 360, 4) PSF FWHM (arcsec) of the 1 x 1 deg tile at [floor(dec) + 90,
        floor(ra)], per image band: one draw per seed, whatever block asks."""
        if seed not in self._tile_seeing:
            p = self.params
            rng = np.random.default_rng(np.random.SeedSequence([seed, _TILE_SEEING_STREAM]))
            log_fwhm = (np.log(p.psf_fwhm_median_arcsec) + np.asarray(p.psf_fwhm_lognormal_sigma)
                        * rng.standard_normal((180, 360, len(IMAGE_BANDS))))
            self._tile_seeing[seed] = (np.clip(np.exp(log_fwhm), *p.psf_fwhm_range_arcsec)
                                       * p.psf_fwhm_scale).astype(np.float32)
        return self._tile_seeing[seed]

    def seeing_at(self, seed: int, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """(n, 4) tile PSF FWHM (arcsec) at the positions: the catalogue's psf_fwhm_*."""
        row = np.clip(np.floor(dec).astype(int) + 90, 0, 179)
        return self.tile_seeing(seed)[row, np.floor(ra).astype(int) % 360]

    def render(self, block: GalaxyBlock, seeing: np.ndarray, rng: np.random.Generator,
               stored_size: int) -> np.ndarray:
        """Images of a block: the shared zero points, (d) each galaxy's PSF around its
        tile's `seeing` (n, 4 arcsec), defects, sky noise."""
        p = self.params
        g = block.galaxies
        n = len(g)
        n_bands = len(IMAGE_BANDS)
        zero_point = block.zero_point[:, _IMAGE_BAND_INDEX]
        psf_fwhm_px = (seeing / p.pixel_scale_arcsec
                       * np.exp(p.psf_fwhm_jitter_sigma * rng.standard_normal((n, n_bands))))
        to_px = 1.0 / p.pixel_scale_arcsec
        stamps = render_stamps(
            bulge_flux=block.bulge_flux[:, _IMAGE_BAND_INDEX] * zero_point,
            disk_flux=block.disk_flux[:, _IMAGE_BAND_INDEX] * zero_point,
            bulge_re_px=g["bulge_re_arcsec"].to_numpy() * to_px,
            bulge_axis_ratio=g["bulge_axis_ratio"].to_numpy(),
            disk_re_px=g["disk_re_arcsec"].to_numpy() * to_px,
            disk_axis_ratio=g["disk_axis_ratio"].to_numpy(),
            position_angle=g["position_angle"].to_numpy(),
            offset_px=rng.uniform(-_CENTRE_JITTER_PX, _CENTRE_JITTER_PX, (n, 2)),
            psf_fwhm_px=psf_fwhm_px, psf_beta=p.psf_moffat_beta, stored_size=stored_size)
        add_neighbours(stamps, p.neighbour_fraction, rng)
        add_artefacts(stamps, g["masked"].to_numpy(), psf_fwhm_px, self.sky_sigma,
                      p.image_zero_point_ab, rng)
        noise = rng.standard_normal(stamps.shape, dtype=np.float32)
        noise *= self.sky_sigma
        stamps += noise
        return stamps

    def block(self, seed: int, index: int, stored_size: int) -> tuple[pd.DataFrame, np.ndarray]:
        """Catalogue rows (contract columns) and images of generation block `index`."""
        rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
        galaxies = self.draw_galaxies(rng, GENERATION_BLOCK)
        ra, dec = sky_positions(rng, GENERATION_BLOCK, self.params.sky_patches_deg)
        seeing = self.seeing_at(seed, ra, dec)
        images = self.render(galaxies, seeing, rng, stored_size)
        rows = self._catalogue_rows(galaxies, index, ra, dec, rng)
        rows[list(PSF_COLUMNS)] = seeing
        return rows, images

    def _catalogue_rows(self, block: GalaxyBlock, index: int, ra: np.ndarray, dec: np.ndarray,
                        rng: np.random.Generator) -> pd.DataFrame:
        p = self.params
        g = block.galaxies
        n = len(g)
        blunder = rng.random(n) < p.wrong_spec_z_fraction
        z_spec = np.where(blunder, rng.uniform(*_BLUNDER_Z_RANGE, n), g["z"].to_numpy())
        rows = pd.DataFrame({
            "object_id": OBJECT_ID_OFFSET + index * GENERATION_BLOCK + np.arange(n, dtype=np.int64),
            "ra": ra, "dec": dec, "z_spec": z_spec})
        rows = pd.concat([rows, block.catalogue], axis=1)
        rows["masked"] = g["masked"].to_numpy()
        rows["galaxy_type"] = np.where(g["is_red"].to_numpy(), "red", "blue")
        return rows


def mock_fingerprint(params: MockParameters | None = None) -> str:
    """Short hash of `MOCK_MODEL_VERSION`, the generation block and every parameter value.

    Two mocks of the same seed have the same content iff their fingerprints agree; it is
    written into the manifest provenance, so a consumer can tell a cached mock made by
    older code (or other parameters) from a current one.
    """
    params = params or MockParameters()
    record = {"model_version": MOCK_MODEL_VERSION, "generation_block": GENERATION_BLOCK,
              "parameters": params.as_provenance()}
    text = json.dumps(record, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sky_positions(rng: np.random.Generator, n: int,
                  patches: tuple[tuple[float, float, float, float], ...]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Uniform positions on the sphere (uniform in sin dec) within GAMA-like patches."""
    patch = np.asarray(patches)[rng.integers(len(patches), size=n)]
    ra = rng.uniform(patch[:, 0], patch[:, 1])
    sin_dec = rng.uniform(np.sin(np.radians(patch[:, 2])), np.sin(np.radians(patch[:, 3])))
    return ra, np.degrees(np.arcsin(sin_dec))


def simulate(out_dir: str | Path, n_galaxies: int, seed: int = 42, chunk_size: int = 2048,
             stored_size: int = 48, progress: bool = True, overwrite: bool = False,
             params: MockParameters | None = None) -> Path:
    """Write a mock dataset directory of `n_galaxies` and return its path.

    Deterministic: the same seed (and parameters) gives the same content hash whatever the
    `chunk_size` (rows per write). Written atomically by `DatasetWriter`.
    """
    if n_galaxies < 1:
        raise ConfigError(f"n_galaxies = {n_galaxies}: must be >= 1")
    if not 1 <= stored_size <= PADDED_SIZE - 16:
        raise ConfigError(f"stored_size = {stored_size}: must be in [1, {PADDED_SIZE - 16}]")
    survey = MockSurvey(params)
    provenance = {
        "source": "mock", "generator": "hzexp.data.mock.simulate", "seed": seed,
        "n_galaxies": n_galaxies, "generation_block": GENERATION_BLOCK,
        "templates": list(TEMPLATE_FILES), "filters": list(SEDPY_FILTER_NAMES),
        "image_flux_unit": f"10^(-0.4 (m_AB - {survey.params.image_zero_point_ab}))",
        "parameters": survey.params.as_provenance(),
        "mock_model_version": MOCK_MODEL_VERSION,
        "mock_fingerprint": mock_fingerprint(survey.params),
    }
    n_blocks = -(-n_galaxies // GENERATION_BLOCK)
    with DatasetWriter(out_dir, stored_size, provenance, survey.params.pixel_scale_arcsec,
                       overwrite=overwrite) as writer, \
            tqdm(total=n_galaxies, unit="gal", desc="mock", disable=not progress) as bar:
        pending: list[tuple[pd.DataFrame, np.ndarray]] = []
        for index in range(n_blocks):
            rows = min(GENERATION_BLOCK, n_galaxies - index * GENERATION_BLOCK)
            catalogue, images = survey.block(seed, index, stored_size)
            pending.append((catalogue.iloc[:rows], images[:rows]))
            bar.update(rows)
            if sum(len(c) for c, _ in pending) >= chunk_size or index == n_blocks - 1:
                writer.append(pd.concat([c for c, _ in pending], ignore_index=True),
                              np.concatenate([i for _, i in pending]))
                pending = []
    return Path(out_dir)
