"""Training speed of the Hybrid-z model on an accelerator, on any Keras backend.

For the paper's 36 px, depth-4 model at each batch size, prints training images/s
- of the bare model on device-resident tensors (`train_on_batch` on one batch of stored
  stamps kept on the device, the model's own shifts and flips included: the ceiling), and
- through the real input pipeline (`make_dataset` from a dataset directory, one epoch),
  read by one thread and by `--input-workers` threads (`training.input_workers`),
each in float32 and in mixed precision, with and without XLA (`jit_compile`), plus the
achieved FLOP/s against the device's measured matrix-product rate and the epoch time of
the paper's training set (173k galaxies x 4 augmentations) extrapolated.

The model's FLOPs are counted from its layers (2 per multiply-add in every convolution and
dense layer, the rest neglected; a training step is counted as 3x the forward pass).

    KERAS_BACKEND=jax python bench/gpu_train.py --data data/mock-20k-s42
    python bench/gpu_train.py --data data/mock-smoke --batch-sizes 64 --steps 3   # CPU check
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import keras
import numpy as np
from keras import ops

from hzexp.config import ModelConfig, PreprocessConfig, TrainingConfig
from hzexp.data.pipeline import make_dataset
from hzexp.data.store import Dataset
from hzexp.model import build_hybrid_z, compile_hybrid_z, configure_precision, trainer
from hzexp.model.devices import accelerators
from hzexp.training import fit_scaling

PAPER_TRAINING_IMAGES = 173_000 * 4
TRAIN_STEP_FLOPS_PER_FORWARD = 3


def forward_flops(model: keras.Model) -> float:
    """FLOPs of one image's forward pass: convolutions and dense layers."""
    total = 0.0
    for layer in _layers(model):
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, out_channels = layer.output.shape
            kernel_h, kernel_w, in_channels, _ = layer.kernel.shape
            total += 2.0 * height * width * kernel_h * kernel_w * in_channels * out_channels
        elif isinstance(layer, keras.layers.Dense):
            total += 2.0 * math.prod(layer.kernel.shape)
    return total


def _layers(model: keras.Model):
    for layer in model.layers:
        yield from _layers(layer) if isinstance(layer, keras.Model) else (layer,)


def synchronise(value) -> None:
    """Wait for the device: fetching one number forces every queued kernel to finish."""
    float(ops.convert_to_numpy(ops.sum(ops.cast(value, "float32"))))


def matmul_rate(dtype: str, size: int, repeats: int) -> float:
    """Measured FLOP/s of a square matrix product in `dtype` on the default device."""
    a = ops.cast(keras.random.normal((size, size), seed=1), dtype)
    b = ops.cast(keras.random.normal((size, size), seed=2), dtype)
    synchronise(ops.matmul(a, b))
    start = time.perf_counter()
    for _ in range(repeats):
        c = ops.matmul(a, b)
    synchronise(c)
    return 2.0 * size**3 * repeats / (time.perf_counter() - start)


def build(model_config: ModelConfig, preprocess: PreprocessConfig, stored_size: int,
          training: TrainingConfig) -> keras.Model:
    """The model training fits (`trainer`: augmentation in front of the core), compiled."""
    configure_precision(training)
    keras.utils.set_random_seed(0)
    model = trainer(build_hybrid_z(model_config, preprocess.cutout), preprocess, stored_size,
                    seed=0)
    compile_hybrid_z(model, training)
    return model


def bare_rate(model: keras.Model, batch: int, stored_size: int, steps: int) -> float:
    """Images/s of `train_on_batch` on one batch that stays on the device."""
    rng = np.random.default_rng(0)
    images = ops.convert_to_tensor(rng.random((batch, stored_size, stored_size, 4),
                                              np.float32))
    mags = ops.convert_to_tensor(rng.standard_normal((batch, 9)).astype(np.float32))
    z = ops.convert_to_tensor(rng.uniform(0.02, 0.6, batch).astype(np.float32))
    x = {"image": images, "mags": mags}
    for _ in range(2):  # compile and warm up
        model.train_on_batch(x, z)
    synchronise(model.trainable_weights[0])
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, z)
    synchronise(model.trainable_weights[0])
    return batch * steps / (time.perf_counter() - start)


def pipeline_rate(model: keras.Model, dataset: Dataset, batch: int,
                  preprocess: PreprocessConfig, rows: np.ndarray, workers: int) -> float:
    """Images/s of one training epoch read and batched by `make_dataset` in `workers`
    threads."""
    scaling = fit_scaling(dataset, rows)

    def epoch():
        return make_dataset(dataset, rows, preprocess, scaling, batch_size=batch,
                            training=True, seed=0, workers=workers)

    model.fit(epoch(), epochs=1, steps_per_epoch=2, shuffle=False, verbose=0)  # warm up
    data = epoch()
    start = time.perf_counter()
    model.fit(data, epochs=1, shuffle=False, verbose=0)
    synchronise(model.trainable_weights[0])
    return len(rows) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset directory for the pipeline arm")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--steps", type=int, default=50, help="timed steps of the bare arm")
    parser.add_argument("--cutout", type=int, default=36)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--mixed-dtype", choices=["bfloat16", "float16"], default="bfloat16")
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--max-rows", type=int, default=20_000,
                        help="galaxies in the timed pipeline epoch")
    parser.add_argument("--input-workers", type=int, default=8,
                        help="reading threads of the second pipeline arm")
    args = parser.parse_args()

    devices = accelerators()
    print(f"backend {keras.backend.backend()}, accelerators {devices or 'none (CPU)'}")
    size = args.matmul_size if devices else 1024
    peak = matmul_rate(args.mixed_dtype if devices else "float32", size, 20 if devices else 3)
    print(f"matrix product ({size}^2, {args.mixed_dtype if devices else 'float32'}): "
          f"{peak / 1e12:.3f} TFLOP/s")
    dataset = Dataset.open(args.data)
    rows = np.arange(min(len(dataset), args.max_rows))
    model_config = dataclasses.replace(ModelConfig(), depth=args.depth)
    preprocess = PreprocessConfig(cutout=args.cutout)
    stored = dataset.stored_size
    flops = forward_flops(build(model_config, preprocess, stored, TrainingConfig()))
    print(f"model: {args.cutout} px, depth {args.depth}: {flops / 1e6:.1f} MFLOP per image "
          f"forward, {TRAIN_STEP_FLOPS_PER_FORWARD * flops / 1e6:.1f} per training image")
    threads = args.input_workers
    print(f"batch  precision  xla  bare img/s  TFLOP/s  of peak  pipeline img/s (1 / "
          f"{threads} threads)  ratio  paper epoch s")
    for batch in args.batch_sizes:
        for mixed in (False, True):
            for xla in (False, True):
                training = TrainingConfig(mixed_precision=mixed, mixed_dtype=args.mixed_dtype,
                                          jit_compile=xla, batch_size=batch)
                model = build(model_config, preprocess, stored, training)
                bare = bare_rate(model, batch, stored, args.steps)
                one, several = (pipeline_rate(model, dataset, batch, preprocess, rows, n)
                                for n in (1, threads))
                piped = max(one, several)
                achieved = bare * TRAIN_STEP_FLOPS_PER_FORWARD * flops
                policy = keras.config.dtype_policy().name
                print(f"{batch:5d}  {policy:>9}  {'on ' if xla else 'off'}  {bare:10.0f}"
                      f"  {achieved / 1e12:7.3f}  {achieved / peak:7.1%}  {one:8.0f} / "
                      f"{several:8.0f}"
                      f"  {piped / bare:5.2f}  {PAPER_TRAINING_IMAGES / piped:13.0f}")
    keras.config.set_dtype_policy("float32")


if __name__ == "__main__":
    main()
