"""Read a KiDS-Bright photometric catalogue and apply the KiDS-Bright selection (paper 2.2).

Input: FITS, parquet or CSV with the KiDS DR4 column names; `column_map` renames
{KiDS name: name in the file} for other spellings (e.g. {"MAG_AUTO": "MAG_AUTO_CALIB"}).
Only the needed columns are read. The whole catalogue is held in memory (1.2 million rows x
~30 columns is ~250 MB); only the images are streamed.

Selection (cuts): MAG_AUTO < 20, CLASS_STAR < 0.5, SG2DPHOT == 0, SG_FLAG == 1,
IMAFLAGS_ISO == 0. The MASK criterion is *not* a cut: `masked = (MASK & 28668) > 0` is kept
as a flag so the 'clean' subsample can be evaluated separately (paper 5.1).
KiDS writes 99 / -99 for undetected magnitudes: the dataset writer turns those (and any
magnitude outside the contract's physical range) and their errors into NaN, by the rule of
`hzexp.data.store.physical_magnitudes`; an error of 99 / -99 alone becomes NaN here.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.table import Table

from hzexp._io import first_binary_table, is_fits, open_fits
from hzexp.data.kids.ids import kids_id_text, kids_object_ids
from hzexp.data.store import KIDS_MISSING_MAGNITUDE, MAG_BANDS, DatasetError

KIDS_ID_COLUMN = "ID"
KIDS_POSITION_COLUMNS = ("RAJ2000", "DECJ2000")
KIDS_MAG_COLUMNS = tuple(f"MAG_GAAP_{b}" for b in MAG_BANDS)
KIDS_MAGERR_COLUMNS = tuple(f"MAGERR_GAAP_{b}" for b in MAG_BANDS)
KIDS_AUTO_COLUMN = "MAG_AUTO"
KIDS_MASK_COLUMN = "MASK"
#: MASK bits that flag unreliable photometry in KiDS-Bright (B21): masked = (MASK & bits) > 0.
KIDS_MASK_BITS = 28668
R_AUTO_LIMIT = 20.0
#: Selection criteria: name -> (KiDS column, test that keeps a row). Names appear in reports.
SELECTION = {
    "MAG_AUTO<20": ("MAG_AUTO", lambda v: v < R_AUTO_LIMIT),
    "CLASS_STAR<0.5": ("CLASS_STAR", lambda v: v < 0.5),
    "SG2DPHOT=0": ("SG2DPHOT", lambda v: v == 0),
    "SG_FLAG=1": ("SG_FLAG", lambda v: v == 1),
    "IMAFLAGS_ISO=0": ("IMAFLAGS_ISO", lambda v: v == 0),
}
REQUIRED_COLUMNS = tuple(dict.fromkeys((
    KIDS_ID_COLUMN, *KIDS_POSITION_COLUMNS, *KIDS_MAG_COLUMNS, *KIDS_MAGERR_COLUMNS,
    KIDS_AUTO_COLUMN, KIDS_MASK_COLUMN, *(column for column, _ in SELECTION.values()))))
#: Optional `column_map` key naming a red/blue classification column. Accepted values:
#: "red"/"blue" (any case), or numbers/booleans with 1/True = red and 0/False = blue; null or
#: NaN -> null.
GALAXY_TYPE_KEY = "galaxy_type"


def resolve_columns(available: list[str], wanted: tuple[str, ...], column_map: dict[str, str],
                    where: str) -> dict[str, str]:
    """{wanted name: name in the file}; raise naming the first missing column and close names."""
    resolved = {name: column_map.get(name, name) for name in wanted}
    for name, actual in resolved.items():
        if actual not in available:
            raise DatasetError(f"{where}: required column {actual!r} missing"
                               + _close_names_hint(actual, available, name))
    return resolved


def _close_names_hint(name: str, available: list[str], kids_name: str) -> str:
    lower = {c.lower(): c for c in available}
    close = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.6)
    if not close:
        return ""
    names = ", ".join(repr(lower[c]) for c in close)
    return f" (close: {names}; map it with column_map={{{kids_name!r}: {lower[close[0]]!r}}})"


def read_table(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """FITS, parquet or CSV (by suffix) as a DataFrame, only `columns` when given."""
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return pd.read_parquet(path, columns=columns)
    if name.endswith((".csv", ".csv.gz")):
        return pd.read_csv(path, usecols=columns)
    if is_fits(path):
        table = Table.read(path, format="fits", memmap=True)
        table = table[columns] if columns else table
        table.convert_bytestring_to_unicode()
        return table.to_pandas()
    raise DatasetError(f"{path}: unknown catalogue format (expected .fits, .parquet or .csv)")


def column_names(path: Path) -> list[str]:
    """Column names without reading the data (header or schema only where possible)."""
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    if name.endswith((".csv", ".csv.gz")):
        return list(pd.read_csv(path, nrows=0).columns)
    if is_fits(path):
        with open_fits(path, DatasetError) as hdul:
            return list(first_binary_table(hdul, path, DatasetError).columns.names)
    raise DatasetError(f"{path}: unknown catalogue format (expected .fits, .parquet or .csv)")


def check_photometry_columns(path: Path, column_map: dict[str, str]) -> dict[str, str]:
    """Check the file has every needed column before any work; return {KiDS name: file name}."""
    wanted = REQUIRED_COLUMNS + ((GALAXY_TYPE_KEY,) if GALAXY_TYPE_KEY in column_map else ())
    return resolve_columns(column_names(path), wanted, column_map, str(path))


def read_photometry(path: Path, column_map: dict[str, str]
                    ) -> tuple[pd.DataFrame, dict[str, int], int]:
    """Selected rows in contract form (plus `kids_id`), failures per criterion, rows read.

    The returned frame has the contract columns except `z_spec` and `image_index`.
    """
    resolved = check_photometry_columns(path, column_map)
    raw = read_table(path, list(dict.fromkeys(resolved.values())))
    source = {name: raw[actual] for name, actual in resolved.items()}
    failures = {}
    keep = np.ones(len(raw), dtype=bool)
    for criterion, (column, passes) in SELECTION.items():
        with np.errstate(invalid="ignore"):
            ok = np.asarray(passes(pd.to_numeric(source[column]).to_numpy(dtype=float)))
        failures[criterion] = int((~ok).sum())
        keep &= ok
    rows = {name: values[keep].reset_index(drop=True) for name, values in source.items()}
    catalogue = pd.DataFrame({
        "object_id": kids_object_ids(rows[KIDS_ID_COLUMN]),
        "kids_id": rows[KIDS_ID_COLUMN].map(kids_id_text),
        "ra": rows["RAJ2000"].to_numpy(dtype=float),
        "dec": rows["DECJ2000"].to_numpy(dtype=float),
    })
    for band, mag, err in zip(MAG_BANDS, KIDS_MAG_COLUMNS, KIDS_MAGERR_COLUMNS):
        error = rows[err].to_numpy(dtype=float)
        catalogue[f"mag_{band}"] = rows[mag].to_numpy(dtype=float)
        catalogue[f"magerr_{band}"] = np.where(np.abs(error) == KIDS_MISSING_MAGNITUDE, np.nan,
                                               error)
    catalogue["mag_r_auto"] = rows[KIDS_AUTO_COLUMN].to_numpy(dtype=float)
    catalogue["masked"] = mask_flags(rows[KIDS_MASK_COLUMN], f"{path}: column "
                                     f"{resolved[KIDS_MASK_COLUMN]!r}")
    catalogue["galaxy_type"] = (galaxy_types(rows[GALAXY_TYPE_KEY], f"{path}: column "
                                             f"{resolved[GALAXY_TYPE_KEY]!r}")
                                if GALAXY_TYPE_KEY in rows else None)
    return catalogue, failures, len(raw)


def mask_flags(mask: pd.Series, where: str) -> np.ndarray:
    """`(MASK & KIDS_MASK_BITS) > 0`; MASK must be integral (CSV may have read it as float)."""
    values = pd.to_numeric(mask).to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise DatasetError(f"{where}: null values in {int((~np.isfinite(values)).sum())} rows")
    return (values.astype(np.int64) & KIDS_MASK_BITS) > 0


def galaxy_types(values: pd.Series, where: str) -> np.ndarray:
    """"red" / "blue" / None from strings or 1/0 (booleans) flags; anything else is an error."""
    labels = np.full(len(values), None, dtype=object)
    for k, value in enumerate(values.tolist()):
        if pd.isna(value):
            continue
        text = str(value).strip().lower()
        if isinstance(value, (bool, np.bool_)):
            labels[k] = "red" if value else "blue"
        elif text in ("red", "blue"):
            labels[k] = text
        elif text in ("1", "1.0"):
            labels[k] = "red"
        elif text in ("0", "0.0"):
            labels[k] = "blue"
        elif text:
            raise DatasetError(f"{where}: galaxy type value {value!r} is not red/blue or 1/0")
    return labels
