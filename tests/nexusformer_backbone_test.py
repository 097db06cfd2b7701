"""Tests of NexusformerBackbone: reference, causality, padding, saving."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import ops

from keras_nexus.models import NexusformerBackbone
from tests import reference
from tests.nexusformer_testing import TINY_CONFIG
from tests.nexusformer_testing import make_backbone
from tests.nexusformer_testing import random_token_ids
from tests.nexusformer_testing import randomize_weights
from tests.nexusformer_testing import weights_by_path

# Every eager call below uses inputs of this one shape. JAX compiles each
# operation again for every new input shape, which costs seconds per shape.
BATCH = 11
LENGTH = 10
PADDINGS = {
    "no_padding": np.ones(LENGTH, "int32"),
    "right_padding": np.array([1] * 7 + [0] * 3, "int32"),
    "left_padding": np.array([0] * 3 + [1] * 7, "int32"),
}


@pytest.fixture(scope="module")
def backbone():
    # Built once per module: the tests below only read it.
    keras.utils.set_random_seed(99)
    model = make_backbone()
    randomize_weights(model)
    return model


def _inputs(token_ids, padding_mask):
    token_ids = np.asarray(token_ids, "int32")
    padding_mask = np.broadcast_to(padding_mask, token_ids.shape)
    return {
        "token_ids": token_ids,
        "padding_mask": np.asarray(padding_mask, "int32"),
    }


def _numpy(x):
    return ops.convert_to_numpy(ops.cast(x, "float32"))


@pytest.mark.parametrize("padding", list(PADDINGS))
def test_matches_float64_reference(backbone, padding):
    rng = np.random.default_rng(0)
    inputs = _inputs(random_token_ids(rng, (BATCH, LENGTH)), PADDINGS[padding])

    outputs = _numpy(backbone(inputs))
    expected = reference.nexusformer_backbone(
        inputs["token_ids"],
        inputs["padding_mask"],
        weights_by_path(backbone),
        backbone.get_config(),
    )

    assert outputs.shape == (BATCH, LENGTH, TINY_CONFIG["hidden_dim"])
    np.testing.assert_allclose(outputs, expected, atol=2e-5, rtol=0)


def _causality_batch(rng, padding_mask):
    """Return row 0 and, in row t + 1, a copy with token t changed."""
    assert BATCH == LENGTH + 1
    base = random_token_ids(rng, (LENGTH,))
    rows = [base]
    for t in range(LENGTH):
        row = base.copy()
        row[t] = 4 + (row[t] - 4 + 101) % 252
        rows.append(row)
    return _inputs(np.stack(rows), padding_mask)


def _check_causal(outputs):
    for t in range(LENGTH):
        changed = outputs[t + 1]
        # Not exact: TensorFlow's CPU kernels may sum rows in a different
        # order when other rows change. A leak is orders of magnitude larger.
        np.testing.assert_allclose(
            changed[:t],
            outputs[0, :t],
            atol=1e-5,
            err_msg=f"changing token {t} changed an earlier output",
        )
        # The change must be visible at t itself, or the check above
        # proves nothing.
        assert np.max(np.abs(changed[t] - outputs[0, t])) > 1e-3


@pytest.mark.parametrize("padding", list(PADDINGS))
def test_causal_in_eager_call(backbone, padding):
    inputs = _causality_batch(np.random.default_rng(1), PADDINGS[padding])

    _check_causal(_numpy(backbone(inputs)))


@pytest.mark.parametrize("padding", list(PADDINGS))
def test_causal_in_compiled_predict(backbone, padding):
    inputs = _causality_batch(np.random.default_rng(2), PADDINGS[padding])

    _check_causal(backbone.predict(inputs, batch_size=16, verbose=0))


@pytest.mark.parametrize("padding", ["right_padding", "left_padding"])
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "predict"])
def test_padding_never_changes_real_outputs(backbone, padding, compiled):
    rng = np.random.default_rng(3)
    padding_mask = PADDINGS[padding]
    base = random_token_ids(rng, (LENGTH,))
    rows = [base]
    rows.append(np.where(padding_mask == 1, base, 0))
    while len(rows) < BATCH:
        row = np.where(padding_mask == 1, base, random_token_ids(rng, LENGTH))
        rows.append(row)
    inputs = _inputs(np.stack(rows), padding_mask)

    if compiled:
        outputs = backbone.predict(inputs, verbose=0)
    else:
        outputs = _numpy(backbone(inputs))

    real = padding_mask == 1
    for row in range(1, len(rows)):
        np.testing.assert_allclose(
            outputs[row][real], outputs[0][real], atol=1e-5
        )


def test_left_padding_matches_right_padding(backbone):
    # Rotary attention scores depend only on the distance between a query
    # and a key, so moving the padding from the right to the left leaves
    # the outputs of the real tokens unchanged. Rows 0-4 contain five
    # sequences right-padded, rows 5-9 the same sequences left-padded.
    tokens = random_token_ids(np.random.default_rng(4), (5, 7))
    pads = np.zeros((5, 3), "int32")
    token_ids = np.concatenate(
        [
            np.concatenate([tokens, pads], axis=1),
            np.concatenate([pads, tokens], axis=1),
            np.ones((1, LENGTH), "int32"),
        ]
    )
    padding_mask = np.stack(
        [PADDINGS["right_padding"]] * 5
        + [PADDINGS["left_padding"]] * 5
        + [PADDINGS["no_padding"]]
    )

    outputs = _numpy(backbone(_inputs(token_ids, padding_mask)))

    np.testing.assert_allclose(
        outputs[5:10, 3:], outputs[:5, :7], atol=1e-5, rtol=0
    )


def _nexus_count(input_dim, hidden, expanded, output):
    return input_dim * hidden + hidden * expanded + expanded * output


def test_parameter_counts_match_hand_count():
    model = make_backbone()
    vocabulary = TINY_CONFIG["vocabulary_size"]
    hidden_dim = TINY_CONFIG["hidden_dim"]
    head_dim = hidden_dim // TINY_CONFIG["num_query_heads"]
    query_width = TINY_CONFIG["num_query_heads"] * head_dim
    key_value_width = TINY_CONFIG["num_key_value_heads"] * head_dim
    nexus = (TINY_CONFIG["nexus_hidden_dim"], TINY_CONFIG["nexus_expanded_dim"])
    ffn = (TINY_CONFIG["ffn_hidden_dim"], TINY_CONFIG["ffn_expanded_dim"])
    expected = {
        "query": _nexus_count(hidden_dim, *nexus, query_width),
        "key": _nexus_count(hidden_dim, *nexus, key_value_width),
        "value": _nexus_count(hidden_dim, *nexus, key_value_width),
        "attention_output": _nexus_count(query_width, *nexus, hidden_dim),
        "feedforward": _nexus_count(hidden_dim, *ffn, hidden_dim),
    }

    embedding = model.get_layer("token_embedding")
    assert tuple(embedding.embeddings.shape) == (vocabulary, hidden_dim)
    assert tuple(embedding.reverse_embeddings.shape) == (hidden_dim, vocabulary)
    assert embedding.count_params() == 2 * vocabulary * hidden_dim
    for i in range(TINY_CONFIG["num_layers"]):
        block = model.get_layer(f"transformer_layer_{i}")
        attention = block.self_attention
        assert attention.query_dense.count_params() == expected["query"]
        assert attention.key_dense.count_params() == expected["key"]
        assert attention.value_dense.count_params() == expected["value"]
        assert (
            attention.output_dense.count_params()
            == expected["attention_output"]
        )
        assert block.feedforward.count_params() == expected["feedforward"]
        assert block.self_attention_layernorm.count_params() == hidden_dim
        assert block.feedforward_layernorm.count_params() == hidden_dim
        assert block.count_params() == sum(expected.values()) + 2 * hidden_dim
    final_norm = model.get_layer("sequence_output_layernorm")
    assert final_norm.count_params() == hidden_dim

    per_block = sum(expected.values()) + 2 * hidden_dim
    total = (
        2 * vocabulary * hidden_dim
        + TINY_CONFIG["num_layers"] * per_block
        + hidden_dim
    )
    assert model.count_params() == total


def test_tied_embeddings_drop_head_parameters():
    untied = make_backbone()
    tied = make_backbone(tie_word_embeddings=True)

    difference = untied.count_params() - tied.count_params()

    assert difference == TINY_CONFIG["vocabulary_size"] * TINY_CONFIG["hidden_dim"]


def test_weight_paths_are_stable():
    # Growth and sharding code find weights by these paths.
    paths = {variable.path for variable in make_backbone().weights}

    for i in range(TINY_CONFIG["num_layers"]):
        prefix = f"transformer_layer_{i}"
        for name in ("query", "key", "value", "attention_output"):
            for stage in ("hidden", "expanded", "output"):
                assert f"{prefix}/self_attention/{name}/{stage}_kernel" in paths
        for stage in ("hidden", "expanded", "output"):
            assert f"{prefix}/feedforward/{stage}_kernel" in paths
        assert f"{prefix}/self_attention_layernorm/scale" in paths
        assert f"{prefix}/feedforward_layernorm/scale" in paths
    assert "token_embedding/embeddings" in paths
    assert "token_embedding/reverse_embeddings" in paths
    assert "sequence_output_layernorm/scale" in paths


def test_default_widths_and_scales():
    model = NexusformerBackbone(
        vocabulary_size=256,
        num_layers=1,
        num_query_heads=4,
        num_key_value_heads=1,
        hidden_dim=24,
    )
    config = model.get_config()

    assert config["head_dim"] == 6
    assert config["nexus_hidden_dim"] == 48
    assert config["nexus_expanded_dim"] == 96
    assert config["ffn_hidden_dim"] == 48
    # 8 * 24 / 3 = 64, rounded up to a multiple of 256.
    assert config["ffn_expanded_dim"] == 256
    scales = config["nexus_norm_scales"]
    assert scales["query"] == pytest.approx(np.sqrt(24))
    assert scales["key"] == pytest.approx(np.sqrt(6))
    assert scales["value"] == pytest.approx(np.sqrt(6))
    assert scales["attention_output"] == pytest.approx(np.sqrt(24))
    assert scales["feedforward"] == pytest.approx(np.sqrt(24))


def test_config_round_trip(backbone):
    config = backbone.get_config()

    clone = NexusformerBackbone.from_config(config)

    assert clone.get_config() == config


@pytest.mark.parametrize(
    "overrides, name",
    [
        ({"vocabulary_size": 0}, "vocabulary_size"),
        ({"num_layers": 0}, "num_layers"),
        ({"num_query_heads": -4}, "num_query_heads"),
        ({"num_key_value_heads": 0}, "num_key_value_heads"),
        ({"num_key_value_heads": 3}, "num_key_value_heads"),
        ({"hidden_dim": 0}, "hidden_dim"),
        ({"hidden_dim": 30}, "hidden_dim"),
        ({"hidden_dim": 20}, "head_dim"),
        ({"head_dim": 7}, "head_dim"),
        ({"head_dim": 0}, "head_dim"),
        ({"nexus_hidden_dim": 0}, "nexus_hidden_dim"),
        ({"nexus_expanded_dim": -1}, "nexus_expanded_dim"),
        ({"ffn_hidden_dim": 0}, "ffn_hidden_dim"),
        ({"ffn_expanded_dim": 2.5}, "ffn_expanded_dim"),
        ({"rope_max_wavelength": 0}, "rope_max_wavelength"),
        ({"layer_norm_epsilon": 0.0}, "layer_norm_epsilon"),
        ({"dropout": 1.0}, "dropout"),
        ({"nexus_epsilon": -1e-5}, "nexus_epsilon"),
        ({"nexus_norm_scales": {"ffn": 1.0}}, "nexus_norm_scales"),
    ],
)
def test_invalid_argument_names_it(overrides, name):
    with pytest.raises(ValueError, match=f"{name}="):
        make_backbone(**overrides)


def test_keras_file_round_trip(backbone, tmp_path):
    inputs = _inputs(
        random_token_ids(np.random.default_rng(5), (BATCH, LENGTH)),
        PADDINGS["right_padding"],
    )
    path = str(tmp_path / "backbone.keras")

    backbone.save(path)
    restored = keras.saving.load_model(path)

    assert isinstance(restored, NexusformerBackbone)
    np.testing.assert_array_equal(
        _numpy(restored(inputs)), _numpy(backbone(inputs))
    )


def test_preset_round_trip(backbone, tmp_path):
    inputs = _inputs(
        random_token_ids(np.random.default_rng(6), (BATCH, LENGTH)),
        PADDINGS["left_padding"],
    )
    preset = str(tmp_path / "preset")

    backbone.save_to_preset(preset)
    restored = NexusformerBackbone.from_preset(preset)

    assert restored.get_config() == backbone.get_config()
    np.testing.assert_array_equal(
        _numpy(restored(inputs)), _numpy(backbone(inputs))
    )


# Torch and TensorFlow run a tiny model eagerly without compiling, while
# JAX compiles every operation first, so JAX takes part only when it is
# the backend under test.
OTHER_BACKEND = {"jax": "torch", "torch": "tensorflow", "tensorflow": "torch"}

# Runs under another backend: loads the weights this process saved and
# writes its outputs, then saves weights of its own with their outputs.
CROSS_BACKEND_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    from keras import ops
    from keras_nexus.models import NexusformerBackbone

    directory = sys.argv[1]
    config = json.load(open(f"{directory}/config.json"))
    inputs = dict(np.load(f"{directory}/inputs.npz"))

    model = NexusformerBackbone(**config)
    model.load_weights(f"{directory}/here.weights.h5")
    np.save(f"{directory}/here_outputs_there.npy",
            ops.convert_to_numpy(model(inputs)))

    keras.utils.set_random_seed(7)
    other = NexusformerBackbone(**config)
    rng = np.random.default_rng(7)
    for variable in other.weights:
        shape = tuple(variable.shape)
        variable.assign((0.3 * rng.normal(size=shape)).astype("float32"))
    other.save_weights(f"{directory}/there.weights.h5")
    np.save(f"{directory}/there_outputs.npy",
            ops.convert_to_numpy(other(inputs)))
    """
)


def test_weights_load_across_backends(backbone, tmp_path):
    backend = keras.backend.backend()
    other_backend = OTHER_BACKEND[backend]
    inputs = _inputs(
        random_token_ids(np.random.default_rng(8), (BATCH, LENGTH)),
        PADDINGS["right_padding"],
    )
    (tmp_path / "config.json").write_text(json.dumps(TINY_CONFIG))
    np.savez(tmp_path / "inputs.npz", **inputs)
    backbone.save_weights(str(tmp_path / "here.weights.h5"))

    # One thread: on a busy 2-core machine, torch's waiting worker threads
    # made tiny matrix products about 50 times slower in one measurement.
    environment = {
        **os.environ,
        "KERAS_BACKEND": other_backend,
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", CROSS_BACKEND_SCRIPT, str(tmp_path)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    # This backend's weights, run there.
    np.testing.assert_allclose(
        np.load(tmp_path / "here_outputs_there.npy"),
        _numpy(backbone(inputs)),
        atol=1e-5,
        rtol=0,
    )
    # The other backend's weights, loaded and run here.
    loaded = make_backbone()
    loaded.load_weights(str(tmp_path / "there.weights.h5"))
    np.testing.assert_allclose(
        _numpy(loaded(inputs)),
        np.load(tmp_path / "there_outputs.npy"),
        atol=1e-5,
        rtol=0,
    )


def test_mixed_bfloat16_forward_is_finite_and_close(backbone):
    inputs = _inputs(
        random_token_ids(np.random.default_rng(9), (BATCH, LENGTH)),
        PADDINGS["right_padding"],
    )
    mixed = make_backbone(dtype="mixed_bfloat16")
    mixed.set_weights(backbone.get_weights())

    outputs = mixed(inputs)

    assert keras.backend.standardize_dtype(outputs.dtype) == "bfloat16"
    for variable in mixed.weights:
        assert variable.dtype == "float32", variable.path
    outputs = _numpy(outputs)
    assert np.all(np.isfinite(outputs))
    # bfloat16 keeps 8 bits of mantissa: close to float32, not equal.
    expected = _numpy(backbone(inputs))
    assert np.max(np.abs(outputs - expected)) < 0.25
    assert np.mean(np.abs(outputs - expected)) < 0.05
