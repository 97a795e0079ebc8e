"""Where the model runs: precision policy and data-parallel training, on each backend."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from hzexp.config import TrainingConfig
from hzexp.model import configure_precision, distribution_scope
from tests.helpers import REPO


def test_precision_stays_float32_without_a_gpu():
    try:
        for dtype in ("float16", "bfloat16"):
            training = TrainingConfig(mixed_precision=True, mixed_dtype=dtype)
            assert configure_precision(training) == "float32"
            assert keras.config.dtype_policy().name == "float32"
    finally:
        keras.config.set_dtype_policy("float32")


#: Fits a tiny core for two steps on fixed arrays, with or without data parallelism, and
#: prints the replica count and the trained weights' checksum. Run in a fresh process so the
#: backend and (on JAX) the number of virtual CPU devices can be chosen.
FIT_SCRIPT = textwrap.dedent("""
    import dataclasses, json, sys
    import keras, numpy as np
    from hzexp.config import ModelConfig, TrainingConfig
    from hzexp.model import build_hybrid_z, compile_hybrid_z, distribution_scope
    training = TrainingConfig(distribution=sys.argv[1], batch_size=8)
    tiny = ModelConfig(depth=3, stem_filters=(4, 4, 8), width=0.125,
                       mag_units=(8, 8, 8, 8), head_units=(8, 8, 4), mag_dropout=0.0)
    rng = np.random.default_rng(0)
    x = {"image": rng.random((16, 20, 20, 4), np.float32),
         "mags": rng.standard_normal((16, 9)).astype(np.float32)}
    y = rng.uniform(0.05, 0.5, 16).astype(np.float32)
    keras.utils.set_random_seed(0)
    with distribution_scope(training) as replicas:
        core = build_hybrid_z(tiny, 20)
        compile_hybrid_z(core, training)
        core.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        z = core.predict(x, batch_size=8, verbose=0).reshape(-1)
    print(json.dumps({"replicas": replicas, "backend": keras.backend.backend(),
                      "z": [float(v) for v in z]}))
""")


def _fit(backend: str, distribution: str, devices: int = 1) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    done = subprocess.run([sys.executable, "-c", FIT_SCRIPT, distribution], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_jax_data_parallel_over_two_devices_trains_as_one_device():
    """Two virtual CPU devices, each batch split in two: the same gradients (batch norm
    statistics and the loss are taken over the whole batch), so the same model."""
    pytest.importorskip("jax")
    single = _fit("jax", "none")
    parallel = _fit("jax", "data_parallel", devices=2)
    assert parallel["replicas"] == 2 and single["replicas"] == 1
    np.testing.assert_allclose(parallel["z"], single["z"], atol=1e-5)


def test_tensorflow_mirrored_strategy_runs_on_the_visible_device():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the TensorFlow strategy path")
    training = dataclasses.replace(TrainingConfig(), distribution="data_parallel")
    with distribution_scope(training) as replicas:
        assert replicas >= 1
        import tensorflow as tf

        assert tf.distribute.has_strategy()
