"""The shared file helpers: atomic files and directories, checksums, FITS tables."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from astropy.io import fits

from hzexp._io import (
    LockHeld,
    atomic_directory,
    atomic_file,
    exclusive_lock,
    file_sha256,
    first_binary_table,
    is_fits,
    temporary_sibling,
)


class _Boom(RuntimeError):
    pass


def test_atomic_file_appears_only_when_complete(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(_Boom):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise _Boom
    assert target.read_text() == "old" and sorted(tmp_path.iterdir()) == [target]
    with atomic_file(target) as tmp:
        assert tmp != target and not tmp.exists()
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(tmp_path.iterdir()) == [target]


def test_temporary_names_are_unique_and_hidden(tmp_path):
    names = {temporary_sibling(tmp_path / "x.parquet") for _ in range(100)}
    assert len(names) == 100
    assert all(n.parent == tmp_path and n.name.startswith(".x.parquet.tmp-") for n in names)


def test_atomic_directory_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "ds"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(_Boom):
        with atomic_directory(target) as tmp:
            (tmp / "new.txt").write_text("new")
            raise _Boom
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]
    with atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_file_sha256_reads_in_blocks_like_hashlib(tmp_path):
    data = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_first_binary_table_or_a_named_error(tmp_path):
    with_table = tmp_path / "t.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column(name="a", format="E", array=np.arange(3.0))])]).writeto(with_table)
    without = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((2, 2))).writeto(without)
    with fits.open(with_table) as hdul:
        assert first_binary_table(hdul, with_table).columns.names == ["a"]
    with fits.open(without) as hdul, pytest.raises(KeyError, match="image.fits: no binary"):
        first_binary_table(hdul, without, KeyError)


@pytest.mark.parametrize("name, expected", [("a.fits", True), ("A.FIT", True),
                                            ("a.fits.gz", True), ("a.parquet", False)])
def test_fits_suffixes(name, expected):
    assert is_fits(name) is expected


def test_an_exclusive_lock_is_refused_while_held_and_free_after(tmp_path):
    path = tmp_path / ".out.lock"
    with exclusive_lock(path):
        assert "pid " in path.read_text()
        with pytest.raises(LockHeld, match=rf"{path}: in use by pid \d+ on .* since "):
            with exclusive_lock(path):
                pass
    assert not path.exists()
    with exclusive_lock(path):  # released: taken again at once
        assert path.exists()
