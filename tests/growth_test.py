"""Tests of grow_model: exactness, trainability, and rejected requests."""

import os

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from keras import ops

import keras_nexus
from keras_nexus import GrowthVerificationError
from keras_nexus import grow_model
from keras_nexus.growth.backbone_plan import place_heads
from keras_nexus.growth.backbone_plan import place_layers
from keras_nexus.layers import NexusRankDense
from keras_nexus.models import NexusformerBackbone
from keras_nexus.models import NexusformerCausalLM
from tests.gradients import loss_gradients

# Every growth in this file is checked against this tolerance, and the worst
# difference seen is printed at the end of the run.
ATOL = 1e-5
WORST = {"difference": 0.0}


def small_backbone(**overrides):
    config = dict(
        vocabulary_size=64,
        num_layers=2,
        num_query_heads=4,
        num_key_value_heads=2,
        hidden_dim=16,
        head_dim=4,
        nexus_hidden_dim=24,
        nexus_expanded_dim=32,
        ffn_hidden_dim=24,
        ffn_expanded_dim=40,
    )
    config.update(overrides)
    return NexusformerBackbone(**config)


def probe(vocabulary_size=64, batch=2, length=12, seed=0):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(0, vocabulary_size, (batch, length))
    padding_mask = np.ones((batch, length), "int32")
    padding_mask[-1, -3:] = 0
    return {"token_ids": token_ids.astype("int32"), "padding_mask": padding_mask}


def outputs_difference(old, new, inputs):
    """Independently recompute the difference that grow_model reports."""
    old_out = ops.convert_to_numpy(old(inputs, training=False))
    new_out = ops.convert_to_numpy(new(inputs, training=False))
    width = old_out.shape[-1]
    difference = max(
        np.max(np.abs(new_out[..., :width] - old_out)),
        np.max(np.abs(new_out[..., width:]), initial=0.0),
    )
    WORST["difference"] = max(WORST["difference"], float(difference))
    return difference


def train_a_few_steps(causal_lm, steps=3, seed=0):
    rng = np.random.default_rng(seed)
    vocabulary_size = causal_lm.backbone.vocabulary_size
    x = probe(vocabulary_size, batch=4, length=12, seed=seed)
    y = rng.integers(0, vocabulary_size, (4, 12)).astype("int32")
    causal_lm.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    causal_lm.fit(x, y, batch_size=4, epochs=steps, verbose=0)


@pytest.fixture(scope="module", autouse=True)
def report_worst_difference():
    yield
    print(
        f"\n[growth] worst logits difference on "
        f"{keras.backend.backend()}: {WORST['difference']:.3e}"
    )


@st.composite
def growth_steps(draw):
    """A small base config and 1 or 2 valid growth steps over all axes."""
    num_key_value = draw(st.sampled_from([1, 2]))
    group = draw(st.sampled_from([1, 2]))
    head_dim = draw(st.sampled_from([2, 4]))
    base = dict(
        num_layers=draw(st.integers(1, 2)),
        num_query_heads=num_key_value * group,
        num_key_value_heads=num_key_value,
        head_dim=head_dim,
        hidden_dim=draw(st.sampled_from([8, 12])),
        nexus_hidden_dim=draw(st.integers(8, 16)),
        nexus_expanded_dim=draw(st.integers(8, 20)),
        ffn_hidden_dim=draw(st.integers(8, 16)),
        ffn_expanded_dim=draw(st.integers(8, 20)),
    )
    current = dict(base)
    steps = []
    for _ in range(draw(st.integers(1, 2))):
        step = {}
        for axis in (
            "num_layers",
            "hidden_dim",
            "nexus_hidden_dim",
            "nexus_expanded_dim",
            "ffn_hidden_dim",
            "ffn_expanded_dim",
        ):
            if draw(st.booleans()):
                step[axis] = current[axis] + draw(st.integers(1, 6))
        if draw(st.booleans()):
            # Grow heads keeping a valid grouping that hosts the old one.
            new_key_value = current["num_key_value_heads"] * draw(
                st.sampled_from([1, 2])
            )
            old_group = (
                current["num_query_heads"] // current["num_key_value_heads"]
            )
            new_group = draw(st.sampled_from([old_group, old_group + 1]))
            step["num_key_value_heads"] = new_key_value
            step["num_query_heads"] = new_key_value * new_group
        if not step:
            step["num_layers"] = current["num_layers"] + 1
        current.update(step)
        steps.append(step)
    positions = draw(st.sampled_from(["interleave", "top", "bottom"]))
    return base, steps, positions


@settings(
    max_examples=int(os.environ.get("KERAS_NEXUS_HYPOTHESIS_EXAMPLES", 5)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(growth_steps())
def test_random_growth_sequences_are_exact(case):
    base, steps, positions = case
    model = NexusformerCausalLM(small_backbone(**base))
    inputs = probe()

    for step in steps:
        grown = grow_model(
            model, new_layer_positions=positions, atol=ATOL, **step
        )
        reported = grown.growth_report.max_abs_diff
        assert outputs_difference(model, grown, inputs) <= ATOL
        assert reported <= ATOL
        for axis, value in step.items():
            assert getattr(grown.backbone, axis) == value
        model = grown


def test_trained_model_grows_exactly():
    model = NexusformerCausalLM(small_backbone())
    train_a_few_steps(model)

    grown = grow_model(
        model,
        num_layers=3,
        hidden_dim=20,
        num_query_heads=6,
        nexus_hidden_dim=30,
        nexus_expanded_dim=40,
        ffn_hidden_dim=28,
        ffn_expanded_dim=48,
    )

    assert outputs_difference(model, grown, probe()) <= ATOL


def test_loaded_model_grows_and_grown_model_reloads(tmp_path):
    model = NexusformerCausalLM(small_backbone())
    train_a_few_steps(model)
    path = str(tmp_path / "small.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)

    grown = grow_model(loaded, num_layers=3, nexus_expanded_dim=48)
    grown_path = str(tmp_path / "grown.keras")
    grown.save(grown_path)
    reloaded = keras.saving.load_model(grown_path)

    assert outputs_difference(model, grown, probe()) <= ATOL
    np.testing.assert_array_equal(
        ops.convert_to_numpy(reloaded(probe())),
        ops.convert_to_numpy(grown(probe())),
    )


def test_original_weights_bitwise_unchanged():
    model = NexusformerCausalLM(small_backbone())
    before = [ops.convert_to_numpy(w).copy() for w in model.weights]

    grow_model(model, hidden_dim=24, num_layers=3, num_query_heads=8)

    for old, weight in zip(before, model.weights):
        np.testing.assert_array_equal(old, ops.convert_to_numpy(weight))


def test_no_dead_weights_after_growth():
    model = NexusformerCausalLM(small_backbone())
    grown = grow_model(
        model,
        num_layers=3,
        hidden_dim=20,
        num_query_heads=6,
        num_key_value_heads=2,
        nexus_hidden_dim=30,
        nexus_expanded_dim=40,
        ffn_hidden_dim=28,
        ffn_expanded_dim=48,
    )
    before = {w.path: ops.convert_to_numpy(w).copy() for w in grown.weights}
    rng = np.random.default_rng(1)
    x = probe(batch=8, length=12, seed=1)
    x["padding_mask"][:] = 1
    y = rng.integers(0, 64, (8, 12)).astype("int32")
    grown.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )

    grown.fit(x, y, batch_size=8, epochs=2, verbose=0)
    third_step = loss_gradients(grown, x, y)
    grown.fit(x, y, batch_size=8, epochs=1, verbose=0)

    for weight in grown.weights:
        if weight.path == "token_embedding/embeddings":
            continue  # Rows of tokens absent from the batch never move.
        old = before[weight.path]
        new = ops.convert_to_numpy(weight)
        # Every weight that started at zero has moved off zero.
        started_at_zero = old == 0
        assert np.all(new[started_at_zero] != 0), f"stuck at 0: {weight.path}"
        # Every row and column gets a gradient by the third step. Its update
        # can be as small as 1e-11 and vanish in float32 round-off, so the
        # gradient is checked rather than the change of the weight.
        live = third_step[weight.path] != 0
        if weight.ndim == 2:
            assert live.any(axis=1).all(), f"dead row in {weight.path}"
            assert live.any(axis=0).all(), f"dead column in {weight.path}"
        else:
            assert live.all(), f"dead entries in {weight.path}"


def test_new_side_zero_and_other_side_fresh():
    model = small_backbone()
    grown = grow_model(model, nexus_hidden_dim=30)
    layer = grown.get_layer("transformer_layer_0").self_attention.query_dense

    hidden = ops.convert_to_numpy(layer.hidden_kernel)
    expanded = ops.convert_to_numpy(layer.expanded_kernel)

    np.testing.assert_array_equal(hidden[:, 24:], 0.0)
    assert np.all(expanded[24:, :] != 0.0)
    assert 0.01 < np.std(expanded[24:, :]) < 0.03


def test_backbone_growth_returns_backbone_and_keeps_scales():
    model = small_backbone()
    grown = grow_model(model, hidden_dim=32, num_query_heads=8)

    assert isinstance(grown, NexusformerBackbone)
    assert grown.nexus_norm_scales == model.nexus_norm_scales
    assert grown.head_dim == model.head_dim
    assert grown.layer_norm_epsilon == pytest.approx(
        model.layer_norm_epsilon * 16 / 32
    )


def test_causal_lm_keeps_preprocessor_and_generates():
    tokenizer = keras_nexus.models.NexusformerTokenizer()
    preprocessor = keras_nexus.models.NexusformerCausalLMPreprocessor(
        tokenizer, sequence_length=16
    )
    model = NexusformerCausalLM(
        small_backbone(vocabulary_size=256), preprocessor=preprocessor
    )
    grown = grow_model(model, num_layers=3, nexus_hidden_dim=32)
    grown.compile(sampler="greedy")
    model.compile(sampler="greedy")

    text = grown.generate("To be", max_length=12)

    assert grown.preprocessor is preprocessor
    assert isinstance(text, str) and text.startswith("To be")
    assert text == model.generate("To be", max_length=12)


def test_mixed_precision_model_grows():
    model = NexusformerCausalLM(small_backbone(dtype="mixed_bfloat16"))

    grown = grow_model(model, num_layers=3, hidden_dim=24)

    assert grown.dtype_policy.name == "mixed_bfloat16"
    assert grown.growth_report.max_abs_diff <= ATOL


def test_plain_sequential_and_functional_models_grow():
    sequential = keras.Sequential(
        [
            keras.Input((6,)),
            NexusRankDense(5, 8, 12, use_bias=True, name="first"),
            keras.layers.Dense(3),
            NexusRankDense(4, 10, 14, name="second"),
        ]
    )
    inputs = keras.Input((7, 6))
    outputs = NexusRankDense(4, 8, 12, name="only")(inputs)
    functional = keras.Model(inputs, outputs)
    x_sequential = np.random.default_rng(2).normal(size=(3, 6))
    x_functional = np.random.default_rng(3).normal(size=(2, 7, 6))

    grown_sequential = grow_model(
        sequential,
        hidden_units={"first": 16, "second": 12},
        expanded_units=20,
    )
    grown_functional = grow_model(functional, expanded_units=30)

    assert grown_sequential.get_layer("first").hidden_units == 16
    assert grown_sequential.get_layer("second").expanded_units == 20
    np.testing.assert_allclose(
        ops.convert_to_numpy(grown_sequential(x_sequential)),
        ops.convert_to_numpy(sequential(x_sequential)),
        atol=ATOL,
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(grown_functional(x_functional)),
        ops.convert_to_numpy(functional(x_functional)),
        atol=ATOL,
    )


def test_seeded_growth_is_reproducible():
    model = small_backbone()

    first = grow_model(model, num_layers=3, nexus_hidden_dim=30, seed=7)
    second = grow_model(model, num_layers=3, nexus_hidden_dim=30, seed=7)

    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(
            ops.convert_to_numpy(a), ops.convert_to_numpy(b)
        )


def test_verification_failure_raises_and_reports(monkeypatch):
    from keras_nexus.growth import grow as grow_module
    from keras_nexus.growth.transfer import WeightTransfer

    plan = grow_module.plan_backbone_growth

    def broken_plan(*args):
        # Leave the residual-writing kernels of the new block fresh instead
        # of zero, so the new block changes the output.
        transfers = plan(*args)
        return {
            path: transfer
            for path, transfer in transfers.items()
            if not (transfer.source_path is None and transfer.zero)
        }

    monkeypatch.setattr(grow_module, "plan_backbone_growth", broken_plan)
    model = small_backbone()
    before = [ops.convert_to_numpy(w).copy() for w in model.weights]

    with pytest.raises(GrowthVerificationError) as info:
        grow_model(model, num_layers=3)

    assert info.value.max_abs_diff > ATOL
    assert isinstance(info.value, RuntimeError)
    for old, weight in zip(before, model.weights):
        np.testing.assert_array_equal(old, ops.convert_to_numpy(weight))


def test_incompatible_head_grouping_rejected():
    model = small_backbone(num_query_heads=6, num_key_value_heads=2)

    with pytest.raises(ValueError, match="at least 4 key/value heads"):
        grow_model(model, num_query_heads=6, num_key_value_heads=3)


@pytest.mark.parametrize(
    "request_kwargs, pattern",
    [
        ({"hidden_dim": 8}, "hidden_dim=16, requested hidden_dim=8"),
        ({"nexus_hidden_dim": 10}, "nexus_hidden_dim"),
        ({"num_layers": 1}, "num_layers"),
        ({"head_dim": 8}, "head_dim cannot grow"),
        ({"num_query_heads": 5}, "must divide"),
        ({"num_key_value_heads": 3}, "must divide"),
        ({"atol": -1.0, "num_layers": 3}, "non-negative"),
        ({"attention_width": 8}, "Unknown growth axis"),
        ({"hidden_units": 30}, "plain Keras models"),
        ({"num_layers": 2.5}, "positive integer"),
        ({"num_layers": 4, "new_layer_positions": [0, 9]}, "distinct"),
        ({"num_layers": 3, "new_layer_positions": "middle"}, "interleave"),
        ({}, "No growth requested"),
    ],
)
def test_invalid_requests_raise_value_error(request_kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        grow_model(small_backbone(), **request_kwargs)


def test_plain_model_invalid_requests():
    dense_only = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    nexus = keras.Sequential([keras.Input((4,)), NexusRankDense(2, 8, 12)])

    with pytest.raises(ValueError, match="no top-level NexusRankDense"):
        grow_model(dense_only, hidden_units=4)
    with pytest.raises(ValueError, match="can only grow"):
        grow_model(nexus, hidden_units=4)
    with pytest.raises(ValueError, match="not NexusRankDense layers"):
        grow_model(nexus, hidden_units={"missing": 20})
    with pytest.raises(ValueError, match="Nexusformer models only"):
        grow_model(nexus, num_layers=3)
    with pytest.raises(ValueError, match="must be a NexusformerBackbone"):
        grow_model("model.keras", num_layers=3)


def test_head_placement_keeps_old_groups():
    cases = [(4, 2, 6, 2), (4, 2, 8, 4), (4, 1, 4, 2), (4, 1, 4, 4), (6, 2, 12, 6)]
    for num_query, num_kv, new_num_query, new_num_kv in cases:
        query_sources, kv_sources = place_heads(
            num_query, num_kv, new_num_query, new_num_kv
        )
        new_group = new_num_query // new_num_kv
        for position, head in enumerate(query_sources):
            if head >= 0:
                old_kv = head // (num_query // num_kv)
                assert kv_sources[position // new_group] == old_kv
        assert sorted(h for h in query_sources if h >= 0) == list(
            range(num_query)
        )


def test_layer_placement_options():
    np.testing.assert_array_equal(
        place_layers(2, 4, "interleave"), [0, -1, 1, -1]
    )
    np.testing.assert_array_equal(place_layers(2, 3, "top"), [0, 1, -1])
    np.testing.assert_array_equal(place_layers(2, 3, "bottom"), [-1, 0, 1])
    np.testing.assert_array_equal(place_layers(2, 4, [0, 2]), [-1, 0, -1, 1])
