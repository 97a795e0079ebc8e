"""KiDS DR4 tiles + KiDS-Bright photometry (+ GAMA spectroscopy) -> a dataset directory.

`ingest` is the real-survey counterpart of `hzexp.data.mock.simulate`: it validates every
input before writing anything (tiles with a celestial WCS and all four bands, the catalogue
columns, the parameters), applies the KiDS-Bright selection (paper 2.2), labels galaxies with
GAMA redshifts (paper 2.3), cuts each galaxy out of the tile that holds it (u,g,r,i, raw
pixel values) and streams the result tile by tile into a `DatasetWriter`, which makes the
directory appear only when complete. The manifest records the input files with their SHA-256
checksums, the parameters and the counts of every step (`IngestReport`).

With `spec_file` the dataset is the labelled KiDS x GAMA training set: galaxies without a
matched redshift are dropped (training needs a redshift for every galaxy). Without it, every
selected galaxy is kept with a null z_spec, for prediction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hzexp._io import file_sha256
from hzexp.data.kids.catalogue import (
    GALAXY_TYPE_KEY,
    KIDS_MASK_BITS,
    REQUIRED_COLUMNS,
    SELECTION,
    check_photometry_columns,
    read_photometry,
)
from hzexp.data.kids.ids import KIDS_ID_FILE, OBJECT_ID_RULE, KidsIdTable
from hzexp.data.kids.matching import (
    MIN_NQ,
    MIN_Z,
    SPEC_COLUMNS,
    check_spec_columns,
    match_spectra,
    read_spectra,
)
from hzexp.data.kids.tiles import (
    PSF_KEYWORDS,
    Tile,
    assign_to_tiles,
    cut_out,
    discover_tiles,
    pixel_scale_arcsec,
)
from hzexp.data.store import (
    CATALOGUE_COLUMNS,
    IMAGE_BANDS,
    PSF_COLUMNS,
    DatasetError,
    DatasetWriter,
)

EDGE_POLICIES = ("drop", "pad")
# the writer adds image_index
WRITTEN_COLUMNS = [c for c in CATALOGUE_COLUMNS if c != "image_index"] + list(PSF_COLUMNS)
IMAGE_ORIENTATION = ("cutouts are slices of the tile pixel arrays, not resampled: axis 0 = "
                     "tile y (NAXIS2), axis 1 = tile x (NAXIS1); KiDS tiles are north up, "
                     "east left, so RA runs along axis 1 (increasing towards lower x)")
IMAGE_FLUX_UNIT = "KiDS DR4 co-add pixel values (flux relative to magnitude zero), unscaled"


@dataclass
class IngestReport:
    """Counts of every ingestion step; `summary()` is the text stored in the manifest.

    `failed_criterion` counts failures per selection criterion independently (a star may
    fail several). Spectroscopic fields are None for an unlabelled ingestion.
    """

    photometry_rows: int = 0
    failed_criterion: dict[str, int] = field(default_factory=dict)
    selected: int = 0
    selected_masked: int = 0
    spectra_read: int | None = None
    spectra_low_quality: int | None = None
    spectra_z_too_low: int | None = None
    spectra_z_outside_contract: int | None = None
    spectra_usable: int | None = None
    matched: int | None = None
    lost_to_nearer: int | None = None
    unmatched_dropped: int | None = None
    tiles: int = 0
    tiles_unknown_seeing: list[str] = field(default_factory=list)
    outside_tiles: int = 0
    off_edge: int = 0
    edge_policy: str = "drop"
    nonfinite_pixels: int = 0
    written: int = 0
    written_masked: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        failed = ", ".join(f"{name}: {count}" for name, count in self.failed_criterion.items())
        lines = [f"photometry: {self.photometry_rows} rows read; failed {failed}",
                 f"selected (KiDS-Bright): {self.selected} ({self.selected_masked} flagged masked)"]
        if self.spectra_read is not None:
            lines += [f"spectra: {self.spectra_read} read, {self.spectra_low_quality} NQ<{MIN_NQ}, "
                      f"{self.spectra_z_too_low} z<={MIN_Z}, {self.spectra_z_outside_contract} "
                      f"z outside the contract range, {self.spectra_usable} usable",
                      f"matched: {self.matched} ({self.lost_to_nearer} lost their spectrum to a "
                      f"nearer galaxy; {self.unmatched_dropped} selected galaxies without a "
                      f"spec-z dropped)"]
        action = "dropped" if self.edge_policy == "drop" else "zero-padded and flagged masked"
        nonfinite = "dropped" if self.edge_policy == "drop" else "zero-filled and flagged masked"
        unknown = (f"; seeing unknown (no {'/'.join(PSF_KEYWORDS)} keyword) in "
                   f"{', '.join(self.tiles_unknown_seeing)}" if self.tiles_unknown_seeing else "")
        lines += [f"tiles: {self.tiles}; {self.outside_tiles} galaxies on no tile{unknown}",
                  f"cutouts: {self.off_edge} running off a tile edge {action}; "
                  f"{self.nonfinite_pixels} with non-finite pixels {nonfinite}",
                  f"written: {self.written} ({self.written_masked} flagged masked)"]
        return "\n".join(lines)


def ingest(tiles_dir: str | Path, photometry_file: str | Path, out_dir: str | Path,
           spec_file: str | Path | None = None, match_radius_arcsec: float = 1.0,
           cutout_size: int = 48, column_map: dict[str, str] | None = None,
           edge_policy: str = "drop", chunk_size: int = 1024, progress: bool = True,
           overwrite: bool = False) -> IngestReport:
    """Write the dataset directory `out_dir` from KiDS tiles and catalogues; return the counts.

    `column_map` maps KiDS photometry names, GAMA spectroscopic names (RA, DEC, Z, NQ) or the
    key "galaxy_type" (a red/blue classification column) to the names in the files.
    `edge_policy`: "drop" galaxies whose cutout would run off their tile, or "pad" them with
    zeros and flag them masked (the constant border would otherwise pass as sky).
    """
    column_map = dict(column_map or {})
    _check_parameters(match_radius_arcsec, cutout_size, column_map, edge_policy, chunk_size)
    tiles = discover_tiles(tiles_dir)
    photometry_file = Path(photometry_file)
    spec_file = None if spec_file is None else Path(spec_file)
    check_photometry_columns(photometry_file, column_map)
    if spec_file is not None:
        check_spec_columns(spec_file, column_map)
    provenance = {
        "source": "kids", "generator": "hzexp.data.kids.ingest",
        "parameters": {"match_radius_arcsec": match_radius_arcsec, "cutout_size": cutout_size,
                       "edge_policy": edge_policy, "column_map": column_map,
                       "selection": list(SELECTION), "mask_bits": KIDS_MASK_BITS,
                       "spectra": f"NQ >= {MIN_NQ}, z > {MIN_Z}, nearest within radius, "
                                  "each spectrum used once (nearer galaxy wins)"},
        "object_id": OBJECT_ID_RULE, "kids_id_file": KIDS_ID_FILE,
        "image_orientation": IMAGE_ORIENTATION, "image_flux_unit": IMAGE_FLUX_UNIT,
    }
    # DatasetWriter writes this dict into the manifest when it closes, so the inputs and
    # counts added below (once known) are recorded with the dataset.
    writer = DatasetWriter(out_dir, cutout_size, provenance, pixel_scale_arcsec(tiles),
                           overwrite=overwrite)
    report = IngestReport(tiles=len(tiles), edge_policy=edge_policy)
    report.tiles_unknown_seeing = [
        f"{t.name} ({','.join(b for b, v in zip(IMAGE_BANDS, t.psf_fwhm_arcsec) if np.isnan(v))})"
        for t in tiles if np.isnan(t.psf_fwhm_arcsec).any()]

    catalogue, report.failed_criterion, report.photometry_rows = read_photometry(
        photometry_file, column_map)
    report.selected = len(catalogue)
    report.selected_masked = int(catalogue["masked"].sum())
    if spec_file is None:
        catalogue["z_spec"] = np.nan
    else:
        catalogue = _label_with_spectra(catalogue, spec_file, column_map, match_radius_arcsec,
                                        report)

    assignment = assign_to_tiles(tiles, catalogue["ra"].to_numpy(), catalogue["dec"].to_numpy(),
                                 cutout_size)
    on_tile = assignment.tile >= 0
    report.outside_tiles = int((~on_tile).sum())
    report.off_edge = int((on_tile & ~assignment.fits_fully).sum())
    keep = on_tile & (assignment.fits_fully | (edge_policy == "pad"))
    if not keep.any():
        raise DatasetError(f"{out_dir}: no galaxies to write\n{report.summary()}")
    catalogue["masked"] |= ~assignment.fits_fully

    provenance["inputs"] = _input_checksums(tiles, photometry_file, spec_file, progress)
    by_tile = np.flatnonzero(keep)[np.argsort(assignment.tile[keep], kind="stable")]
    tile_index, first = np.unique(assignment.tile[by_tile], return_index=True)
    with writer, KidsIdTable(writer) as id_table:
        for index, tile_rows in tqdm(zip(tile_index, np.split(by_tile, first[1:])),
                                     total=len(tile_index), unit="tile", desc="cutouts",
                                     disable=not progress):
            for start in range(0, len(tile_rows), chunk_size):
                rows = tile_rows[start:start + chunk_size]
                part, images = _cut_out_chunk(tiles[index],
                                              catalogue.iloc[rows].reset_index(drop=True),
                                              assignment.fits_fully[rows], cutout_size,
                                              edge_policy, report)
                if len(part):
                    writer.append(part.loc[:, WRITTEN_COLUMNS], images)
                    id_table.append(part["object_id"].to_numpy(), part["kids_id"])
                    report.written_masked += int(part["masked"].sum())
        report.written = writer.n_rows
        provenance["counts"] = report.as_dict()
        provenance["summary"] = report.summary()
    return report


def _label_with_spectra(catalogue: pd.DataFrame, spec_file: Path, column_map: dict[str, str],
                        match_radius_arcsec: float, report: IngestReport) -> pd.DataFrame:
    """The galaxies that match a secure spectrum, with its redshift as z_spec."""
    spectra, counts = read_spectra(spec_file, column_map)
    matches = match_spectra(catalogue["ra"].to_numpy(), catalogue["dec"].to_numpy(), spectra,
                            match_radius_arcsec)
    report.spectra_read = counts.read
    report.spectra_low_quality = counts.low_quality
    report.spectra_z_too_low = counts.z_too_low
    report.spectra_z_outside_contract = counts.z_outside_contract
    report.spectra_usable = counts.usable
    report.matched = int(matches.matched.sum())
    report.lost_to_nearer = matches.lost_to_nearer
    report.unmatched_dropped = report.selected - report.matched
    return catalogue.assign(z_spec=matches.z_spec)[matches.matched].reset_index(drop=True)


def _cut_out_chunk(tile: Tile, part: pd.DataFrame, fits_fully: np.ndarray, cutout_size: int,
                   edge_policy: str, report: IngestReport) -> tuple[pd.DataFrame, np.ndarray]:
    """Cutouts of `part`; galaxies with non-finite pixels dropped or zero-filled and masked."""
    images = cut_out(tile, part["ra"].to_numpy(), part["dec"].to_numpy(), cutout_size, fits_fully)
    part[list(PSF_COLUMNS)] = np.float32(tile.psf_fwhm_arcsec)
    finite = np.isfinite(images).all(axis=(1, 2, 3))
    report.nonfinite_pixels += int((~finite).sum())
    if edge_policy == "drop":
        return part[finite].reset_index(drop=True), images[finite]
    np.nan_to_num(images, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    part["masked"] = part["masked"].to_numpy() | ~finite
    return part, images


def _check_parameters(match_radius_arcsec: float, cutout_size: int, column_map: dict[str, str],
                      edge_policy: str, chunk_size: int) -> None:
    if not match_radius_arcsec > 0:
        raise DatasetError(f"match_radius_arcsec must be > 0, got {match_radius_arcsec}")
    if int(cutout_size) != cutout_size or cutout_size < 1:
        raise DatasetError(f"cutout_size must be a positive number of pixels, got {cutout_size}")
    if edge_policy not in EDGE_POLICIES:
        raise DatasetError(f"edge_policy must be one of {EDGE_POLICIES}, got {edge_policy!r}")
    if chunk_size < 1:
        raise DatasetError(f"chunk_size must be >= 1, got {chunk_size}")
    unknown = sorted(set(column_map) - {*REQUIRED_COLUMNS, *SPEC_COLUMNS, GALAXY_TYPE_KEY})
    if unknown:
        raise DatasetError(f"column_map: unknown key(s) {unknown}; keys are KiDS photometry "
                           f"or GAMA column names, or {GALAXY_TYPE_KEY!r}")


def _input_checksums(tiles: list[Tile], photometry_file: Path, spec_file: Path | None,
                     progress: bool) -> dict:
    """{tiles: {tile: {band: {file, sha256}}}, photometry: {...}, spectroscopy: {...}|None}."""
    files = [f for tile in tiles for f in tile.files()] + [photometry_file]
    files += [] if spec_file is None else [spec_file]
    digests = {path: file_sha256(path)
               for path in tqdm(files, unit="file", desc="checksums", disable=not progress)}

    def entry(path: Path) -> dict:
        return {"file": str(path.resolve()), "sha256": digests[path]}

    return {"tiles": {tile.name: {band: entry(tile.bands[band].path) for band in IMAGE_BANDS}
                      for tile in tiles},
            "photometry": entry(photometry_file),
            "spectroscopy": None if spec_file is None else entry(spec_file)}
