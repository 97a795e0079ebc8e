"""Training and evaluation input, streamed from a dataset directory, for any Keras backend.

Images are read from `images.h5` a chunk at a time by a generator thread and never all at
once, so training sets larger than memory work. Batches carry the stored-size stamps and
the standardised magnitudes (the same function the exported model applies at inference);
the model cuts the stamps (`hzexp.model.augmentation`): shifted and flipped afresh every
epoch while training, centred otherwise. On a GPU that work runs on the device and this
pipeline only reads. With `seeing_augment`, the training stamps are seen in worse seeing
here (`hzexp.data.seeing`), the PSF inputs growing with it.

Which rows each batch holds is planned per epoch (`epoch_plan`). By default the batches are
made by `_batches` in one background thread, reading a chunk at a time, and handed to Keras
in the form its backend reads best: a tf.data pipeline on TensorFlow (the tuned default),
an in-order `keras.utils.PyDataset` on JAX or PyTorch, where TensorFlow need not be
installed. With several workers (`training.input_workers`), `PlannedBatches` reads the same
batches one at a time in parallel threads."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import keras
import numpy as np

from hzexp.background import in_background
from hzexp.config import PreprocessConfig
from hzexp.data.seeing import degrade_seeing
from hzexp.data.store import IMAGE_BANDS, MAG_COLUMNS, Dataset, tabular_columns
from hzexp.model.preprocessing import standardise_magnitudes


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


@dataclass(frozen=True)
class SeeingAugmentation:
    """Worse seeing for training stamps: each band's PSF FWHM grows by a factor
    1 + U(0, `growth`), on the whole stored stamp (the model's `RandomView` then cuts it).
    Each batch draws from its own generator, seeded by (`seed`, epoch, batch number), so a
    batch is the same whichever thread or worker makes it and a run repeats from its seed."""

    growth: float
    seed: int
    pixel_scale_arcsec: float = 0.2

    def degrade(self, images: np.ndarray, psf_arcsec: np.ndarray, epoch: int,
                batch: int) -> tuple[np.ndarray, np.ndarray]:
        """`images` seen in seeing worse than their `psf_arcsec` (n, 4), and the factors
        (n, 4) by which the FWHMs grew."""
        rng = np.random.default_rng([self.seed, epoch, batch])
        factors = 1.0 + rng.uniform(0.0, self.growth, (len(images), len(IMAGE_BANDS)))
        return degrade_seeing(images, psf_arcsec / self.pixel_scale_arcsec, factors - 1.0,
                              rng), factors


@dataclass(frozen=True)
class ChunkStep:
    """One chunk of an epoch (`epoch_plan`), as positions in the epoch's rows: the chunk read
    at once, the batches complete once it is read, and the rows held back for later."""

    chunk: np.ndarray
    batches: list[np.ndarray]
    held: np.ndarray


def epoch_plan(n_rows: int, chunk_size: int, batch_size: int,
               rng: np.random.Generator | None) -> list[ChunkStep]:
    """Which rows (positions in `rows`) each batch of one epoch holds, chunk by chunk.

    Rows are read a chunk at a time, each chunk a run of rows in storage order and so few
    cheap HDF5 reads. With `rng` (training) the chunks come in random order, and each one is
    shuffled together with half a chunk of rows held back from the previous one, so every
    batch mixes two chunks as a one-chunk tf.data shuffle buffer would, but on whole arrays
    rather than one galaxy at a time (which cost more CPU than reading, and made each epoch
    wait for the buffer to fill). Without it, rows keep their order. Every batch but the
    last has `batch_size` rows.
    """
    blocks = [np.arange(i, min(i + chunk_size, n_rows)) for i in range(0, n_rows, chunk_size)]
    order = rng.permutation(len(blocks)) if rng is not None else range(len(blocks))
    held_back = chunk_size // 2 if rng is not None else 0
    held = np.empty(0, np.int64)
    plan = []
    for b in order:
        pool = np.concatenate([held, blocks[b]])
        index = rng.permutation(len(pool)) if rng is not None else np.arange(len(pool))
        ready = max(len(pool) - held_back, 0) // batch_size * batch_size
        batches = [pool[index[i:i + batch_size]] for i in range(0, ready, batch_size)]
        held = pool[index[ready:]]
        plan.append(ChunkStep(blocks[b], batches, held))
    if plan and len(held):  # the rows left at the end make the last batches
        last = plan[-1]
        plan[-1] = ChunkStep(last.chunk, last.batches + [
            held[i:i + batch_size] for i in range(0, len(held), batch_size)], held[:0])
    return plan


@dataclass(frozen=True)
class BatchReader:
    """What a batch holds: (stored-size images, tabular inputs[, z]) of some of `rows`, the
    stamps of a training batch perhaps in worse `seeing` (the PSF inputs growing with it)."""

    dataset: Dataset
    rows: np.ndarray
    labelled: bool
    psf_inputs: bool
    seeing: SeeingAugmentation | None = None

    def columns(self, positions: np.ndarray) -> tuple[np.ndarray, ...]:
        """The catalogue side of rows `positions`: (tabular inputs[, z])."""
        rows = self.rows[positions]
        tabular = tabular_inputs(self.dataset, rows, self.psf_inputs)
        return (tabular, redshifts(self.dataset, rows)) if self.labelled else (tabular,)

    def read(self, positions: np.ndarray, epoch: int, batch: int) -> tuple[np.ndarray, ...]:
        """Batch number `batch` of `epoch`, of rows `positions`, read on its own."""
        return self.finish((self.dataset.read_images(self.rows[positions]),
                            *self.columns(positions)), positions, epoch, batch)

    def finish(self, parts: tuple[np.ndarray, ...], positions: np.ndarray, epoch: int,
               batch: int) -> tuple[np.ndarray, ...]:
        """`parts` of rows `positions` as batch `batch` of `epoch`: with seeing augmentation."""
        if self.seeing is None:
            return parts
        images, tabular, *z = parts
        images, factors = self.seeing.degrade(images, self.dataset.psf_array[self.rows[positions]],
                                              epoch, batch)
        if self.psf_inputs:
            tabular[:, len(MAG_COLUMNS):] *= factors
        return (images.astype(np.float32, copy=False), tabular, *z)


# Images read per HDF5 call. Whole 2048-row chunks of 48 px stamps are ~75 MB arrays, above
# glibc's 32 MB ceiling for reusing freed heap memory: each was mapped and page-faulted in
# afresh, about half the pipeline's CPU. Pieces this small reuse the same heap memory.
READ_ROWS = 256


def _read_chunk(dataset: Dataset, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Stored stamps of catalogue rows `rows` into `out[:len(rows)]`."""
    for start in range(0, len(rows), READ_ROWS):
        piece = dataset.read_images(rows[start:start + READ_ROWS])
        out[start:start + len(piece)] = piece
    return out[:len(rows)]


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


def _batches(reader: BatchReader, plan: list[ChunkStep],
             epoch: int) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield the batches of `plan` in order, reading each chunk once: the same batches as
    `reader.read` makes one at a time. One image buffer serves every chunk of the epoch;
    batches and held-back rows are copies, never views of it."""
    dataset, size = reader.dataset, reader.dataset.stored_size
    longest = max((len(step.chunk) for step in plan), default=0)
    buffer = np.empty((longest, size, size, len(IMAGE_BANDS)), np.float32)
    pool_index = np.empty(len(reader.rows), np.int64)  # position -> place in held + chunk
    held_positions, held = np.empty(0, np.int64), ()
    number = 0
    for step in plan:
        new = (_read_chunk(dataset, reader.rows[step.chunk], buffer), *reader.columns(step.chunk))
        if not held:
            held = tuple(part[:0] for part in new)
        pool = np.concatenate([held_positions, step.chunk])
        pool_index[pool] = np.arange(len(pool))
        for positions in step.batches:
            yield reader.finish(_gather(held, new, pool_index[positions]), positions, epoch,
                                number)
            number += 1
        held, held_positions = _gather(held, new, pool_index[step.held]), step.held


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
    tf.data path; reading still runs in the background thread.
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


class PlannedBatches(keras.utils.PyDataset):
    """The batches of `_batches`, each read on its own (`BatchReader.read`) by one of
    `workers` threads, in any order: for a GPU host, whose cores then read, check and
    (with seeing augmentation) blur batches in parallel. Threads, not processes: forking a
    process that runs JAX or TensorFlow can deadlock, and the parallel work (pixel checks,
    seeing convolutions, copies) is NumPy, which releases the GIL.

    Batch numbers and plans follow the epochs Keras ends (`on_epoch_end`), so epoch k's
    batches are those the single-thread input gives in its epoch k.
    """

    def __init__(self, reader: BatchReader, next_plan: Callable[[], list[ChunkStep]],
                 finish: Callable, workers: int) -> None:
        super().__init__(workers=workers, max_queue_size=PREFETCH_BATCHES)
        self._reader, self._next_plan, self._finish = reader, next_plan, finish
        self._epoch = 0
        self._positions = self._plan()

    def _plan(self) -> list[np.ndarray]:
        return [positions for step in self._next_plan() for positions in step.batches]

    def __len__(self) -> int:
        return len(self._positions)

    def __getitem__(self, index: int):
        return self._finish(*self._reader.read(self._positions[index], self._epoch, index))

    def on_epoch_end(self) -> None:
        self._epoch += 1
        self._positions = self._plan()


def make_dataset(dataset: Dataset, rows: np.ndarray, preprocess: PreprocessConfig,
                 scaling: MagnitudeScaling, batch_size: int, chunk_size: int = 2048,
                 training: bool = False, seed: int = 0, labelled: bool = True,
                 input_niceness: int = INPUT_NICENESS, psf_inputs: bool = False,
                 workers: int = 1):
    """Batches of ({"image", "mags"}, z_spec) for the model `hzexp.model.augmentation.trainer`
    builds: with one worker a `tf.data.Dataset` on the TensorFlow backend and an
    `EpochBatches` PyDataset otherwise, with more a `PlannedBatches` PyDataset. "image" holds
    the stored-size stamps (the model cuts, shifts, flips and normalises them), "mags" the
    standardised `tabular_inputs` (the magnitudes, then with `psf_inputs` the PSFs).

    `training=True` shuffles (`epoch_plan`), and with `seeing_augment` degrades the seeing,
    with a new draw every epoch; otherwise rows keep their order, so predictions align with
    `rows`. The single reading thread runs with `input_niceness` added to its nice value
    (the bench compares values).
    """
    rows = np.sort(np.asarray(rows, dtype=np.int64)) if training else np.asarray(rows, np.int64)
    rng = np.random.default_rng(seed) if training else None
    seeing = None
    if training and preprocess.augment and preprocess.seeing_augment > 0:
        seeing = SeeingAugmentation(preprocess.seeing_augment, seed,
                                    float(dataset.manifest.get("pixel_scale_arcsec", 0.2)))
    reader = BatchReader(dataset, rows, labelled, psf_inputs, seeing)

    def next_plan() -> list[ChunkStep]:
        return epoch_plan(len(rows), chunk_size, batch_size, rng)

    fill, mean, scale = (np.asarray(a, np.float32) for a in
                         (scaling.fill, scaling.mean, scaling.scale))

    def finish(images, mags, *z):
        features = {"image": images, "mags": standardise_magnitudes(mags, fill, mean, scale)}
        return (features, *z) if z else features

    if workers > 1:
        return PlannedBatches(reader, next_plan, finish, workers)
    epochs = itertools.count()

    def epoch() -> Iterator[tuple[np.ndarray, ...]]:
        plan, number = next_plan(), next(epochs)
        return in_background(lambda: _batches(reader, plan, number), PREFETCH_BATCHES,
                             "hzexp-input", input_niceness)

    n_batches = -(-len(rows) // batch_size)
    if keras.backend.backend() != "tensorflow":
        return EpochBatches(epoch, finish, n_batches)
    import tensorflow as tf

    source = tf.data.Dataset.from_generator(
        epoch, output_signature=_signature(dataset.stored_size, labelled, psf_inputs))
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
