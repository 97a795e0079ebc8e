"""Training throughput: the tf.data pipeline from a dataset directory vs in-memory tensors.

Same model, same batch size, same number of steps, measured alternately in one process
so machine noise hits both alike. Target: pipeline / in-memory >= 0.9.

By default each timed run is one epoch of the training split, as `hzexp train` runs it:
every epoch starts a new pass of the pipeline, which must read and crop a whole chunk to
fill its shuffle buffer before the first batch. A short run (`--steps 30`) charges that
start-up to a few seconds of training instead of an epoch's, and so measures a worse ratio
than training sees.

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

from hzexp.config import load_pipeline
from hzexp.data.pipeline import magnitudes, make_dataset, redshifts
from hzexp.data.splits import assign_splits
from hzexp.data.store import Dataset
from hzexp.model.hybrid import build_hybrid_z, compile_hybrid_z
from hzexp.model.preprocessing import centre_crop, minmax_normalise, standardise_magnitudes
from hzexp.training import fit_scaling

PIPELINE = Path(__file__).parents[1] / "pipelines" / "mock.yaml"
BATCH = 64


def timed_fit(model: keras.Model, data, steps: int, **kwargs) -> float:
    """Images per second over `steps` training steps (after a 3-step warm-up)."""
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0, **kwargs)
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, **kwargs)
    return steps * BATCH / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset directory (default: a fresh 3000-galaxy mock)")
    parser.add_argument("--cutout", type=int, default=36)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--steps", type=int,
                        help="training steps per timed run (default: one training epoch)")
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
    n_memory = min(len(train_rows), steps * BATCH)
    rows = train_rows[:n_memory]
    images = minmax_normalise(centre_crop(dataset.read_images(rows), args.cutout)).numpy()
    mags = standardise_magnitudes(magnitudes(dataset, rows), scaling.fill, scaling.mean,
                                  scaling.scale).numpy()
    in_memory = ({"image": images, "mags": mags}, redshifts(dataset, rows))
    streamed = make_dataset(dataset, train_rows, config.preprocess, scaling, BATCH,
                            chunk_size=config.training.chunk_size, training=True).repeat()

    memory_rates, pipeline_rates = [], []
    for _ in range(args.repeats):
        memory_rates.append(timed_fit(model, in_memory[0], steps, y=in_memory[1],
                                      batch_size=BATCH))
        pipeline_rates.append(timed_fit(model, streamed, steps))
    memory, pipeline = statistics.median(memory_rates), statistics.median(pipeline_rates)
    print(f"dataset {args.data}  cutout {args.cutout}px  depth {args.depth}  batch {BATCH}  "
          f"{steps} steps per run")
    print(f"in-memory tensors : {memory:7.1f} images/s  (runs: "
          f"{', '.join(f'{r:.1f}' for r in memory_rates)})")
    print(f"tf.data pipeline  : {pipeline:7.1f} images/s  (runs: "
          f"{', '.join(f'{r:.1f}' for r in pipeline_rates)})")
    print(f"ratio pipeline / in-memory: {pipeline / memory:.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
