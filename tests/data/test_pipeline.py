import gc
import os
import sys
import threading
import time

import numpy as np
import pytest

from hzexp.config import PreprocessConfig
from hzexp.data import pipeline
from hzexp.data.pipeline import MagnitudeScaling, magnitudes, make_dataset, max_shift_pixels
from hzexp.data.store import Dataset, DatasetError
from hzexp.model.preprocessing import centre_crop, minmax_normalise
from hzexp.training import fit_scaling


@pytest.fixture
def dataset(write_dataset):
    return Dataset.open(write_dataset(n=150, chunk=60))


def identity_scaling():
    return MagnitudeScaling(np.zeros(9, np.float32), np.zeros(9, np.float32),
                            np.ones(9, np.float32))


def collect(batches):
    """All batches of one epoch, concatenated."""
    images, mags, z = [], [], []
    for features, labels in batches:
        images.append(features["image"].numpy())
        mags.append(features["mags"].numpy())
        z.append(labels.numpy())
    return np.concatenate(images), np.concatenate(mags), np.concatenate(z)


def test_evaluation_batches_keep_row_order_and_centre_crop(dataset):
    rows = np.array([149, 0, 77, 3, 60])
    preprocess = PreprocessConfig(cutout=20)
    batches = make_dataset(dataset, rows, preprocess, identity_scaling(), batch_size=2,
                           chunk_size=3)
    assert [len(z) for _, z in batches] == [2, 2, 1]  # batches span chunk boundaries
    images, mags, z = collect(batches)
    assert images.shape == (5, 20, 20, 4)
    np.testing.assert_allclose(z, dataset.catalogue["z_spec"].to_numpy(np.float32)[rows])
    np.testing.assert_allclose(mags, magnitudes(dataset, rows))
    expected = minmax_normalise(centre_crop(dataset.read_images(rows), 20)).numpy()
    np.testing.assert_allclose(images, expected, rtol=1e-6)
    assert images.min() == 0.0 and np.allclose(images.max(axis=(1, 2, 3)), 1.0)


def test_training_batches_cover_the_split_shuffled_and_augmented_each_epoch(dataset):
    rows = np.arange(0, 150, 2)
    batches = make_dataset(dataset, rows, PreprocessConfig(cutout=36), identity_scaling(),
                           batch_size=16, chunk_size=20, training=True, seed=1)
    first_images, _, first_z = collect(batches)
    second_images, _, second_z = collect(batches)
    expected_z = np.sort(dataset.catalogue["z_spec"].to_numpy(np.float32)[rows])
    np.testing.assert_allclose(np.sort(first_z), expected_z)
    np.testing.assert_allclose(np.sort(second_z), expected_z)
    assert not np.array_equal(first_z, second_z)  # a new order every epoch
    # Same galaxy, two epochs: different augmented views of the same pixels.
    a = first_images[np.argsort(first_z)]
    b = second_images[np.argsort(second_z)]
    assert not np.allclose(a, b)


def test_training_batches_are_full_and_mix_neighbouring_chunks(write_dataset):
    dataset = Dataset.open(write_dataset(n=170, chunk=60))
    rows = np.arange(160)  # five chunks of 32 rows
    batches = make_dataset(dataset, rows, PreprocessConfig(cutout=20), identity_scaling(),
                           batch_size=16, chunk_size=32, training=True, seed=2)
    assert [len(z) for _, z in batches] == [16] * 10
    # z_spec identifies the row, and the row its chunk (rows 0-31 are chunk 0, ...)
    z_spec = dataset.catalogue["z_spec"].to_numpy(np.float32)
    row_of = {z: row for row, z in enumerate(z_spec)}
    assert len(row_of) == len(z_spec)
    chunks_per_batch = [len({row_of[v] // 32 for v in z.numpy()}) for _, z in batches]
    assert max(chunks_per_batch) >= 2


def test_batches_never_wait_for_tf_data_autotuning(dataset):
    """An autotuned iterator delays its own destruction, i.e. the end of every epoch, by up
    to the autotuner's sleep (tens of seconds on TF 2.21)."""
    for training in (True, False):
        batches = make_dataset(dataset, np.arange(20), PreprocessConfig(cutout=20),
                               identity_scaling(), batch_size=4, training=training)
        assert batches.options().autotune.enabled is False


def test_augmented_view_is_a_shifted_or_flipped_crop(dataset):
    rows = np.array([5])
    preprocess = PreprocessConfig(cutout=36)
    shift = max_shift_pixels(preprocess, dataset.stored_size)
    assert shift == 2  # 5% of 36 px, rounded
    stamp = minmax_normalise(dataset.read_images(rows)).numpy()[0]
    candidates = []
    for dy in range(-shift, shift + 1):
        for dx in range(-shift, shift + 1):
            view = stamp[6 + dy:42 + dy, 6 + dx:42 + dx]
            candidates += [view, view[::-1], view[:, ::-1], view[::-1, ::-1]]
    batches = make_dataset(dataset, rows, preprocess, identity_scaling(), batch_size=1,
                           training=True, seed=3)
    for _ in range(5):
        image = collect(batches)[0][0]
        # min-max of a crop differs from a crop of the min-max'd stamp only by an affine map
        image_std = (image - image.mean()) / image.std()
        assert any(np.allclose(image_std, (c - c.mean()) / c.std(), atol=1e-4)
                   for c in candidates)


def test_no_shift_margin_at_full_stored_size(dataset):
    assert max_shift_pixels(PreprocessConfig(cutout=48), 48) == 0


def test_scaling_is_fitted_on_training_rows_only(dataset):
    train_rows = np.arange(100)
    scaling = fit_scaling(dataset, train_rows)
    np.testing.assert_allclose(scaling.mean, np.nanmean(magnitudes(dataset, train_rows), axis=0),
                               rtol=1e-5)
    assert not np.allclose(scaling.mean, np.nanmean(magnitudes(dataset, np.arange(150)), axis=0),
                           rtol=1e-7)


def test_unlabelled_batches_yield_features_only(dataset):
    batches = make_dataset(dataset, np.arange(10), PreprocessConfig(cutout=20),
                           identity_scaling(), batch_size=4, labelled=False)
    first = next(iter(batches))
    assert set(first) == {"image", "mags"}


def test_training_batches_are_reproducible_from_the_seed(dataset):
    def epoch(seed):
        return collect(make_dataset(dataset, np.arange(150), PreprocessConfig(cutout=28),
                                    identity_scaling(), batch_size=16, chunk_size=40,
                                    training=True, seed=seed))

    first, again, other = epoch(5), epoch(5), epoch(6)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[2], other[2])


def test_batches_stay_valid_after_later_chunks_reuse_the_image_buffer(dataset):
    """Every chunk is read into one buffer: batches and held-back rows must be copies."""
    rows = np.array([149, 0, 77, 3, 60, 12, 100])
    batches = list(pipeline._batches(dataset, rows, chunk_size=3, batch_size=2, labelled=True,
                                     augmentation=None))
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]),
                                  dataset.read_images(rows))
    np.testing.assert_array_equal(np.concatenate([b[2] for b in batches]),
                                  dataset.z_spec_array[rows])


def test_training_batches_do_not_depend_on_how_many_images_each_read_takes(dataset,
                                                                           monkeypatch):
    def epoch():
        return collect(make_dataset(dataset, np.arange(150), PreprocessConfig(cutout=28),
                                    identity_scaling(), batch_size=16, chunk_size=40,
                                    training=True, seed=4))

    whole_chunks = epoch()
    monkeypatch.setattr(pipeline, "READ_ROWS", 7)
    for a, b in zip(whole_chunks, epoch()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values")
@pytest.mark.parametrize("niceness", [None, 3])
def test_input_thread_runs_niced_and_leaves_the_callers_priority_alone(dataset, monkeypatch,
                                                                        niceness):
    def own_nice():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    seen = []
    real_batches = pipeline._batches

    def recording_batches(*args):
        for batch in real_batches(*args):
            seen.append((threading.get_native_id(), own_nice()))
            yield batch

    monkeypatch.setattr(pipeline, "_batches", recording_batches)
    before = own_nice()
    chosen = {} if niceness is None else {"input_niceness": niceness}
    collect(make_dataset(dataset, np.arange(40), PreprocessConfig(cutout=20), identity_scaling(),
                         batch_size=8, training=True, **chosen))
    assert own_nice() == before
    assert len({tid for tid, _ in seen}) == 1 and seen[0][0] != threading.get_native_id()
    added = pipeline.INPUT_NICENESS if niceness is None else niceness
    assert {nice for _, nice in seen} == {min(before + added, 19)}


def test_an_error_in_the_input_thread_reaches_the_training_loop(dataset, monkeypatch):
    def failing_batches(*args):
        yield next(iter(real_batches(*args)))
        raise DatasetError("images.h5: non-finite pixels in the image of object_id 7")

    real_batches = pipeline._batches
    monkeypatch.setattr(pipeline, "_batches", failing_batches)
    batches = make_dataset(dataset, np.arange(40), PreprocessConfig(cutout=20),
                           identity_scaling(), batch_size=8, training=True)
    with pytest.raises(Exception, match="non-finite pixels in the image of object_id 7"):
        collect(batches)


def test_dropping_an_iterator_mid_epoch_stops_its_input_thread(dataset):
    batches = make_dataset(dataset, np.arange(150), PreprocessConfig(cutout=20),
                           identity_scaling(), batch_size=2, chunk_size=10, training=True)
    iterator = iter(batches)
    next(iterator)
    assert any(t.name == "hzexp-input" for t in threading.enumerate())
    del iterator
    gc.collect()
    deadline = time.monotonic() + 5
    while any(t.name == "hzexp-input" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "input thread still running 5 s after the drop"
        time.sleep(0.05)


def _epoch_batches(dataset, monkeypatch, **kwargs):
    """`make_dataset` as it is built on a backend other than TensorFlow."""
    monkeypatch.setattr(pipeline.keras.backend, "backend", lambda: "jax")
    try:
        return make_dataset(dataset, **kwargs)
    finally:
        monkeypatch.undo()


def _in_order(batches):
    return [batches[i] for i in range(len(batches))]


def test_other_backends_get_the_same_batches_from_an_in_order_pydataset(dataset, monkeypatch):
    kwargs = dict(rows=np.arange(150), preprocess=PreprocessConfig(cutout=28),
                  scaling=identity_scaling(), batch_size=16, chunk_size=40, training=True,
                  seed=5)
    batches = _epoch_batches(dataset, monkeypatch, **kwargs)
    assert isinstance(batches, pipeline.EpochBatches) and len(batches) == 10
    expected = collect(make_dataset(dataset, **kwargs))
    first_epoch = _in_order(batches)
    got = [np.concatenate([np.asarray(b[0][key]) for b in first_epoch])
           for key in ("image", "mags")] + [np.concatenate([np.asarray(b[1])
                                                             for b in first_epoch])]
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    batches.on_epoch_end()
    second_z = np.concatenate([np.asarray(b[1]) for b in _in_order(batches)])
    assert not np.array_equal(second_z, got[2])  # a new draw every epoch, as on tf.data
    np.testing.assert_allclose(np.sort(second_z), np.sort(got[2]))


def test_the_pydataset_refuses_out_of_order_reads(dataset, monkeypatch):
    batches = _epoch_batches(dataset, monkeypatch, rows=np.arange(150),
                             preprocess=PreprocessConfig(cutout=20), scaling=identity_scaling(),
                             batch_size=16)
    batches[0]
    with pytest.raises(IndexError, match="read in order"):
        batches[3]


def _psf_scaling():
    return MagnitudeScaling(np.zeros(13, np.float32), np.zeros(13, np.float32),
                            np.ones(13, np.float32))


def test_psf_inputs_follow_the_magnitudes_and_grow_with_seeing_augmentation(dataset):
    """Evaluation batches carry the stored PSFs; with seeing augmentation each training
    galaxy's PSF inputs grow by a factor in [1, 1 + seeing_augment], per band, fresh each
    epoch; the magnitudes are untouched."""
    rows = np.arange(150)
    stored = np.concatenate([magnitudes(dataset, rows), dataset.psf_array[rows]], axis=1)
    plain = make_dataset(dataset, rows, PreprocessConfig(cutout=28), _psf_scaling(),
                         batch_size=16, labelled=True, psf_inputs=True)
    np.testing.assert_allclose(collect(plain)[1], stored, rtol=1e-6)
    augmented = make_dataset(dataset, rows, PreprocessConfig(cutout=28, seeing_augment=0.3),
                             _psf_scaling(), batch_size=16, training=True, seed=2,
                             psf_inputs=True)
    epochs = []
    for _ in range(2):
        _, tabular, z = collect(augmented)
        by_label = np.argsort(z)
        epochs.append(tabular[by_label])
    expected = stored[np.argsort(dataset.z_spec_array[rows])]
    for tabular in epochs:
        np.testing.assert_allclose(tabular[:, :9], expected[:, :9], rtol=1e-6)
        growth = tabular[:, 9:] / expected[:, 9:]
        assert growth.min() >= 1.0 - 1e-6 and growth.max() <= 1.3 + 1e-6
        assert growth.std() > 0.05  # drawn per galaxy and band
    assert not np.allclose(epochs[0][:, 9:], epochs[1][:, 9:])


def test_seeing_augmentation_blurs_the_training_stamps_reproducibly(dataset):
    """Augmented stamps are wider (second moment) than the same views without it, and the
    same seed gives the same stamps."""
    def epoch(seeing_augment, seed=4):
        return collect(make_dataset(dataset, np.arange(150),
                                    PreprocessConfig(cutout=28, seeing_augment=seeing_augment,
                                                     shift_fraction=0.0, flips=False),
                                    identity_scaling(), batch_size=16, training=True,
                                    seed=seed))

    def width(images):
        y, x = np.mgrid[:28, :28] - 13.5
        total = images.sum(axis=-1)
        light = np.clip(total - np.median(total, axis=(1, 2), keepdims=True), 0, None)
        return ((x**2 + y**2) * light).sum(axis=(1, 2)) / light.sum(axis=(1, 2))

    sharp, blurred, again = epoch(0.0), epoch(0.5), epoch(0.5)
    order = np.argsort(sharp[2]), np.argsort(blurred[2])
    assert np.median(width(blurred[0][order[1]]) / width(sharp[0][order[0]])) > 1.02
    np.testing.assert_array_equal(blurred[0], again[0])


def test_without_seeing_augmentation_the_draws_are_those_of_before(dataset):
    """seeing_augment 0 draws nothing extra: runs repeat the ones made before it existed."""
    augmentation = pipeline.Augmentation(28, 2, True, np.random.default_rng(9))
    geometry, growth = augmentation.draw(50)
    rng = np.random.default_rng(9)
    shifts = rng.integers(-2, 3, size=(50, 2))
    flips = rng.random((50, 2)) < 0.5
    np.testing.assert_array_equal(geometry, np.column_stack([shifts, flips[:, ::-1]]))
    assert growth is None
