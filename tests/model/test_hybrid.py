"""The network: shapes, output range, exact size, compile and a short fit."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from hzexp.config import ModelConfig, TrainingConfig
from hzexp.model import build_hybrid_z, compile_hybrid_z
from hzexp.model.inception import scale_filters


def _inputs(n: int, cutout: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.random((n, cutout, cutout, 4), dtype=np.float32),
            rng.standard_normal((n, 9)).astype(np.float32)]


@pytest.mark.parametrize("depth", [3, 4, 5])
@pytest.mark.parametrize("cutout", [20, 28, 36, 44, 48])
def test_output_is_one_redshift_in_unit_interval(tiny_model, depth, cutout):
    model = tiny_model(depth=depth, cutout=cutout)
    z = keras.ops.convert_to_numpy(model(_inputs(5, cutout), training=False))
    assert z.shape == (5, 1)
    assert np.all((z > 0) & (z < 1))
    flat = model.get_layer("image_flatten").output.shape[-1]
    side = -(-(-(-cutout // 3)) // 2)  # ceil(ceil(cutout / 3) / 2)
    assert flat == side * side * model.get_layer(f"inception_{depth}_concat").output.shape[-1]


def _conv(k: int, cin: int, cout: int) -> int:
    return k * k * cin * cout + cout


def _dense(nin: int, nout: int) -> int:
    return nin * nout + nout


def _default_trainable_params(depth: int, cutout: int) -> int:
    """The default Hybrid-z network's trainable parameters, counted by hand."""
    stem = _conv(7, 4, 64) + _conv(1, 64, 64) + _conv(3, 64, 192)   # 12608 + 4160 + 110784

    def module(cin: int) -> int:
        return (_conv(1, cin, 64) + _conv(1, cin, 96) + _conv(3, 96, 128)
                + _conv(1, cin, 16) + _conv(5, 16, 32) + _conv(1, cin, 32))

    inception = module(192) + (depth - 1) * module(64 + 128 + 32 + 32)   # 163696 + 177008 each
    mags = _dense(9, 512) + _dense(512, 256) + 2 * 256 + _dense(256, 128) + _dense(128, 64)
    side = -(-(-(-cutout // 3)) // 2)                                   # 36 -> 12 -> 6
    flat = side * side * 256                                            # 9216
    head = _dense(flat + 64, 512) + _dense(512, 128) + _dense(128, 32) + _dense(32, 1)
    return stem + inception + mags + head


def test_default_parameter_count_matches_hand_count():
    counts = {}
    for depth in (3, 4, 5):
        model = build_hybrid_z(dataclasses.replace(ModelConfig(), depth=depth), 36)
        counts[depth] = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        assert counts[depth] == _default_trainable_params(depth, 36)
    assert counts[4] == 5_822_081
    assert counts[3] < counts[4] < counts[5]
    assert counts[5] - counts[4] == counts[4] - counts[3] == 177_008


def test_width_scales_module_filters_with_a_floor_of_one():
    assert scale_filters((64, 96, 128, 16, 32, 32), 0.125) == (8, 12, 16, 2, 4, 4)
    assert scale_filters((64, 96, 128, 16, 32, 32), 0.01) == (1, 1, 1, 1, 1, 1)


def test_layer_names_are_stable(tiny_model):
    names = {layer.name for layer in tiny_model(depth=3).layers}
    assert {"image", "mags", "stem_conv7", "stem_conv1", "stem_conv3", "inception_1_branch_3x3",
            "inception_3_branch_pool_proj", "mag_dense_1", "mag_batchnorm", "mag_dropout",
            "mag_dense_4", "merge", "head_dense_3", "z_phot"} <= names


def test_build_is_a_pure_function_of_config_and_seed(tiny_model):
    first, second = tiny_model(), tiny_model()
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_mixed_precision_keeps_the_output_and_preprocessing_in_float32(tiny_model):
    from hzexp.model import export_model

    keras.config.set_dtype_policy("mixed_float16")
    try:
        core = tiny_model(cutout=20)
        exported = export_model(core, 20, 24, [0.0] * 9, [0.0] * 9, [1.0] * 9)
    finally:
        keras.config.set_dtype_policy("float32")
    assert core.get_layer("stem_conv7").compute_dtype == "float16"
    assert core.output.dtype == exported.output.dtype == "float32"
    assert {exported.get_layer(n).compute_dtype for n in
            ("centre_crop", "minmax_normalise", "standardise_magnitudes")} == {"float32"}


def test_compiled_model_fits_and_its_checkpoint_reloads_the_same_loss(tiny_model, tmp_path):
    model = tiny_model()
    compile_hybrid_z(model, TrainingConfig(learning_rate=1e-3, huber_delta=1e-3))
    x, z = _inputs(32, 20), np.random.default_rng(2).random((32, 1)).astype(np.float32)
    history = model.fit(x, z, batch_size=8, epochs=2, verbose=0)
    assert set(history.history) == {"loss", "mae", "mse", "r2"}
    assert all(np.isfinite(v).all() for v in history.history.values())

    # Keras 3.15's own Huber would reload with delta = 1.0 and a ~100x larger loss here.
    model.save(tmp_path / "checkpoint.keras")
    loaded = keras.models.load_model(tmp_path / "checkpoint.keras")
    before = model.evaluate(x, z, verbose=0, return_dict=True)
    after = loaded.evaluate(x, z, verbose=0, return_dict=True)
    assert before.keys() == after.keys()
    for key in before:
        assert after[key] == pytest.approx(before[key], rel=1e-5)
