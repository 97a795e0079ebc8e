"""tf.data input for training and evaluation, streamed from a dataset directory.

Images are read from `images.h5` a chunk at a time by a generator thread and never all at
once, so training sets larger than memory work. Each element is cropped (randomly shifted
on the training split, centred elsewhere), flipped (training only), and each batch is
normalised with the same functions the exported model applies at inference, so training
and prediction cannot drift apart.

Augmentation (paper 3.3) is fresh every epoch: shifts of up to `shift_fraction` of the
cutout in width and height, taken from the real pixels around the stored stamp rather than
from padding, and horizontal and vertical flips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from hzexp.config import PreprocessConfig
from hzexp.data.store import IMAGE_BANDS, MAG_COLUMNS, Dataset
from hzexp.model.preprocessing import centre_crop, minmax_normalise, standardise_magnitudes


@dataclass(frozen=True)
class MagnitudeScaling:
    """Training-split statistics that standardise magnitudes (NaN -> `fill` first)."""

    fill: np.ndarray
    mean: np.ndarray
    scale: np.ndarray


# Batches kept ready ahead of the model: reading and cropping a chunk (~0.1 s for 2048
# mock galaxies) takes less than one training step, so a few cover it.
PREFETCH_BATCHES = 4


def magnitudes(dataset: Dataset, rows: np.ndarray) -> np.ndarray:
    """Raw AB magnitudes (N, 9) of catalogue rows, NaN where unmeasured."""
    return dataset.magnitude_array[rows]


def redshifts(dataset: Dataset, rows: np.ndarray) -> np.ndarray:
    """Spectroscopic redshifts of catalogue rows, as float32 labels."""
    return dataset.z_spec_array[rows]


def max_shift_pixels(preprocess: PreprocessConfig, stored_size: int) -> int:
    """Largest augmentation shift in px: `shift_fraction` of the cutout, limited by the
    margin the stored stamp has around the cutout (no shifts at cutout == stored size)."""
    wanted = int(round(preprocess.shift_fraction * preprocess.cutout))
    return min(wanted, (stored_size - preprocess.cutout) // 2)


def random_views(images: np.ndarray, cutout: int, max_shift: int, flips: bool,
                 rng: np.random.Generator) -> np.ndarray:
    """Augmented cutouts: each centre shifted by up to `max_shift` px in x and y, and with
    `flips` each stamp flipped left-right and up-down with probability 1/2 each.

    Drawn from `rng` in the generator thread rather than with tf.random inside a parallel
    map, whose draws depend on thread scheduling: a run is then reproducible from its seed.
    """
    n, size = len(images), images.shape[1]
    base = (size - cutout) // 2
    offsets = base + rng.integers(-max_shift, max_shift + 1, size=(n, 2))
    flip = rng.random((n, 2)) < 0.5 if flips else np.zeros((n, 2), bool)
    views = np.empty((n, cutout, cutout, images.shape[3]), dtype=images.dtype)
    for k, ((y, x), (lr, ud)) in enumerate(zip(offsets, flip)):
        view = images[k, y:y + cutout, x:x + cutout]
        views[k] = view[::-1 if ud else 1, ::-1 if lr else 1]
    return views


def _batches(dataset: Dataset, rows: np.ndarray, chunk_size: int, batch_size: int,
             labelled: bool, crop: Callable[[np.ndarray], np.ndarray] | None,
             rng: np.random.Generator | None) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield (images, mags[, z]) batches of `batch_size` rows (the last may be shorter).

    Rows are read a chunk at a time, each chunk a run of rows in storage order and so one
    cheap HDF5 read. With `rng` (training) the chunks come in random order, and each one is
    shuffled together with half a chunk of rows held back from the previous one, so every
    batch mixes two chunks as a one-chunk tf.data shuffle buffer would, but on whole arrays
    rather than one galaxy at a time (which cost more CPU than reading and cropping, and
    made each epoch wait for the buffer to fill). Without `rng`, rows keep their order.
    `crop`, when given, turns stored stamps into cutouts before rows are mixed and batched.
    """
    blocks = [rows[i:i + chunk_size] for i in range(0, len(rows), chunk_size)]
    order = rng.permutation(len(blocks)) if rng is not None else range(len(blocks))
    held_back = chunk_size // 2 if rng is not None else 0
    pending: list[np.ndarray] | None = None
    for b in order:
        block = blocks[b]
        images = dataset.read_images(block)
        parts = [crop(images) if crop is not None else images, magnitudes(dataset, block)]
        if labelled:
            parts.append(redshifts(dataset, block))
        if pending is not None and len(pending[0]):
            parts = [np.concatenate([old, new]) for old, new in zip(pending, parts)]
        if rng is not None:
            perm = rng.permutation(len(parts[0]))
            parts = [part[perm] for part in parts]
        ready = max(len(parts[0]) - held_back, 0) // batch_size * batch_size
        for start in range(0, ready, batch_size):
            yield tuple(part[start:start + batch_size] for part in parts)
        pending = [part[ready:] for part in parts]
    if pending is not None:
        for start in range(0, len(pending[0]), batch_size):
            yield tuple(part[start:start + batch_size] for part in pending)


def _signature(image_size: int, labelled: bool) -> tuple[tf.TensorSpec, ...]:
    spec = (tf.TensorSpec((None, image_size, image_size, len(IMAGE_BANDS)), tf.float32),
            tf.TensorSpec((None, len(MAG_COLUMNS)), tf.float32))
    return spec + (tf.TensorSpec((None,), tf.float32),) if labelled else spec


def make_dataset(dataset: Dataset, rows: np.ndarray, preprocess: PreprocessConfig,
                 scaling: MagnitudeScaling, batch_size: int, chunk_size: int = 2048,
                 training: bool = False, seed: int = 0, labelled: bool = True) -> tf.data.Dataset:
    """Batches of ({"image", "mags"}, z_spec) ready for the core Hybrid-z model.

    `training=True` shuffles and augments, with a new draw every epoch; otherwise rows keep
    their order and images are centre-cropped, so predictions align with `rows`.
    """
    rows = np.sort(np.asarray(rows, dtype=np.int64)) if training else np.asarray(rows, np.int64)
    cutout = preprocess.cutout
    crop = None
    rng = None
    if training:
        rng = np.random.default_rng(seed)
        shift = max_shift_pixels(preprocess, dataset.stored_size) if preprocess.augment else 0
        flips = preprocess.flips and preprocess.augment
        crop = lambda images: random_views(images, cutout, shift, flips, rng)  # noqa: E731
    source = tf.data.Dataset.from_generator(
        lambda: _batches(dataset, rows, chunk_size, batch_size, labelled, crop, rng),
        output_signature=_signature(cutout if training else dataset.stored_size, labelled))
    fill, mean, scale = (tf.constant(a, tf.float32) for a in
                         (scaling.fill, scaling.mean, scaling.scale))

    def finish(images, mags, *z):
        if not training:
            images = centre_crop(images, cutout)
        features = {"image": minmax_normalise(images),
                    "mags": standardise_magnitudes(mags, fill, mean, scale)}
        return (features, *z) if z else features

    # The generator hides the length from tf.data; stating it lets Keras size its epochs
    # and progress bars instead of discovering the end by running out of data.
    n_batches = -(-len(rows) // batch_size)
    return (source.map(finish)
            .apply(tf.data.experimental.assert_cardinality(n_batches))
            .prefetch(PREFETCH_BATCHES)
            .with_options(fixed_tuning()))


def fixed_tuning() -> tf.data.Options:
    """tf.data options with autotuning off.

    Destroying an autotuned iterator waits for its autotuning thread to wake from its sleep
    between optimisation rounds, and Keras drops each epoch's iterator as the next epoch
    starts: epochs began with random stalls (measured on TF 2.21: about 2 s at most epoch
    starts and 35-50 s at about a third of them, on a generator input or in-memory arrays
    alike). One Python generator feeds this pipeline, so there is no parallelism to tune:
    a fixed prefetch depth does the job.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options
