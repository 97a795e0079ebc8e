"""Training throughput: the tf.data pipeline from a dataset directory vs in-memory tensors.

Same model, same batch size, same training rows, measured alternately in one process so
machine noise hits both alike. Target: pipeline / in-memory >= 0.9. The in-memory arm feeds
the normalised tensors through the thinnest tf.data input there is (slice and batch, not
even shuffled: the model's cost does not depend on the order), with autotuning off as in
the pipeline: Keras' own input for arrays is autotuned, and an autotuned iterator stalls
the end of an epoch for up to tens of seconds at random.

Each timed run is the second of two epochs of one `fit`, run as `hzexp train` runs them:
every epoch starts a new pass of the finite pipeline (which must read and crop a chunk
before the first batch) and runs it to its end. By default the rows are the whole
training split, so that start-up is charged to an epoch of training
as it is in real runs; `--steps N` times N-batch epochs instead.

    python bench/train_throughput.py --data data/mock-20k-s42 --cutout 36
    python bench/train_throughput.py                       # builds a 3000-galaxy mock first
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from hzexp.config import load_pipeline
from hzexp.data.pipeline import fixed_tuning, magnitudes, make_dataset, redshifts
from hzexp.data.splits import assign_splits
from hzexp.data.store import Dataset
from hzexp.model.hybrid import build_hybrid_z, compile_hybrid_z
from hzexp.model.preprocessing import centre_crop, minmax_normalise, standardise_magnitudes
from hzexp.training import fit_scaling

PIPELINE = Path(__file__).parents[1] / "pipelines" / "mock.yaml"
BATCH = 64


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch, from its start to its end."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def epoch_rate(model: keras.Model, data: tf.data.Dataset, n_images: int) -> float:
    """Images per second of the second of two epochs (the first pays tracing and warm-up).

    The input must be finite and each epoch read to its end, as in training: on TF 2.21 a
    generator-fed input abandoned mid-stream (`.repeat()` with `steps_per_epoch`) makes
    every later `fit` in the process start about 5 s late, whichever arm it times.
    """
    timer = EpochTimer()
    model.fit(data, epochs=2, verbose=0, callbacks=[timer], shuffle=False)
    return n_images / timer.seconds[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset directory (default: a fresh 3000-galaxy mock)")
    parser.add_argument("--cutout", type=int, default=36)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--steps", type=int,
                        help="batches per timed epoch (default: the whole training split)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    if args.data is None:
        from hzexp.data.mock import simulate

        args.data = simulate(Path(tempfile.mkdtemp()) / "mock", n_galaxies=3000, seed=1)
    dataset = Dataset.open(args.data)
    config = load_pipeline(PIPELINE, [f"preprocess.cutout={args.cutout}",
                                      f"model.depth={args.depth}", f"training.batch_size={BATCH}"])
    train_rows = assign_splits(len(dataset), config.split)["train"]
    scaling = fit_scaling(dataset, train_rows)
    keras.utils.set_random_seed(0)
    model = build_hybrid_z(config.model, args.cutout)
    compile_hybrid_z(model, config.training)

    steps = args.steps or -(-len(train_rows) // BATCH)
    rows = train_rows[:steps * BATCH]
    images = minmax_normalise(centre_crop(dataset.read_images(rows), args.cutout)).numpy()
    mags = standardise_magnitudes(magnitudes(dataset, rows), scaling.fill, scaling.mean,
                                  scaling.scale).numpy()
    in_memory = (tf.data.Dataset.from_tensor_slices(({"image": images, "mags": mags},
                                                     redshifts(dataset, rows)))
                 .batch(BATCH).prefetch(2)
                 .with_options(fixed_tuning()))
    streamed = make_dataset(dataset, rows, config.preprocess, scaling, BATCH,
                            chunk_size=config.training.chunk_size, training=True)

    memory_rates, pipeline_rates = [], []
    for _ in range(args.repeats):
        memory_rates.append(epoch_rate(model, in_memory, len(rows)))
        pipeline_rates.append(epoch_rate(model, streamed, len(rows)))
    memory, pipeline = statistics.median(memory_rates), statistics.median(pipeline_rates)
    print(f"dataset {args.data}  cutout {args.cutout}px  depth {args.depth}  batch {BATCH}  "
          f"{len(rows)} images per epoch")
    print(f"in-memory tensors : {memory:7.1f} images/s  (runs: "
          f"{', '.join(f'{r:.1f}' for r in memory_rates)})")
    print(f"tf.data pipeline  : {pipeline:7.1f} images/s  (runs: "
          f"{', '.join(f'{r:.1f}' for r in pipeline_rates)})")
    print(f"ratio pipeline / in-memory: {pipeline / memory:.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
