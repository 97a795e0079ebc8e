"""File helpers every writer and reader shares: atomic writes, locks, checksums, FITS tables.

A killed run must never leave a file or directory that looks finished, and two runs must
never write through the same temporary name: every write goes to a uniquely named sibling
(same filesystem, so the final rename is atomic) that is renamed into place when complete
and removed when the write fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

#: File names astropy reads as FITS (compressed or not).
FITS_SUFFIXES = (".fits", ".fit", ".fits.gz", ".fit.gz")

_READ_BLOCK_BYTES = 1 << 20


def is_fits(path: str | Path) -> bool:
    return Path(path).name.lower().endswith(FITS_SUFFIXES)


def temporary_sibling(path: str | Path) -> Path:
    """A unique, not yet existing name next to `path`, hidden (dot-prefixed)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; it becomes `path` only if the block
    succeeds, and is removed if it fails."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def replace_directory(tmp_dir: Path, target: Path) -> None:
    """Move the finished directory `tmp_dir` to `target`, replacing what is there.

    An existing `target` is first renamed aside, so at every moment `target` is either the
    old complete directory or the new one, never a half-deleted mix.
    """
    old = None
    if target.exists():
        old = temporary_sibling(target)
        os.replace(target, old)
    os.replace(tmp_dir, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary sibling directory of `path` to fill; it replaces `path` only
    if the block succeeds, and is removed if it fails."""
    path = Path(path)
    tmp = temporary_sibling(path)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        replace_directory(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class LockHeld(OSError):
    """The lock is held by a live process; the message names it."""


@contextlib.contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` for the block, or raise `LockHeld` at once.

    An advisory `flock`, which the kernel releases when its holder dies: a lock left by a
    killed run never blocks the rerun that resumes it. The file records its holder (pid,
    host, start time) for the message a second process gets, and is removed on release. A
    process that opened the file just before its holder removed it finds that its inode is
    no longer the path's and tries again, so two processes can never both hold `path`.
    """
    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 512).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise LockHeld(f"{path}: in use by {holder}") from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file, read in blocks (KiDS tiles are ~1.7 GB each)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(_READ_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def open_fits(path: str | Path, error: type[Exception] = ValueError) -> Iterator:
    """`astropy.io.fits.open(path, memmap=True)` as a block; a file that is absent or not
    FITS raises `error` naming it in one line instead of astropy's OSError."""
    from astropy.io import fits

    try:
        hdul = fits.open(path, memmap=True)
    except OSError as err:
        raise error(f"{path}: not a readable FITS file ({str(err).splitlines()[0]})") from None
    with hdul:
        yield hdul


def first_binary_table(hdul, path: str | Path, error: type[Exception] = ValueError):
    """The first binary-table HDU of an open FITS file, or `error` naming `path`."""
    from astropy.io import fits

    hdu = next((h for h in hdul if isinstance(h, fits.BinTableHDU)), None)
    if hdu is None:
        raise error(f"{path}: no binary table HDU")
    return hdu
