"""Tests of NexusRankDense against a float64 reference, on every backend."""

import math

import keras
import numpy as np
import pytest
from keras import ops

import keras_nexus
from keras_nexus.layers import NexusRankDense
from tests.reference import nexus_rank_dense as reference


def _kernels(layer):
    return [
        ops.convert_to_numpy(layer.hidden_kernel),
        ops.convert_to_numpy(layer.expanded_kernel),
        ops.convert_to_numpy(layer.output_kernel),
    ]


def _random_layer(units=5, hidden=12, expanded=20, **kwargs):
    # A larger stddev than the default makes stage outputs far from zero,
    # so the comparison exercises the whole nonlinearity.
    return NexusRankDense(
        units,
        hidden_units=hidden,
        expanded_units=expanded,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.5),
        **kwargs,
    )


@pytest.mark.parametrize("shape", [(4, 7), (3, 6, 7), (2, 3, 4, 7)])
def test_matches_float64_reference(shape):
    layer = _random_layer()
    x = np.random.default_rng(0).normal(size=shape).astype("float32")

    outputs = ops.convert_to_numpy(layer(x))
    expected = reference(x, *_kernels(layer), scale=math.sqrt(5))

    assert outputs.shape == shape[:-1] + (5,)
    np.testing.assert_allclose(outputs, expected, atol=1e-5, rtol=0)


def test_scale_is_sqrt_units_not_hidden_width():
    layer = _random_layer(units=9, hidden=30, expanded=50)
    layer.build((None, 4))

    assert layer.norm_scale == pytest.approx(3.0)
    assert layer.get_config()["norm_scale"] == pytest.approx(3.0)


def test_explicit_norm_scale_and_bias_match_reference():
    layer = _random_layer(norm_scale=1.7, use_bias=True)
    x = np.random.default_rng(1).normal(size=(3, 7)).astype("float32")
    layer.build(x.shape)
    rng = np.random.default_rng(2)
    for bias in (layer.hidden_bias, layer.expanded_bias, layer.output_bias):
        bias.assign(rng.normal(size=bias.shape).astype("float32"))

    outputs = ops.convert_to_numpy(layer(x))

    biases = [
        ops.convert_to_numpy(b)
        for b in (layer.hidden_bias, layer.expanded_bias, layer.output_bias)
    ]
    kernels = _kernels(layer)
    h = x.astype(np.float64)
    for kernel, bias in zip(kernels[:2], biases[:2]):
        h = h @ kernel + bias
        h = h / (np.linalg.norm(h, axis=-1, keepdims=True) + 1e-5) * 1.7
        h = 0.5 * h * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))
    expected = h @ kernels[2] + biases[2]
    np.testing.assert_allclose(outputs, expected, atol=1e-5, rtol=0)


def test_weights_have_documented_names_and_shapes():
    layer = NexusRankDense(3, hidden_units=8, expanded_units=16)
    layer.build((None, 4))

    assert tuple(layer.hidden_kernel.shape) == (4, 8)
    assert tuple(layer.expanded_kernel.shape) == (8, 16)
    assert tuple(layer.output_kernel.shape) == (16, 3)
    assert layer.hidden_bias is None
    assert len(layer.trainable_weights) == 3
    assert layer.compute_output_shape((2, 5, 4)) == (2, 5, 3)


def test_default_initializer_is_normal_002():
    layer = NexusRankDense(64, hidden_units=128, expanded_units=256)
    layer.build((None, 64))

    std = np.std(ops.convert_to_numpy(layer.expanded_kernel))
    assert abs(std - 0.02) < 0.002


def test_importable_from_package_root():
    assert keras_nexus.NexusRankDense is NexusRankDense


def test_config_round_trip():
    layer = _random_layer(activation="relu", epsilon=1e-4, use_bias=True)
    config = layer.get_config()

    clone = NexusRankDense.from_config(config)

    assert clone.get_config() == config


def test_keras_file_round_trip(tmp_path):
    inputs = keras.Input((6, 7))
    outputs = _random_layer()(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(3).normal(size=(2, 6, 7)).astype("float32")
    path = str(tmp_path / "model.keras")

    model.save(path)
    restored = keras.saving.load_model(path)

    np.testing.assert_array_equal(
        ops.convert_to_numpy(restored(x)), ops.convert_to_numpy(model(x))
    )


def test_zero_input_outputs_and_gradients_finite():
    layer = _random_layer()
    x = np.zeros((2, 3, 7), "float32")
    layer.build(x.shape)

    outputs = ops.convert_to_numpy(layer(x))
    gradients = _gradients(layer, x)

    np.testing.assert_array_equal(outputs, np.zeros_like(outputs))
    for gradient in gradients:
        assert np.all(np.isfinite(gradient))


def _gradients(layer, x):
    """Return the gradients of sum(layer(x)) wrt the kernels and input."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def loss(weights, inputs):
            values, _ = layer.stateless_call(weights, [], inputs)
            return ops.sum(values)

        weights = [v.value for v in layer.trainable_variables]
        weight_grads, input_grads = jax.grad(loss, argnums=(0, 1))(
            weights, ops.convert_to_tensor(x)
        )
        return [np.asarray(g) for g in weight_grads] + [np.asarray(input_grads)]
    if backend == "tensorflow":
        import tensorflow as tf

        inputs = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(layer(inputs))
        grads = tape.gradient(loss, layer.trainable_variables + [inputs])
        return [g.numpy() for g in grads]
    import torch

    inputs = torch.tensor(x, requires_grad=True)
    loss = layer(inputs).sum()
    loss.backward()
    grads = [v.value.grad for v in layer.trainable_variables] + [inputs.grad]
    return [g.detach().cpu().numpy() for g in grads]


def test_zero_hidden_vector_gradient_finite():
    # An input orthogonal to every hidden column makes h1 exactly zero even
    # though x is not: the guard must hold for h, not only for x.
    layer = _random_layer(hidden=4)
    layer.build((None, 7))
    layer.hidden_kernel.assign(np.zeros((7, 4), "float32"))
    x = np.random.default_rng(4).normal(size=(2, 7)).astype("float32")

    for gradient in _gradients(layer, x):
        assert np.all(np.isfinite(gradient))


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_dtypes_and_no_overflow(policy):
    layer = _random_layer(dtype=policy)
    # Large activations: a float16 sum of squares of these would overflow.
    x = np.full((2, 3, 7), 300.0, "float32")

    outputs = layer(x)

    assert keras.backend.standardize_dtype(outputs.dtype) == policy[6:]
    assert layer.hidden_kernel.dtype == "float32"
    assert np.all(np.isfinite(ops.convert_to_numpy(ops.cast(outputs, "float32"))))


def test_mixed_bfloat16_close_to_float32():
    x = np.random.default_rng(5).normal(size=(4, 7)).astype("float32")
    full = _random_layer()
    full.build(x.shape)
    mixed = _random_layer(dtype="mixed_bfloat16")
    mixed.build(x.shape)
    mixed.set_weights(full.get_weights())

    expected = ops.convert_to_numpy(full(x))
    outputs = ops.convert_to_numpy(ops.cast(mixed(x), "float32"))

    np.testing.assert_allclose(outputs, expected, atol=0.1, rtol=0.05)


def test_fit_lowers_regression_loss():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = np.sin(x[:, :1]) + 0.5 * x[:, 1:2] ** 2
    model = keras.Sequential(
        [
            keras.Input((8,)),
            NexusRankDense(16, hidden_units=32, expanded_units=64),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")

    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    after = model.evaluate(x, y, verbose=0)

    assert after < 0.5 * before


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"units": 0}, "units"),
        ({"units": 2.5}, "units"),
        ({"hidden_units": -1}, "hidden_units"),
        ({"hidden_units": "8"}, "hidden_units"),
        ({"expanded_units": 0}, "expanded_units"),
        ({"epsilon": -1e-5}, "epsilon"),
        ({"activation": "not_an_activation"}, "activation"),
        ({"norm_scale": 0.0}, "norm_scale"),
    ],
)
def test_invalid_argument_names_value(kwargs, name):
    arguments = {"units": 4, "hidden_units": 8, "expanded_units": 16}
    arguments.update(kwargs)

    with pytest.raises(ValueError, match=f"{name}="):
        NexusRankDense(**arguments)
