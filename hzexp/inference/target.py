"""Where a prediction may write: never into its input, never over a file it did not make,
never two runs at once.

The rule for `--out` (and the `<stem>_stats.csv` beside it with `--evaluate`):
- a path inside the input dataset directory, or the input FITS table itself, is refused
  even with `--overwrite`: it would destroy what is being read;
- an existing file is replaced only if it is this command's own finished output, an hzexp
  catalogue of the same dataset (its recorded content hash), or with `--overwrite`;
- `.<out name>.lock` beside the output is held for the whole run, so a second prediction
  on the same output refuses at once, naming the holder. The lock is the kernel's
  (`flock`): a killed run's lock vanishes with it, and its rerun resumes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from hzexp._io import LockHeld, exclusive_lock
from hzexp.inference.errors import PredictionError
from hzexp.inference.output import read_provenance


def check_targets(data: Path, targets: list[Path], overwrite: bool) -> str | None:
    """Refuse targets that would destroy the input or a file hzexp did not write; return
    the dataset hash recorded by an existing hzexp catalogue at `targets[0]` (to compare
    with the dataset once it is open), or None when nothing of ours is replaced."""
    source = data.resolve()
    for target in targets:
        where = target.resolve()
        if where == source or (source.is_dir() and where.is_relative_to(source)):
            raise PredictionError(f"{target}: inside the input {data}; write the catalogue "
                                  "elsewhere (--overwrite does not apply to the input)")
    existing = [t for t in targets if t.exists()]
    if overwrite or not existing:
        return None
    recorded = read_provenance(targets[0]).get("dataset_hash") if targets[0].exists() else None
    if recorded is None:
        raise PredictionError(f"{existing[0]}: exists and is not an hzexp catalogue of this "
                              "prediction; pass --overwrite to replace it")
    return recorded


def check_replaced_hash(out: Path, recorded: str | None, content_hash: str) -> None:
    """An existing catalogue is this command's own output only if it is of the same data."""
    if recorded is not None and recorded != content_hash:
        raise PredictionError(f"{out}: exists and holds predictions for another dataset "
                              f"(content hash {recorded}, now {content_hash}); pass "
                              "--overwrite to replace it")


def lock_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.lock")


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold the lock of `out` for the block, or refuse at once naming its holder."""
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive_lock(lock_path(out)))
        except LockHeld as err:
            raise PredictionError(f"{out}: another prediction is writing it ({err}); wait "
                                  "for it to finish or stop it") from None
        yield
