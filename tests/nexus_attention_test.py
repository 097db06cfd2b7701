"""Tests of NexusAttention against a float64 reference, on every backend."""

import math

import keras
import numpy as np
import pytest
from keras import ops

import keras_nexus
from keras_nexus.layers import NexusAttention
from tests import reference

HIDDEN_DIM = 16
HEAD_DIM = 8


def _attention(num_query_heads, num_key_value_heads, **kwargs):
    # A larger stddev than the default gives peaked attention, so the
    # comparison depends on the rotary angles, the score scale and the mask.
    layer = NexusAttention(
        num_query_heads=num_query_heads,
        num_key_value_heads=num_key_value_heads,
        head_dim=HEAD_DIM,
        hidden_units=12,
        expanded_units=20,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.3),
        **kwargs,
    )
    layer.build((None, None, HIDDEN_DIM))
    return layer


def _projections(layer):
    """Return the kernels and scales of each projection, for the reference."""
    projections = {}
    for name, dense in (
        ("query", layer.query_dense),
        ("key", layer.key_dense),
        ("value", layer.value_dense),
        ("attention_output", layer.output_dense),
    ):
        kernels = [
            ops.convert_to_numpy(kernel)
            for kernel in (
                dense.hidden_kernel,
                dense.expanded_kernel,
                dense.output_kernel,
            )
        ]
        projections[name] = (*kernels, dense.norm_scale)
    return projections


def _inputs(shape=(2, 7, HIDDEN_DIM), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


HEAD_LAYOUTS = {
    "multi_head": (4, 4),
    "grouped_query": (4, 2),
    "multi_query": (4, 1),
    "grouped_query_groups_of_3": (6, 2),
}


@pytest.mark.parametrize(
    "num_query_heads, num_key_value_heads",
    list(HEAD_LAYOUTS.values()),
    ids=list(HEAD_LAYOUTS),
)
def test_matches_float64_reference(num_query_heads, num_key_value_heads):
    layer = _attention(num_query_heads, num_key_value_heads)
    x = _inputs()

    outputs = ops.convert_to_numpy(layer(x))
    expected, _, _ = reference.nexus_attention(
        x, _projections(layer), num_query_heads, num_key_value_heads
    )

    assert outputs.shape == x.shape
    np.testing.assert_allclose(outputs, expected, atol=1e-5, rtol=0)


def test_group_reads_its_own_key_value_head():
    # Query head i must read key/value head i // 2 (heads 0, 1 -> 0 and
    # 2, 3 -> 1), not i % 2. Swapping the two key/value heads in the
    # reference must therefore change the expected output.
    layer = _attention(4, 2)
    x = _inputs()
    projections = _projections(layer)

    outputs = ops.convert_to_numpy(layer(x))
    expected, _, _ = reference.nexus_attention(x, projections, 4, 2)

    swapped = dict(projections)
    for name in ("key", "value"):
        hidden, expanded, output, scale = projections[name]
        heads = output.reshape(output.shape[0], 2, HEAD_DIM)
        swapped[name] = (
            hidden,
            expanded,
            heads[:, ::-1].reshape(output.shape),
            scale,
        )
    wrong, _, _ = reference.nexus_attention(x, swapped, 4, 2)

    np.testing.assert_allclose(outputs, expected, atol=1e-5, rtol=0)
    assert np.max(np.abs(outputs - wrong)) > 1e-2


def test_rotary_wavelength_is_10000():
    # A reference with another wavelength must disagree, so the reference
    # comparison pins the wavelength.
    layer = _attention(2, 2)
    x = _inputs()
    outputs = ops.convert_to_numpy(layer(x))

    other_wavelength, _, _ = reference.nexus_attention(
        x, _projections(layer), 2, 2, max_wavelength=500
    )

    assert layer.rope_max_wavelength == 10000
    assert np.max(np.abs(outputs - other_wavelength)) > 1e-3


def test_default_mask_is_causal():
    layer = _attention(4, 2)
    x = _inputs()
    # Row 1 is row 0 with position 4 changed.
    x[1] = x[0]
    x[1, 4] += 1.0

    outputs = ops.convert_to_numpy(layer(x))

    np.testing.assert_allclose(outputs[1, :4], outputs[0, :4], atol=1e-6)
    assert np.max(np.abs(outputs[1, 4:] - outputs[0, 4:])) > 1e-3


def test_explicit_padding_mask_matches_reference():
    layer = _attention(4, 2)
    x = _inputs()
    # Row 0 is right-padded after 4 tokens, row 1 left-padded by 3. Every
    # query also reads its own key, so no softmax row is empty.
    padding = np.array([[1, 1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1, 1]], bool)
    mask = reference.causal_mask(7, 7)[None] & (
        padding[:, None, :] | np.eye(7, dtype=bool)
    )

    outputs = ops.convert_to_numpy(layer(x, attention_mask=mask))
    expected, _, _ = reference.nexus_attention(
        x, _projections(layer), 4, 2, mask=mask
    )

    np.testing.assert_allclose(outputs, expected, atol=1e-5, rtol=0)


def test_cached_decoding_matches_reference():
    # Token by token from an empty cache, as `generate` decodes after its
    # prefill. The causal LM tests cover a prefill of many tokens.
    layer = _attention(4, 2)
    x = _inputs()
    length = x.shape[1]
    expected, keys, values = reference.nexus_attention(
        x, _projections(layer), 4, 2
    )

    # (batch, key/value, cache length, key/value heads, head_dim)
    cache = np.zeros((2, 2, length, 2, HEAD_DIM), "float32")
    steps = []
    for index in range(length):
        outputs, cache = layer(
            x[:, index : index + 1],
            cache=cache,
            cache_update_index=ops.convert_to_tensor(index, "int32"),
        )
        steps.append(ops.convert_to_numpy(outputs))
    cache = ops.convert_to_numpy(cache)

    np.testing.assert_allclose(
        np.concatenate(steps, axis=1), expected, atol=1e-5, rtol=0
    )
    np.testing.assert_allclose(cache[:, 0], keys, atol=1e-5, rtol=0)
    np.testing.assert_allclose(cache[:, 1], values, atol=1e-5, rtol=0)


def test_projection_widths_and_scales():
    layer = _attention(6, 2)

    assert tuple(layer.query_dense.output_kernel.shape) == (20, 6 * HEAD_DIM)
    assert tuple(layer.key_dense.output_kernel.shape) == (20, 2 * HEAD_DIM)
    assert tuple(layer.value_dense.output_kernel.shape) == (20, 2 * HEAD_DIM)
    assert tuple(layer.output_dense.hidden_kernel.shape) == (6 * HEAD_DIM, 12)
    assert tuple(layer.output_dense.output_kernel.shape) == (20, HIDDEN_DIM)
    assert layer.norm_scales["query"] == pytest.approx(math.sqrt(48))
    assert layer.norm_scales["key"] == pytest.approx(4.0)
    assert layer.norm_scales["attention_output"] == pytest.approx(4.0)


def test_explicit_norm_scales_are_kept():
    layer = _attention(2, 2, norm_scales={"query": 1.5, "value": 2.5})

    assert layer.query_dense.norm_scale == pytest.approx(1.5)
    assert layer.value_dense.norm_scale == pytest.approx(2.5)
    assert layer.key_dense.norm_scale == pytest.approx(4.0)


def test_config_round_trip():
    layer = _attention(4, 2, dropout=0.1)
    config = layer.get_config()

    clone = NexusAttention.from_config(config)
    clone.build((None, None, HIDDEN_DIM))

    assert clone.get_config() == config
    assert config["norm_scales"]["query"] == pytest.approx(math.sqrt(32))


def test_importable_from_package_root():
    assert keras_nexus.NexusAttention is NexusAttention


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_query_heads": 0}, "num_query_heads"),
        ({"num_key_value_heads": -2}, "num_key_value_heads"),
        ({"num_key_value_heads": 3}, "num_key_value_heads"),
        ({"head_dim": 7}, "head_dim"),
        ({"head_dim": 4.0}, "head_dim"),
        ({"hidden_units": 0}, "hidden_units"),
        ({"expanded_units": None}, "expanded_units"),
        ({"dropout": 1.0}, "dropout"),
        ({"norm_scales": {"queries": 1.0}}, "norm_scales"),
    ],
)
def test_invalid_argument_names_it(kwargs, name):
    arguments = {
        "num_query_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "hidden_units": 12,
        "expanded_units": 20,
    }
    arguments.update(kwargs)

    with pytest.raises(ValueError, match=name):
        NexusAttention(**arguments)
