"""Training and evaluation input, streamed from a dataset directory, for any Keras backend.

Images are read from `images.h5` a chunk at a time by a generator thread and never all at
once, so training sets larger than memory work. Each element is cropped (randomly shifted
on the training split, centred elsewhere), flipped (training only), and each batch is
normalised with the same functions the exported model applies at inference, so training
and prediction cannot drift apart.

Augmentation (paper 3.3) is fresh every epoch: shifts of up to `shift_fraction` of the
cutout in width and height, taken from the real pixels around the stored stamp rather than
from padding, and horizontal and vertical flips; with `seeing_augment`, worse seeing too
(`hzexp.data.seeing`), the PSF inputs growing with it.

The batches are made once, by `_batches` in a background thread, and handed to Keras in the
form its backend reads best: a tf.data pipeline on TensorFlow (the tuned default), an
in-order `keras.utils.PyDataset` on JAX or PyTorch, where TensorFlow need not be installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import keras
import numpy as np

from hzexp.background import in_background
from hzexp.config import PreprocessConfig
from hzexp.data.seeing import degrade_seeing
from hzexp.data.store import IMAGE_BANDS, MAG_COLUMNS, Dataset, tabular_columns
from hzexp.model.preprocessing import centre_crop, minmax_normalise, standardise_magnitudes


@dataclass(frozen=True)
class MagnitudeScaling:
    """Training-split statistics that standardise the magnitude branch's inputs
    (`tabular_inputs`; NaN -> `fill` first)."""

    fill: np.ndarray
    mean: np.ndarray
    scale: np.ndarray


# Batches kept ready ahead of the model, in the input thread's queue and again in tf.data's
# prefetch: reading and cropping a chunk (~0.1 s for 2048 mock galaxies) takes less than
# one training step, and the queue lets the lower-priority input thread catch up when a
# core falls idle.
PREFETCH_BATCHES = 8

# Added to the nice value of the thread that reads and crops (Linux). tf.data runs a
# generator on whichever of its threads asks for the next element, and those run other work
# too, so batches are made in a thread of our own and the generator only takes them from
# its queue. The input work is ~2% of a step's CPU, but on two cores each slice it takes
# preempts one of the model's two compute threads while the other spins at their next
# barrier: at equal priority the model lost several times the input thread's CPU. Niced,
# it mostly runs when a core is idle.
INPUT_NICENESS = 10


def magnitudes(dataset: Dataset, rows: np.ndarray) -> np.ndarray:
    """Raw AB magnitudes (N, 9) of catalogue rows, NaN where unmeasured."""
    return dataset.magnitude_array[rows]


def tabular_inputs(dataset: Dataset, rows: np.ndarray, psf_inputs: bool) -> np.ndarray:
    """The magnitude branch's raw inputs (`tabular_columns`): the magnitudes (N, 9),
    followed with `psf_inputs` by the PSF FWHMs (N, 4, arcsec, NaN where unknown)."""
    if not psf_inputs:
        return magnitudes(dataset, rows)
    return np.concatenate([magnitudes(dataset, rows), dataset.psf_array[rows]], axis=1)


def redshifts(dataset: Dataset, rows: np.ndarray) -> np.ndarray:
    """Spectroscopic redshifts of catalogue rows, as float32 labels."""
    return dataset.z_spec_array[rows]


def max_shift_pixels(preprocess: PreprocessConfig, stored_size: int) -> int:
    """Largest augmentation shift in px: `shift_fraction` of the cutout, limited by the
    margin the stored stamp has around the cutout (no shifts at cutout == stored size)."""
    wanted = int(round(preprocess.shift_fraction * preprocess.cutout))
    return min(wanted, (stored_size - preprocess.cutout) // 2)


@dataclass(frozen=True)
class Augmentation:
    """Random training cutouts: each centre shifted by up to `max_shift` px in x and y, and
    with `flips` each stamp flipped left-right and up-down with probability 1/2 each; with
    `seeing_growth` > 0 each band's PSF FWHM grows by a factor 1 + U(0, seeing_growth).

    Drawn from `rng` in the generator thread rather than with tf.random inside a parallel
    map, whose draws depend on thread scheduling: a run is then reproducible from its seed.
    A block's draws are made at once and applied piece by piece as its images are read.
    Without seeing growth no draw is made for it, so such runs repeat earlier ones exactly.
    """

    cutout: int
    max_shift: int
    flips: bool
    rng: np.random.Generator
    seeing_growth: float = 0.0
    pixel_scale_arcsec: float = 0.2

    def draw(self, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(n, 4) integers per stamp: y and x shifts, up-down and left-right flips (0/1);
        and the (n, 4) fractional PSF growth per band (None without seeing growth)."""
        shifts = self.rng.integers(-self.max_shift, self.max_shift + 1, size=(n, 2))
        flips = self.rng.random((n, 2)) < 0.5 if self.flips else np.zeros((n, 2), bool)
        growth = (self.rng.uniform(0.0, self.seeing_growth, (n, len(IMAGE_BANDS)))
                  if self.seeing_growth > 0 else None)
        return np.column_stack([shifts, flips[:, ::-1]]), growth

    def cut(self, images: np.ndarray, draws: np.ndarray, out: np.ndarray,
            psf_arcsec: np.ndarray | None = None, growth: np.ndarray | None = None) -> None:
        """Write the views `draws` of stored `images` into `out` (one row each), seen in
        seeing worse by `growth` than their `psf_arcsec` when given."""
        if growth is not None:
            images = degrade_seeing(images, psf_arcsec / self.pixel_scale_arcsec, growth,
                                    self.rng)
        base = (images.shape[1] - self.cutout) // 2
        for k, (dy, dx, ud, lr) in enumerate(draws):
            view = images[k, base + dy:base + dy + self.cutout, base + dx:base + dx + self.cutout]
            out[k] = view[::-1 if ud else 1, ::-1 if lr else 1]


# Images read per HDF5 call. Whole 2048-row chunks of 48 px stamps are ~75 MB arrays, above
# glibc's 32 MB ceiling for reusing freed heap memory: each was mapped and page-faulted in
# afresh, about half the pipeline's CPU. Pieces this small reuse the same heap memory.
READ_ROWS = 256


def _read_block(dataset: Dataset, block: np.ndarray, augmentation: Augmentation | None,
                out: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Images of rows `block` into `out[:len(block)]`: augmented views with `augmentation`,
    stored stamps without; and the PSF growth factors (1 + growth, (n, 4)) of seeing
    augmentation (None without it)."""
    draws, growth = augmentation.draw(len(block)) if augmentation is not None else (None, None)
    for start in range(0, len(block), READ_ROWS):
        rows = block[start:start + READ_ROWS]
        piece = dataset.read_images(rows)
        target = out[start:start + len(piece)]
        if augmentation is not None:
            part = slice(start, start + len(piece))
            augmentation.cut(piece, draws[part], target, dataset.psf_array[rows],
                             None if growth is None else growth[part])
        else:
            target[...] = piece
    return out[:len(block)], None if growth is None else 1.0 + growth


def _gather(held: tuple[np.ndarray, ...], new: tuple[np.ndarray, ...],
            index: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rows `index` of `held`'s rows followed by `new`'s, as fresh arrays, without building
    that concatenation (one copy instead of three)."""
    from_held = index < len(held[0])
    gathered = []
    for old, part in zip(held, new):
        rows = np.empty((len(index), *part.shape[1:]), part.dtype)
        rows[from_held] = old[index[from_held]]
        rows[~from_held] = part[index[~from_held] - len(held[0])]
        gathered.append(rows)
    return tuple(gathered)


def _batches(dataset: Dataset, rows: np.ndarray, chunk_size: int, batch_size: int,
             labelled: bool, augmentation: Augmentation | None,
             psf_inputs: bool = False) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield (images, tabular inputs[, z]) batches of `batch_size` rows (the last may be
    shorter); the PSF inputs grow with the stamps' seeing augmentation.

    Rows are read a chunk at a time, each chunk a run of rows in storage order and so few
    cheap HDF5 reads. With `augmentation` (training) the chunks come in random order, and
    each one is shuffled together with half a chunk of rows held back from the previous
    one, so every batch mixes two chunks as a one-chunk tf.data shuffle buffer would, but on
    whole arrays rather than one galaxy at a time (which cost more CPU than reading and
    cropping, and made each epoch wait for the buffer to fill). Without it, rows keep their
    order and images their stored size. One image buffer serves every chunk of the epoch;
    batches and held-back rows are copies, never views of it.
    """
    rng = augmentation.rng if augmentation is not None else None
    blocks = [rows[i:i + chunk_size] for i in range(0, len(rows), chunk_size)]
    order = rng.permutation(len(blocks)) if rng is not None else range(len(blocks))
    held_back = chunk_size // 2 if rng is not None else 0
    size = augmentation.cutout if augmentation is not None else dataset.stored_size
    buffer = np.empty((min(chunk_size, len(rows)), size, size, len(IMAGE_BANDS)), np.float32)
    held: tuple[np.ndarray, ...] = ()
    for b in order:
        block = blocks[b]
        images, psf_growth = _read_block(dataset, block, augmentation, buffer)
        tabular = tabular_inputs(dataset, block, psf_inputs)
        if psf_inputs and psf_growth is not None:
            tabular[:, len(MAG_COLUMNS):] *= psf_growth
        new = (images, tabular)
        if labelled:
            new += (redshifts(dataset, block),)
        if not held:
            held = tuple(part[:0] for part in new)
        total = len(held[0]) + len(block)
        index = rng.permutation(total) if rng is not None else np.arange(total)
        ready = max(total - held_back, 0) // batch_size * batch_size
        for start in range(0, ready, batch_size):
            yield _gather(held, new, index[start:start + batch_size])
        held = _gather(held, new, index[ready:])
    for start in range(0, len(held[0]) if held else 0, batch_size):
        yield tuple(part[start:start + batch_size] for part in held)


def _signature(image_size: int, labelled: bool, psf_inputs: bool):
    import tensorflow as tf

    spec = (tf.TensorSpec((None, image_size, image_size, len(IMAGE_BANDS)), tf.float32),
            tf.TensorSpec((None, len(tabular_columns(psf_inputs))), tf.float32))
    return spec + (tf.TensorSpec((None,), tf.float32),) if labelled else spec


class EpochBatches(keras.utils.PyDataset):
    """One epoch of `_batches` as a PyDataset, for backends other than TensorFlow.

    Keras reads a single-worker PyDataset in index order, so each `__getitem__` takes the
    next batch of the epoch's generator (index 0 starts a new epoch: Keras also peeks at the
    first batch for shapes) and the order, seeding and chunked reading stay those of the
    tf.data path; reading and cropping still run in the background thread.
    """

    def __init__(self, epoch: Callable[[], Iterator[tuple[np.ndarray, ...]]],
                 finish: Callable, n_batches: int) -> None:
        super().__init__()
        self._epoch, self._finish, self._n_batches = epoch, finish, n_batches
        self._batches: Iterator | None = None
        self._next = 0

    def __len__(self) -> int:
        return self._n_batches

    def __getitem__(self, index: int):
        if index == 0:
            self._close()
            self._batches = iter(self._epoch())
        elif index != self._next or self._batches is None:
            raise IndexError(f"batch {index} asked for after batch {self._next - 1}: this "
                             "input is read in order, with one worker")
        self._next = index + 1
        return self._finish(*next(self._batches))

    def on_epoch_end(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._batches is not None:
            self._batches.close()
            self._batches = None


def make_dataset(dataset: Dataset, rows: np.ndarray, preprocess: PreprocessConfig,
                 scaling: MagnitudeScaling, batch_size: int, chunk_size: int = 2048,
                 training: bool = False, seed: int = 0, labelled: bool = True,
                 input_niceness: int = INPUT_NICENESS, psf_inputs: bool = False):
    """Batches of ({"image", "mags"}, z_spec) ready for the core Hybrid-z model: a
    `tf.data.Dataset` on the TensorFlow backend, an `EpochBatches` PyDataset otherwise.
    "mags" holds the `tabular_inputs` (the magnitudes, then with `psf_inputs` the PSFs).

    `training=True` shuffles and augments, with a new draw every epoch; otherwise rows keep
    their order and images are centre-cropped, so predictions align with `rows`. Batches
    are made by a thread with `input_niceness` added to its nice value (the bench compares
    values).
    """
    rows = np.sort(np.asarray(rows, dtype=np.int64)) if training else np.asarray(rows, np.int64)
    cutout = preprocess.cutout
    augmentation = None
    if training:
        augmentation = Augmentation(
            cutout, max_shift_pixels(preprocess, dataset.stored_size) if preprocess.augment else 0,
            preprocess.flips and preprocess.augment, np.random.default_rng(seed),
            preprocess.seeing_augment if preprocess.augment else 0.0,
            float(dataset.manifest.get("pixel_scale_arcsec", 0.2)))

    def epoch() -> Iterator[tuple[np.ndarray, ...]]:
        return in_background(
            lambda: _batches(dataset, rows, chunk_size, batch_size, labelled, augmentation,
                             psf_inputs),
            PREFETCH_BATCHES, "hzexp-input", input_niceness)

    fill, mean, scale = (np.asarray(a, np.float32) for a in
                         (scaling.fill, scaling.mean, scaling.scale))

    def finish(images, mags, *z):
        if not training:
            images = centre_crop(images, cutout)
        features = {"image": minmax_normalise(images),
                    "mags": standardise_magnitudes(mags, fill, mean, scale)}
        return (features, *z) if z else features

    n_batches = -(-len(rows) // batch_size)
    if keras.backend.backend() != "tensorflow":
        return EpochBatches(epoch, finish, n_batches)
    import tensorflow as tf

    source = tf.data.Dataset.from_generator(
        epoch, output_signature=_signature(cutout if training else dataset.stored_size,
                                           labelled, psf_inputs))
    # The generator hides the length from tf.data; stating it lets Keras size its epochs
    # and progress bars instead of discovering the end by running out of data.
    return (source.map(finish)
            .apply(tf.data.experimental.assert_cardinality(n_batches))
            .prefetch(PREFETCH_BATCHES)
            .with_options(fixed_tuning()))


def fixed_tuning():
    """tf.data options with autotuning off.

    Destroying an autotuned iterator waits for its autotuning thread to wake from its sleep
    between optimisation rounds, and Keras drops each epoch's iterator as the next epoch
    starts: epochs began with random stalls (measured on TF 2.21: about 2 s at most epoch
    starts and 35-50 s at about a third of them, on a generator input or in-memory arrays
    alike). One Python generator feeds this pipeline, so there is no parallelism to tune:
    a fixed prefetch depth does the job.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options
