"""The dataset directory: the one contract between data sources and consumers.

A dataset directory holds `catalogue.parquet` (one row per galaxy), `images.h5` (dataset
`images`, float32 (N, S, S, 4), bands u,g,r,i, raw fluxes, chunked by rows) and
`manifest.json`. Sources (mock, KiDS tiles, the official Hybrid-z FITS table) write it with
`DatasetWriter`; training, evaluation and prediction read it with `Dataset`.

Two properties matter at survey scale (1.2 million galaxies are 44 GB of images):
- nothing here loads all images at once: writers append chunks, readers yield chunks;
- a directory is complete only when its manifest exists. The writer builds everything in a
  sibling temporary directory and renames it into place as its last step, so a killed run
  never leaves a half dataset that looks complete.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hzexp._io import atomic_directory, atomic_file

log = logging.getLogger(__name__)

MAG_BANDS = ("u", "g", "r", "i", "Z", "Y", "J", "H", "Ks")
IMAGE_BANDS = ("u", "g", "r", "i")
MAG_COLUMNS = tuple(f"mag_{b}" for b in MAG_BANDS)
MAGERR_COLUMNS = tuple(f"magerr_{b}" for b in MAG_BANDS)
CATALOGUE_COLUMNS = (
    "object_id", "ra", "dec", "z_spec", *MAG_COLUMNS, *MAGERR_COLUMNS,
    "mag_r_auto", "masked", "galaxy_type", "image_index",
)
#: Per-band PSF FWHM (arcsec) of the coadd each stamp was cut from: the seeing a model may
#: take as input and the evaluation bins residuals by. Every source writes them, NaN where
#: unknown; a dataset written before they existed lacks them and reads them as unknown.
PSF_COLUMNS = tuple(f"psf_fwhm_{b}" for b in IMAGE_BANDS)
#: The deployable model's input of the PSF FWHMs (u, g, r, i arcsec), for a model trained
#: with PSF inputs.
PSF_INPUT = "psf_fwhm"
#: Largest plausible PSF FWHM (arcsec): a larger value is a unit or sentinel mistake.
PSF_FWHM_MAX_ARCSEC = 10.0


def tabular_columns(psf_inputs: bool) -> tuple[str, ...]:
    """The columns the model's magnitude branch reads: the magnitudes, then with
    `psf_inputs` the PSF FWHMs."""
    return MAG_COLUMNS + (PSF_COLUMNS if psf_inputs else ())


#: The columns a dataset writes (and hashes): the contract's plus the seeing.
WRITTEN_COLUMNS = (*CATALOGUE_COLUMNS, *PSF_COLUMNS)
CATALOGUE_FILE = "catalogue.parquet"
IMAGES_FILE = "images.h5"
MANIFEST_FILE = "manifest.json"
IMAGES_KEY = "images"
Z_SPEC_RANGE = (0.0, 1.5)
GALAXY_TYPES = ("red", "blue")
ROWS_PER_H5_CHUNK = 64
#: KiDS' magnitude (and error) for an undetected band, written as 99 or -99.
KIDS_MISSING_MAGNITUDE = 99.0
#: AB magnitudes a galaxy can have: a value outside this open interval (the KiDS sentinels
#: included) is not a measurement and counts as missing, exactly like NaN.
MAG_RANGE = (5.0, 40.0)

_DTYPES = {
    "object_id": "int64", "ra": "float64", "dec": "float64", "z_spec": "float64",
    **{c: "float32" for c in MAG_COLUMNS + MAGERR_COLUMNS}, "mag_r_auto": "float32",
    "masked": "bool", "galaxy_type": "object", "image_index": "int64",
    **{c: "float32" for c in PSF_COLUMNS},
}


class DatasetError(ValueError):
    """A dataset directory that breaks the contract; the message names file and problem."""


def physical_magnitudes(mags) -> np.ndarray:
    """`mags` as a new float32 array with every value outside `MAG_RANGE` NaN.

    The one missing-magnitude rule of every path that reads magnitudes (the writer, the
    dataset reader, the logged model and so its REST server): KiDS' 99 / -99 and any other
    unphysical value mean "not measured", so the model fills them like NaN.
    """
    mags = np.array(mags, dtype=np.float32)
    mags[~((mags > MAG_RANGE[0]) & (mags < MAG_RANGE[1]))] = np.nan
    return mags


def with_missing_magnitudes(catalogue: pd.DataFrame) -> pd.DataFrame:
    """`catalogue` with `physical_magnitudes` applied to each band (and `mag_r_auto`); a
    band's error becomes NaN where its magnitude is missing (nothing measured, no error)."""
    out = catalogue.copy()
    out["mag_r_auto"] = physical_magnitudes(out["mag_r_auto"].to_numpy(dtype=np.float32))
    for mag, err in zip(MAG_COLUMNS, MAGERR_COLUMNS):
        out[mag] = physical_magnitudes(out[mag].to_numpy(dtype=np.float32))
        out[err] = out[err].where(out[mag].notna())
    return out


def _hzexp_version() -> str:
    from hzexp import __version__

    return __version__


class ContentHash:
    """Order-sensitive SHA-256 of a dataset's catalogue and pixels, fed chunk by chunk.

    The hash covers values, not file bytes, so it does not change with the parquet or HDF5
    library version that wrote the files; the same seed gives the same hash anywhere. Its
    two parts are kept apart too, so a cheap check of the catalogue alone is possible.
    """

    def __init__(self, columns: tuple[str, ...] = WRITTEN_COLUMNS) -> None:
        self.columns = list(columns)
        self._catalogue = hashlib.sha256()
        self._images = hashlib.sha256()

    def update(self, catalogue: pd.DataFrame, images: np.ndarray) -> None:
        """Feed rows in storage order; the result does not depend on the chunk sizes."""
        self.update_catalogue(catalogue)
        self._images.update(np.ascontiguousarray(images, dtype="<f4").tobytes())

    def update_catalogue(self, catalogue: pd.DataFrame) -> None:
        ordered = catalogue.loc[:, self.columns].reset_index(drop=True)
        row_hashes = pd.util.hash_pandas_object(ordered, index=False).to_numpy()
        self._catalogue.update(row_hashes.tobytes())

    def catalogue_hexdigest(self) -> str:
        return self._catalogue.hexdigest()

    def images_hexdigest(self) -> str:
        return self._images.hexdigest()

    def hexdigest(self) -> str:
        return hashlib.sha256(self._catalogue.digest() + self._images.digest()).hexdigest()


def check_catalogue(catalogue: pd.DataFrame, where: str) -> None:
    """Raise `DatasetError` naming `where` for any contract violation in a catalogue table.

    `z_spec` is not checked here: it may be null or any value (a prediction needs none);
    `check_labels` checks it where it is used.
    """
    missing = [c for c in CATALOGUE_COLUMNS if c not in catalogue.columns]
    if missing:
        close = {c: [k for k in catalogue.columns if k.lower() == c.lower()] for c in missing}
        hints = "; ".join(f"{c} (found {v[0]!r}?)" for c, v in close.items() if v)
        raise DatasetError(f"{where}: missing column(s) {', '.join(missing)}"
                           + (f" -- {hints}" if hints else ""))
    ids = catalogue["object_id"]
    if ids.isna().any():
        raise DatasetError(f"{where}: column object_id has null values")
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        raise DatasetError(f"{where}: duplicate object_id {duplicated.iloc[0]} "
                           f"({len(duplicated)} duplicate rows)")
    for column in PSF_COLUMNS:
        if column not in catalogue:
            continue
        fwhm = pd.to_numeric(catalogue[column], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~(np.isnan(fwhm) | ((fwhm > 0) & (fwhm < PSF_FWHM_MAX_ARCSEC))))
        if len(bad):
            raise DatasetError(
                f"{where}: column {column} has {catalogue[column].iloc[bad[0]]} (object_id "
                f"{ids.iloc[bad[0]]}); a PSF FWHM is in (0, {PSF_FWHM_MAX_ARCSEC:g}) arcsec, "
                "or null when unknown")
    types = set(catalogue["galaxy_type"].dropna().unique()) - set(GALAXY_TYPES)
    if types:
        raise DatasetError(f"{where}: column galaxy_type has value(s) {sorted(types)}; "
                           f"allowed: red, blue or null")


#: Rows named in a `check_labels` message (the count says how many there are in all).
LABEL_ROWS_SHOWN = 5


def unlabelled_rows(catalogue: pd.DataFrame) -> np.ndarray:
    """Positions of the rows whose `z_spec` cannot serve as a label: null, or outside
    `Z_SPEC_RANGE`, the redshifts the model is trained for."""
    z = catalogue["z_spec"].to_numpy(dtype=float)
    return np.flatnonzero(~((z > Z_SPEC_RANGE[0]) & (z < Z_SPEC_RANGE[1])))


def check_labels(catalogue: pd.DataFrame, where: str, purpose: str) -> None:
    """Raise `DatasetError` naming the `unlabelled_rows` and why, for `purpose` (training,
    evaluation: what needs every galaxy labelled)."""
    bad = unlabelled_rows(catalogue)
    if not len(bad):
        return
    z = catalogue["z_spec"].to_numpy(dtype=float)
    ids = catalogue["object_id"].to_numpy()
    shown = "; ".join(f"row {k} (object_id {ids[k]}): "
                      + ("null" if np.isnan(z[k]) else f"{z[k]:g} outside {Z_SPEC_RANGE}")
                      for k in bad[:LABEL_ROWS_SHOWN])
    more = f"; ... ({len(bad)} rows in all)" if len(bad) > LABEL_ROWS_SHOWN else ""
    raise DatasetError(f"{where}: {purpose} needs z_spec in {Z_SPEC_RANGE} for every galaxy; "
                       f"{len(bad)} of {len(z)} rows lack one: {shown}{more}")


def check_images(images: np.ndarray, object_ids: np.ndarray, stored_size: int, where: str) -> None:
    """Raise `DatasetError` for wrong shape, band count or non-finite pixels in a chunk."""
    expected = (len(object_ids), stored_size, stored_size, len(IMAGE_BANDS))
    if images.ndim != 4 or images.shape[3] != len(IMAGE_BANDS):
        raise DatasetError(f"{where}: images have shape {images.shape}; expected "
                           f"(N, S, S, {len(IMAGE_BANDS)}) with bands {','.join(IMAGE_BANDS)}")
    if images.shape != expected:
        raise DatasetError(f"{where}: images have shape {images.shape}; expected {expected}")
    finite = np.isfinite(images).all(axis=(1, 2, 3))
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise DatasetError(f"{where}: non-finite pixels in the image of object_id "
                           f"{object_ids[first]} ({int((~finite).sum())} images affected)")


def _normalise_catalogue(chunk: pd.DataFrame) -> pd.DataFrame:
    """The written columns in contract order and dtypes (absent PSF columns as NaN)."""
    out = chunk.reindex(columns=list(WRITTEN_COLUMNS))
    for column, dtype in _DTYPES.items():
        if dtype != "object":
            out[column] = out[column].astype(dtype)
    out["galaxy_type"] = out["galaxy_type"].astype(object).where(out["galaxy_type"].notna(), None)
    return out.reset_index(drop=True)


class DatasetWriter:
    """Write a dataset directory chunk by chunk, atomically.

    Use as a context manager; `append` each chunk (catalogue rows and their images, in the
    same order), then leave the block. On an exception the temporary directory is removed
    and `out_dir` is untouched.
    """

    def __init__(self, out_dir: str | Path, stored_size: int, provenance: dict,
                 pixel_scale: float = 0.2, overwrite: bool = False) -> None:
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not overwrite:
            raise DatasetError(f"{self.out_dir}: already exists (pass overwrite to replace it)")
        self.stored_size = int(stored_size)
        self.provenance = provenance
        self.pixel_scale = float(pixel_scale)
        self.tmp_dir: Path | None = None  # set on entering the block
        self._directory = contextlib.ExitStack()
        self._hash = ContentHash()
        self._parquet: pq.ParquetWriter | None = None
        self._h5: h5py.File | None = None
        self._seen_ids: set[int] = set()
        self.n_rows = 0

    def __enter__(self) -> DatasetWriter:
        self.tmp_dir = self._directory.enter_context(atomic_directory(self.out_dir))
        self._h5 = h5py.File(self.tmp_dir / IMAGES_FILE, "w")
        s = self.stored_size
        self._h5.create_dataset(
            IMAGES_KEY, shape=(0, s, s, len(IMAGE_BANDS)), maxshape=(None, s, s, len(IMAGE_BANDS)),
            dtype="float32", chunks=(ROWS_PER_H5_CHUNK, s, s, len(IMAGE_BANDS)))
        self._h5[IMAGES_KEY].attrs["bands"] = ",".join(IMAGE_BANDS)
        return self

    def append(self, catalogue: pd.DataFrame, images: np.ndarray) -> None:
        """Validate and write one chunk; `image_index` is assigned here (row order)."""
        catalogue = catalogue.copy()
        catalogue["image_index"] = np.arange(self.n_rows, self.n_rows + len(catalogue))
        where = f"{self.out_dir} (chunk at row {self.n_rows})"
        check_catalogue(catalogue, where)
        catalogue = with_missing_magnitudes(catalogue)
        ids = catalogue["object_id"].to_numpy()
        clash = self._seen_ids.intersection(ids.tolist())
        if clash:
            raise DatasetError(f"{where}: duplicate object_id {min(clash)!r}")
        self._seen_ids.update(ids.tolist())
        images = np.asarray(images, dtype=np.float32)
        check_images(images, ids, self.stored_size, where)
        catalogue = _normalise_catalogue(catalogue)
        table = pa.Table.from_pandas(catalogue, preserve_index=False)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.tmp_dir / CATALOGUE_FILE, table.schema)
        self._parquet.write_table(table.cast(self._parquet.schema))
        dataset = self._h5[IMAGES_KEY]
        dataset.resize(self.n_rows + len(images), axis=0)
        dataset[self.n_rows:self.n_rows + len(images)] = images
        self._hash.update(catalogue, images)
        self.n_rows += len(catalogue)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._h5 is not None:
            self._h5.close()
        if self._parquet is not None:
            self._parquet.close()
        with self._directory:  # the directory appears only if this block finishes
            if exc_type is not None:
                raise exc
            if self.n_rows == 0:
                raise DatasetError(f"{self.out_dir}: no galaxies were written")
            self._write_manifest()

    def _write_manifest(self) -> None:
        manifest = {
            "format": "hzexp-dataset/1",
            "n_galaxies": self.n_rows,
            "image_bands": list(IMAGE_BANDS),
            "mag_bands": list(MAG_BANDS),
            "pixel_scale_arcsec": self.pixel_scale,
            "stored_size": self.stored_size,
            "catalogue_columns": self._hash.columns,
            "content_hash": self._hash.hexdigest(),
            "catalogue_hash": self._hash.catalogue_hexdigest(),
            "images_hash": self._hash.images_hexdigest(),
            "images_file": file_stamp(self.tmp_dir / IMAGES_FILE),
            "provenance": self.provenance,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "hzexp_version": _hzexp_version(),
        }
        (self.tmp_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))


def file_stamp(path: Path) -> dict[str, int]:
    """Size and modification time (ns) of a file: what changes when it is rewritten, checked
    in place of re-hashing the images on every open (44 GB at survey scale)."""
    stat = path.stat()
    return {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


#: Manifest keys with which `Dataset.open` checks the data are the data the content hash
#: describes; datasets written before them lack them until `Dataset.verify` records them.
CONTENT_CHECK_KEYS = ("catalogue_hash", "images_hash", "images_file")


@dataclass(frozen=True)
class Dataset:
    """An opened, validated dataset directory. Images stay on disk until asked for."""

    path: Path
    manifest: dict
    catalogue: pd.DataFrame

    @classmethod
    def open(cls, path: str | Path, check_content: bool = True) -> Dataset:
        """Open and validate the catalogue, manifest and image store (pixels are checked
        per chunk as they are read: scanning 44 GB up front would defeat streaming).

        `check_content` (the default) also refuses data changed after the manifest was
        written, whose content hash then no longer describes them: the catalogue is
        re-hashed (cheap) and images.h5 must keep its recorded size and modification time
        (re-hashing the pixels is left to `verify`).
        """
        path = Path(path)
        if not path.is_dir():
            raise DatasetError(f"{path}: dataset directory not found")
        for name in (MANIFEST_FILE, CATALOGUE_FILE, IMAGES_FILE):
            if not (path / name).is_file():
                raise DatasetError(f"{path / name}: missing (an incomplete or foreign directory)")
        try:
            manifest = json.loads((path / MANIFEST_FILE).read_text())
        except json.JSONDecodeError as err:
            raise DatasetError(f"{path / MANIFEST_FILE}: not valid JSON ({err})") from None
        for key in ("stored_size", "content_hash", "n_galaxies"):
            if key not in manifest:
                raise DatasetError(f"{path / MANIFEST_FILE}: missing key {key!r}")
        with _readable(path / CATALOGUE_FILE):
            catalogue = pd.read_parquet(path / CATALOGUE_FILE)
        check_catalogue(catalogue, str(path / CATALOGUE_FILE))
        if catalogue.empty:
            raise DatasetError(f"{path}: the catalogue has no galaxies")
        for column in PSF_COLUMNS:  # written before the seeing was: unknown
            if column not in catalogue:
                catalogue[column] = np.float32(np.nan)
        with _readable(path / IMAGES_FILE), h5py.File(path / IMAGES_FILE, "r") as h5:
            if IMAGES_KEY not in h5:
                raise DatasetError(f"{path / IMAGES_FILE}: no dataset {IMAGES_KEY!r}")
            shape = h5[IMAGES_KEY].shape
        s = manifest["stored_size"]
        where = path / IMAGES_FILE
        if len(shape) != 4 or shape[3] != len(IMAGE_BANDS):
            raise DatasetError(f"{where}: images have shape {shape}; expected "
                               f"(N, {s}, {s}, {len(IMAGE_BANDS)}) with bands u,g,r,i")
        if shape[1:3] != (s, s):
            raise DatasetError(f"{where}: images are {shape[1]}x{shape[2]} px but the manifest "
                               f"says stored_size {s}")
        if shape[0] != len(catalogue):
            raise DatasetError(f"{where}: {shape[0]} images for {len(catalogue)} catalogue rows")
        index = catalogue["image_index"].to_numpy()
        if index.min() < 0 or index.max() >= shape[0]:
            raise DatasetError(f"{path / CATALOGUE_FILE}: image_index outside [0, {shape[0]})")
        if len(np.unique(index)) != len(index):
            raise DatasetError(f"{path / CATALOGUE_FILE}: image_index values repeat")
        dataset = cls(path=path, manifest=manifest, catalogue=catalogue)
        if check_content:
            dataset._check_unchanged()
        return dataset

    def _check_unchanged(self) -> None:
        """`DatasetError` if the catalogue or images.h5 changed after the manifest."""
        manifest = self.manifest
        if not all(key in manifest for key in CONTENT_CHECK_KEYS):
            log.warning("%s: written by an hzexp without content checks: edits to it go "
                        "unnoticed until `hzexp verify %s` records them", self.path, self.path)
            return
        stale = (f"so its content hash {self.content_hash[:12]} no longer describes the data; "
                 f"`hzexp verify {self.path}` checks it in full")
        if self._hashes(images=False).catalogue_hexdigest() != manifest["catalogue_hash"]:
            raise DatasetError(f"{self.path}: {CATALOGUE_FILE} was changed after "
                               f"{MANIFEST_FILE} was written, {stale}")
        if file_stamp(self.path / IMAGES_FILE) != manifest["images_file"]:
            raise DatasetError(f"{self.path}: {IMAGES_FILE} was rewritten (size or "
                               f"modification time) after {MANIFEST_FILE} was written, {stale}")

    @property
    def stored_size(self) -> int:
        return int(self.manifest["stored_size"])

    @property
    def content_hash(self) -> str:
        return str(self.manifest["content_hash"])

    @property
    def labelled(self) -> bool:
        """Whether every galaxy has a usable `z_spec` (see `unlabelled_rows`)."""
        return len(unlabelled_rows(self.catalogue)) == 0

    def check_labels(self, purpose: str) -> None:
        """`DatasetError` naming the rows without a usable `z_spec`, for `purpose`."""
        check_labels(self.catalogue, str(self.path / CATALOGUE_FILE), purpose)

    def __len__(self) -> int:
        return len(self.catalogue)

    @functools.cached_property
    def magnitude_array(self) -> np.ndarray:
        """All magnitudes (N, 9) float32, missing (NaN) by `physical_magnitudes`' rule,
        converted once (per-chunk reads slice it)."""
        return physical_magnitudes(self.catalogue[list(MAG_COLUMNS)].to_numpy(np.float32))

    @functools.cached_property
    def psf_array(self) -> np.ndarray:
        """All PSF FWHMs (N, 4) float32 in arcsec, NaN where unknown."""
        return self.catalogue[list(PSF_COLUMNS)].to_numpy(np.float32)

    @functools.cached_property
    def z_spec_array(self) -> np.ndarray:
        """All spectroscopic redshifts (N,) float32, NaN when unknown."""
        return self.catalogue["z_spec"].to_numpy(dtype=np.float32)

    def read_images(self, rows: np.ndarray) -> np.ndarray:
        """Images of catalogue rows `rows` (positions), in that order, pixel-checked."""
        rows = np.asarray(rows, dtype=np.int64)
        index = self.catalogue["image_index"].to_numpy()[rows]
        with _readable(self.path / IMAGES_FILE), h5py.File(self.path / IMAGES_FILE, "r") as h5:
            if np.all(index[1:] >= index[:-1]):  # file order (a stored catalogue's chunk)
                images = _read_sorted(h5[IMAGES_KEY], index)
            else:
                order = np.argsort(index, kind="stable")
                images = np.empty((len(index), *h5[IMAGES_KEY].shape[1:]), dtype=np.float32)
                images[order] = _read_sorted(h5[IMAGES_KEY], index[order])
        ids = self.catalogue["object_id"].to_numpy()[rows]
        check_images(images, ids, self.stored_size, str(self.path / IMAGES_FILE))
        return images

    def iter_chunks(self, rows: np.ndarray | None = None,
                    chunk_size: int = 2048) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        """Yield (catalogue rows, images) for `rows` (default: all) in chunks, in order."""
        rows = np.arange(len(self)) if rows is None else np.asarray(rows, dtype=np.int64)
        for start in range(0, len(rows), chunk_size):
            part = rows[start:start + chunk_size]
            yield self.catalogue.iloc[part].reset_index(drop=True), self.read_images(part)

    def recompute_hash(self, chunk_size: int = 2048) -> str:
        """Hash of the stored content, to compare with the manifest's `content_hash`."""
        return self._hashes(chunk_size=chunk_size).hexdigest()

    def _hashes(self, images: bool = True, chunk_size: int = 2048) -> ContentHash:
        """The stored content hashed in storage order (`images=False`: the catalogue only,
        which needs no pixel read)."""
        # the columns the writer hashed: a dataset older than the PSF columns lacks them
        content = ContentHash(tuple(self.manifest.get("catalogue_columns", CATALOGUE_COLUMNS)))
        by_index = np.argsort(self.catalogue["image_index"].to_numpy(), kind="stable")
        if not images:
            content.update_catalogue(_normalise_catalogue(self.catalogue.iloc[by_index]))
            return content
        for catalogue, pixels in self.iter_chunks(by_index, chunk_size):
            content.update(_normalise_catalogue(catalogue), pixels)
        return content

    def verify(self, chunk_size: int = 2048) -> list[str]:
        """Full check: every pixel finite and the content hash matches the manifest.

        When it does, the manifest gets the content-check keys `open` uses that it lacks
        (a dataset written before them) or that no longer match (a copy that changed
        images.h5's modification time), so that opening checks cheaply again; returns
        the keys so recorded.
        """
        content = self._hashes(chunk_size=chunk_size)
        checks = {"catalogue_hash": content.catalogue_hexdigest(),
                  "images_hash": content.images_hexdigest(),
                  "images_file": file_stamp(self.path / IMAGES_FILE)}
        if content.hexdigest() != self.content_hash:
            changed = [name for name, key in ((CATALOGUE_FILE, "catalogue_hash"),
                                              (IMAGES_FILE, "images_hash"))
                       if self.manifest.get(key, checks[key]) != checks[key]]
            raise DatasetError(f"{self.path / MANIFEST_FILE}: content_hash {self.content_hash} "
                               f"does not match the stored data ({content.hexdigest()})"
                               + (f": {' and '.join(changed)} changed" if changed else ""))
        recorded = [key for key, value in checks.items() if self.manifest.get(key) != value]
        if recorded:
            try:
                with atomic_file(self.path / MANIFEST_FILE) as tmp:
                    tmp.write_text(json.dumps({**self.manifest, **checks}, indent=2))
            except OSError as err:
                log.warning("%s: content checks not recorded (%s)", self.path, err)
                return []
            self.manifest.update(checks)
        return recorded


@contextlib.contextmanager
def _readable(path: Path) -> Iterator[None]:
    """Turn the read error of a corrupt or truncated file into a one-line `DatasetError`."""
    try:
        yield
    except (OSError, pa.ArrowException) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DatasetError(f"{path}: cannot be read, corrupt or truncated ({reason})") from None


def _read_sorted(dataset: h5py.Dataset, index: np.ndarray) -> np.ndarray:
    """Read rows `index` (sorted ascending) with few HDF5 calls.

    HDF5 fancy indexing is row-by-row slow. A dense selection with gaps (a random 70%
    training split) is read as one slice over its span and subset in memory; any other (a
    sparse one, or a contiguous chunk: one run, read straight into the output with no copy)
    as its contiguous runs.
    """
    out = np.empty((len(index), *dataset.shape[1:]), dtype=np.float32)
    if len(index) == 0:
        return out
    first, last = int(index[0]), int(index[-1])
    if len(index) < last - first + 1 <= 2 * len(index):
        np.take(dataset[first:last + 1], index - first, axis=0, out=out)
        return out
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(index)]])
    for s, e in zip(starts, ends):
        dataset.read_direct(out, np.s_[index[s]:index[e - 1] + 1], np.s_[s:e])
    return out
