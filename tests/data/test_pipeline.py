import gc
import os
import sys
import threading
import time

import numpy as np
import pytest

from hzexp.config import PreprocessConfig
from hzexp.data import pipeline
from hzexp.data.pipeline import MagnitudeScaling, magnitudes, make_dataset
from hzexp.data.store import Dataset, DatasetError
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


def test_evaluation_batches_keep_row_order_and_the_stored_stamps(dataset):
    """The model cuts and normalises the stamps (`hzexp.model.augmentation`), not the input."""
    rows = np.array([149, 0, 77, 3, 60])
    preprocess = PreprocessConfig(cutout=20)
    batches = make_dataset(dataset, rows, preprocess, identity_scaling(), batch_size=2,
                           chunk_size=3)
    assert [len(z) for _, z in batches] == [2, 2, 1]  # batches span chunk boundaries
    images, mags, z = collect(batches)
    np.testing.assert_allclose(z, dataset.catalogue["z_spec"].to_numpy(np.float32)[rows])
    np.testing.assert_allclose(mags, magnitudes(dataset, rows))
    np.testing.assert_array_equal(images, dataset.read_images(rows))


def test_training_batches_cover_the_split_shuffled_afresh_each_epoch(dataset):
    rows = np.arange(0, 150, 2)
    batches = make_dataset(dataset, rows, PreprocessConfig(cutout=36), identity_scaling(),
                           batch_size=16, chunk_size=20, training=True, seed=1)
    first_images, _, first_z = collect(batches)
    second_images, _, second_z = collect(batches)
    expected_z = np.sort(dataset.catalogue["z_spec"].to_numpy(np.float32)[rows])
    np.testing.assert_allclose(np.sort(first_z), expected_z)
    np.testing.assert_allclose(np.sort(second_z), expected_z)
    assert not np.array_equal(first_z, second_z)  # a new order every epoch
    # Without seeing augmentation, each galaxy's stored stamp, untouched.
    by_z = rows[np.argsort(dataset.z_spec_array[rows])]
    np.testing.assert_array_equal(first_images[np.argsort(first_z)], dataset.read_images(by_z))
    np.testing.assert_array_equal(second_images[np.argsort(second_z)],
                                  dataset.read_images(by_z))


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
    reader = pipeline.BatchReader(dataset, rows, labelled=True, psf_inputs=False)
    batches = list(pipeline._batches(reader, pipeline.epoch_plan(len(rows), 3, 2, None), 0))
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
    """Augmented stamps are wider (second moment) than the stored ones, and the same seed
    gives the same stamps."""
    def epoch(seeing_augment, seed=4):
        return collect(make_dataset(dataset, np.arange(150),
                                    PreprocessConfig(cutout=28, seeing_augment=seeing_augment),
                                    identity_scaling(), batch_size=16, training=True,
                                    seed=seed))

    def width(images):  # of the central 28 px, where the galaxy outshines the sky noise
        images = images[:, 10:38, 10:38]
        y, x = np.mgrid[:28, :28] - 13.5
        total = images.sum(axis=-1)
        light = np.clip(total - np.median(total, axis=(1, 2), keepdims=True), 0, None)
        return ((x**2 + y**2) * light).sum(axis=(1, 2)) / light.sum(axis=(1, 2))

    sharp, blurred, again = epoch(0.0), epoch(0.5), epoch(0.5)
    order = np.argsort(sharp[2]), np.argsort(blurred[2])
    assert np.median(width(blurred[0][order[1]]) / width(sharp[0][order[0]])) > 1.02
    np.testing.assert_array_equal(blurred[0], again[0])


def test_an_epoch_plan_holds_every_row_once_in_full_batches_mixing_chunks():
    plan = pipeline.epoch_plan(1000, 128, 32, np.random.default_rng(0))
    batches = [positions for step in plan for positions in step.batches]
    assert len(batches) == -(-1000 // 32)
    assert [len(b) for b in batches[:-1]] == [32] * (len(batches) - 1)
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(1000))
    assert max(len(set(b // 128)) for b in batches) >= 2
    ordered = pipeline.epoch_plan(100, 30, 8, None)
    np.testing.assert_array_equal(np.concatenate([b for step in ordered for b in step.batches]),
                                  np.arange(100))


@pytest.mark.parametrize("psf_inputs", [False, True])
def test_several_reading_threads_give_the_single_threads_batches(dataset, psf_inputs):
    """`PlannedBatches` reads each batch on its own, in parallel and out of order, yet every
    epoch holds the same batches, seeing augmentation included, as the one-thread input."""
    kwargs = dict(rows=np.arange(150), preprocess=PreprocessConfig(cutout=28,
                                                                   seeing_augment=0.3),
                  scaling=_psf_scaling() if psf_inputs else identity_scaling(),
                  batch_size=16, chunk_size=40, training=True, seed=5, psf_inputs=psf_inputs)
    threaded = make_dataset(dataset, workers=3, **kwargs)
    assert isinstance(threaded, pipeline.PlannedBatches) and threaded.workers == 3
    single = make_dataset(dataset, **kwargs)
    epochs = []
    for _ in range(2):
        got = [threaded[i] for i in reversed(range(len(threaded)))][::-1]
        threaded.on_epoch_end()
        expected = [(features["image"].numpy(), features["mags"].numpy(), z.numpy())
                    for features, z in single]
        assert len(got) == len(expected) == 10
        for (features, z), (image, mags, z_expected) in zip(got, expected):
            np.testing.assert_array_equal(features["image"], image)
            np.testing.assert_allclose(np.asarray(features["mags"]), mags, rtol=1e-6)
            np.testing.assert_array_equal(z, z_expected)
        epochs.append(np.concatenate([z for _, z in got]))
    assert not np.array_equal(*epochs)


def test_keras_trains_from_several_reading_threads(dataset):
    import dataclasses

    from hzexp.config import TrainingConfig
    from hzexp.model import build_hybrid_z, compile_hybrid_z, trainer
    from tests.model.conftest import TINY

    preprocess = PreprocessConfig(cutout=28)
    model = trainer(build_hybrid_z(dataclasses.replace(TINY, depth=3), 28), preprocess,
                    dataset.stored_size, seed=0)
    compile_hybrid_z(model, TrainingConfig())
    batches = make_dataset(dataset, np.arange(150), preprocess, identity_scaling(),
                           batch_size=16, training=True, workers=2)
    history = model.fit(batches, epochs=2, verbose=0).history
    assert len(history["loss"]) == 2 and np.isfinite(history["loss"]).all()
