"""The official Hybrid-z training table (one FITS binary table) -> a dataset directory.

The table (github.com/Anjithajm/Hybrid-z, `data.fits`) has one row per galaxy: KiDS_ID, RA,
DEC, Zspec, the nine magnitudes umag gmag rmag imag Zmag Ymag Jmag Hmag KSmag, and the 4-band
cutout in an array column with TDIM = '(4,36,36)'. FITS lists TDIM fastest axis first
(Fortran order), so numpy -- and astropy, which reverses it -- sees each cell as
(36, 36, 4): (y, x, band), the layout the official code reshapes to. The bands along the last
axis are u, g, r, i (pass `image_bands` if a table stores them otherwise); they are written
in the contract's u, g, r, i order. Cutouts are stored at the table's size (36 px).

What the table lacks is filled by documented rule: no MAG_AUTO, so `mag_r_auto` = rmag (the
GAAP r magnitude, a proxy for the r < 20 selection, used only for reporting); no magnitude
errors (NaN); no MASK (masked = False: all rows count as clean); no colour class
(galaxy_type null); no seeing (psf_fwhm_* null: unknown). KiDS 99 / -99 magnitudes become
NaN (the writer's rule, `hzexp.data.store.physical_magnitudes`). `Zspec` is stored as read
(NaN = null): it is checked where it is used, by training and evaluation. `object_id`
follows the KiDS rule of `hzexp.data.kids.ids`, so the same galaxy has the same id as in a
tile ingestion.

Rows are streamed from the memory-mapped table `chunk_size` at a time (a row is ~21 kB of
pixels, 1.2 million rows ~25 GB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits
from tqdm.auto import tqdm

from hzexp._io import file_sha256, first_binary_table, open_fits
from hzexp.data.kids.catalogue import resolve_columns
from hzexp.data.kids.ids import KIDS_ID_FILE, OBJECT_ID_RULE, KidsIdTable, kids_object_ids
from hzexp.data.store import (
    IMAGE_BANDS,
    MAG_BANDS,
    MAGERR_COLUMNS,
    DatasetError,
    DatasetWriter,
)

OFFICIAL_MAG_COLUMNS = dict(zip(("umag", "gmag", "rmag", "imag", "Zmag", "Ymag", "Jmag",
                                 "Hmag", "KSmag"), (f"mag_{b}" for b in MAG_BANDS)))
OFFICIAL_COLUMNS = ("KiDS_ID", "RA", "DEC", *OFFICIAL_MAG_COLUMNS)
OFFICIAL_Z_COLUMN = "Zspec"
PIXEL_SCALE_ARCSEC = 0.2


def find_image_column(hdu: fits.BinTableHDU, where: str) -> str:
    """The one column whose cells are (S, S, 4) arrays, i.e. TDIM '(4,S,S)'."""
    found = [name for name in hdu.columns.names
             if (shape := hdu.data.dtype[name].shape) and len(shape) == 3
             and shape[0] == shape[1] and shape[2] == len(IMAGE_BANDS)]
    if len(found) != 1:
        raise DatasetError(f"{where}: expected one image column with TDIM '(4,S,S)' (cells of "
                           f"shape (S, S, 4)), found {found or 'none'}")
    return found[0]


def read_official_table(fits_file: str | Path, out_dir: str | Path, chunk_size: int = 2048,
                        image_column: str | None = None,
                        z_column: str | None = OFFICIAL_Z_COLUMN,
                        image_bands: tuple[str, ...] = IMAGE_BANDS,
                        column_map: dict[str, str] | None = None, progress: bool = True,
                        overwrite: bool = False) -> Path:
    """Write the dataset directory `out_dir` from an official Hybrid-z table; return its path.

    `image_column`: name of the cutout column (default: found by its shape). `z_column`: the
    spectroscopic redshift column (its values kept as they are, NaN = null), or None for an
    unlabelled table. `image_bands`: the band order along the cells' last axis in the file.
    `column_map`: {expected: actual} for other spellings of KiDS_ID, RA, DEC or the
    magnitude columns.
    """
    fits_file = Path(fits_file)
    if sorted(image_bands) != sorted(IMAGE_BANDS):
        raise DatasetError(f"image_bands must be a permutation of {IMAGE_BANDS}, got {image_bands}")
    if chunk_size < 1:
        raise DatasetError(f"chunk_size must be >= 1, got {chunk_size}")
    to_contract_order = [image_bands.index(b) for b in IMAGE_BANDS]
    with open_fits(fits_file, DatasetError) as hdul:
        hdu = first_binary_table(hdul, fits_file, DatasetError)
        wanted = OFFICIAL_COLUMNS + ((z_column,) if z_column else ())
        columns = resolve_columns(hdu.columns.names, wanted, column_map or {}, str(fits_file))
        image_column = image_column or find_image_column(hdu, str(fits_file))
        if image_column not in hdu.columns.names:
            raise DatasetError(f"{fits_file}: image column {image_column!r} missing")
        stored_size = hdu.data.dtype[image_column].shape[0]
        provenance = {
            "source": "hybrid-z-official-table",
            "generator": "hzexp.data.kids.official.read_official_table",
            "inputs": {"table": {"file": str(fits_file.resolve()),
                                 "sha256": file_sha256(fits_file)}},
            "image_column": image_column, "image_tdim": hdu.columns[image_column].dim,
            "image_bands_in_file": list(image_bands), "columns": columns,
            "mag_r_auto": "rmag (the table has no MAG_AUTO)", "magerr": "NaN (not in the table)",
            "masked": "False (no MASK in the table)", "object_id": OBJECT_ID_RULE,
            "kids_id_file": KIDS_ID_FILE, "n_rows": len(hdu.data),
        }
        with DatasetWriter(out_dir, stored_size, provenance, PIXEL_SCALE_ARCSEC,
                           overwrite=overwrite) as writer, KidsIdTable(writer) as id_table:
            for start in tqdm(range(0, len(hdu.data), chunk_size), unit="chunk",
                              desc="official table", disable=not progress):
                rows = hdu.data[start:start + chunk_size]
                catalogue = _catalogue_chunk(rows, columns, z_column)
                images = np.asarray(rows[image_column], dtype=np.float32)[..., to_contract_order]
                writer.append(catalogue, images)
                id_table.append(catalogue["object_id"].to_numpy(), rows[columns["KiDS_ID"]])
    return Path(out_dir)


def _catalogue_chunk(rows: fits.FITS_rec, columns: dict[str, str],
                     z_column: str | None) -> pd.DataFrame:
    """Contract catalogue rows (without image_index) of a chunk of the table."""
    catalogue = pd.DataFrame({
        "object_id": kids_object_ids(rows[columns["KiDS_ID"]]),
        "ra": np.asarray(rows[columns["RA"]], dtype=float),
        "dec": np.asarray(rows[columns["DEC"]], dtype=float),
        "z_spec": (np.asarray(rows[columns[z_column]], dtype=float) if z_column
                   else np.full(len(rows), np.nan)),
    })
    for official, contract in OFFICIAL_MAG_COLUMNS.items():
        catalogue[contract] = np.asarray(rows[columns[official]], dtype=float)
    for column in MAGERR_COLUMNS:
        catalogue[column] = np.nan
    catalogue["mag_r_auto"] = catalogue["mag_r"]
    catalogue["masked"] = False
    catalogue["galaxy_type"] = None
    return catalogue
