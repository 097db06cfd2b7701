"""Tests of NexusformerCausalLM: cached generation, saving, training."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_nexus
from keras_nexus.models import NexusformerCausalLM
from keras_nexus.models import NexusformerCausalLMPreprocessor
from keras_nexus.models import NexusformerTokenizer
from tests.nexusformer_testing import TINY_CONFIG
from tests.nexusformer_testing import make_backbone
from tests.nexusformer_testing import random_token_ids
from tests.nexusformer_testing import randomize_weights


# Most inputs below have this shape, so that JAX, which compiles each
# operation again for every new input shape, compiles them once.
BATCH, TOTAL = 3, 14
PROMPTS = ["Hé!", "ok", "To be"]


def _numpy(x):
    return ops.convert_to_numpy(ops.cast(x, "float32"))


def _causal_lm(preprocessor=None, **backbone_overrides):
    backbone = make_backbone(**backbone_overrides)
    randomize_weights(backbone)
    causal_lm = NexusformerCausalLM(backbone, preprocessor)
    causal_lm.compile(sampler="greedy")
    return causal_lm


# The tests below only read these models, so each is built once. Sharing
# them also shares their compiled `predict` and `generate` functions.
@pytest.fixture(scope="module")
def causal_lm():
    keras.utils.set_random_seed(11)
    return _causal_lm()


@pytest.fixture(scope="module")
def causal_lm_with_preprocessor():
    keras.utils.set_random_seed(12)
    return _causal_lm(_preprocessor())


def _preprocessor(sequence_length=TOTAL):
    return NexusformerCausalLMPreprocessor(
        NexusformerTokenizer(), sequence_length=sequence_length
    )


def _padded_prompts(rng, lengths, total):
    """Return right-padded prompts of the given lengths in a `total` buffer."""
    token_ids = np.zeros((len(lengths), total), "int32")
    padding_mask = np.zeros((len(lengths), total), bool)
    for row, length in enumerate(lengths):
        token_ids[row, :length] = random_token_ids(rng, (length,))
        padding_mask[row, :length] = True
    return token_ids, padding_mask


def _greedy_reference(causal_lm, token_ids, padding_mask):
    """Fill each row past its prompt with argmax tokens of full passes.

    Every step runs the whole uncached model on the whole buffer. Logits at
    position p - 1 depend only on the tokens up to p - 1 (the causality
    tests check this), so the tokens after p do not matter.
    """
    token_ids = token_ids.copy()
    prompt_lengths = padding_mask.sum(axis=1)
    total = token_ids.shape[1]
    for position in range(prompt_lengths.min(), total):
        inputs = {
            "token_ids": token_ids,
            "padding_mask": np.arange(total)[None, :] < position,
        }
        logits = _numpy(causal_lm.predict_on_batch(inputs))
        next_tokens = np.argmax(logits[:, position - 1], axis=-1)
        generating = position >= prompt_lengths
        token_ids[generating, position] = next_tokens[generating]
    return token_ids


@pytest.mark.parametrize(
    "lengths, total",
    [([3, 5, 8], 14), ([300], 308)],
    ids=["short_prompts", "prompt_longer_than_256"],
)
def test_cached_greedy_matches_argmax_loop(causal_lm, lengths, total):
    token_ids, padding_mask = _padded_prompts(
        np.random.default_rng(0), lengths, total
    )

    outputs = causal_lm.generate(
        {"token_ids": token_ids, "padding_mask": padding_mask},
        stop_token_ids=None,
    )
    expected = _greedy_reference(causal_lm, token_ids, padding_mask)

    np.testing.assert_array_equal(outputs["token_ids"], expected)
    # The prompts come back unchanged.
    np.testing.assert_array_equal(
        outputs["token_ids"][padding_mask], token_ids[padding_mask]
    )


def _empty_cache():
    head_dim = TINY_CONFIG["hidden_dim"] // TINY_CONFIG["num_query_heads"]
    return np.zeros(
        (
            BATCH,
            TINY_CONFIG["num_layers"],
            2,
            TOTAL,
            TINY_CONFIG["num_key_value_heads"],
            head_dim,
        ),
        "float32",
    )


def _call_with_cache_function(causal_lm):
    """Return `causal_lm.call_with_cache`, compiled as a whole on JAX.

    Eager JAX compiles every operation separately for each new input shape,
    which takes seconds per shape. `generate` compiles the function as a
    whole on JAX too, so this is also the path that generation takes.
    """
    if keras.backend.backend() != "jax":
        return causal_lm.call_with_cache
    import jax

    return jax.jit(causal_lm.call_with_cache)


def test_prefill_longer_cache_matches_uncached(causal_lm):
    prompt_length = 5
    buffer = np.zeros((BATCH, TOTAL), "int32")
    buffer[:, :prompt_length] = random_token_ids(
        np.random.default_rng(1), (BATCH, prompt_length)
    )
    padding_mask = buffer != 0

    expected = _numpy(
        causal_lm.predict_on_batch(
            {"token_ids": buffer, "padding_mask": padding_mask}
        )
    )
    # The whole padded buffer in one call, as `generate` fills its cache.
    call_with_cache = _call_with_cache_function(causal_lm)
    logits, _, cache = call_with_cache(buffer, _empty_cache(), 0)

    np.testing.assert_allclose(
        _numpy(logits)[:, :prompt_length],
        expected[:, :prompt_length],
        atol=1e-5,
        rtol=0,
    )
    # The padding after the prompt was written to the cache too.
    assert np.all(np.any(_numpy(cache)[:, :, :, prompt_length:] != 0, -1))


def test_incremental_decoding_matches_full_pass(causal_lm):
    token_ids = random_token_ids(np.random.default_rng(2), (BATCH, TOTAL))

    expected = _numpy(
        causal_lm.predict_on_batch(
            {"token_ids": token_ids, "padding_mask": np.ones_like(token_ids)}
        )
    )
    call_with_cache = _call_with_cache_function(causal_lm)
    cache = _empty_cache()
    steps = []
    for index in range(TOTAL):
        logits, _, cache = call_with_cache(
            token_ids[:, index : index + 1],
            cache,
            ops.convert_to_tensor(index, "int32"),
        )
        steps.append(_numpy(logits))

    np.testing.assert_allclose(
        np.concatenate(steps, axis=1), expected, atol=1e-5, rtol=0
    )


def _force_next_token(causal_lm, token_id):
    """Make every position predict `token_id`, whatever the input.

    With one embedding shared by all tokens, every position of every
    sequence has the same final hidden state h. A head whose only nonzero
    column is 10 * h gives that token the logit 10 * |h|^2 > 0 and every
    other token 0.
    """
    backbone = causal_lm.backbone
    embedding = backbone.get_layer("token_embedding")
    rng = np.random.default_rng(3)
    shared = rng.normal(size=(1, TINY_CONFIG["hidden_dim"]))
    embedding.embeddings.assign(
        np.tile(shared, (TINY_CONFIG["vocabulary_size"], 1)).astype("float32")
    )
    probe = np.ones((BATCH, TOTAL), "int32")
    hidden = backbone.predict_on_batch(
        {"token_ids": probe, "padding_mask": probe}
    )
    head = np.zeros(
        (TINY_CONFIG["hidden_dim"], TINY_CONFIG["vocabulary_size"]), "float32"
    )
    head[:, token_id] = 10.0 * hidden[0, 0]
    embedding.reverse_embeddings.assign(head)


def test_generate_strips_special_tokens():
    causal_lm = _causal_lm(_preprocessor())

    # A forced ordinary byte is kept, which shows that forcing works. The
    # 14-token buffer contains the start token, the prompt and then "a"s.
    _force_next_token(causal_lm, ord("a"))
    outputs = causal_lm.generate(PROMPTS)
    assert outputs == ["Hé!" + "a" * 9, "ok" + "a" * 11, "To be" + "a" * 8]

    # Generation stops at the end token (id 3), and pad or start tokens
    # fill the buffer. All three are removed from the text.
    for token_id, name in ((0, "pad"), (2, "start"), (3, "end")):
        _force_next_token(causal_lm, token_id)
        outputs = causal_lm.generate(PROMPTS)
        assert outputs == PROMPTS, f"generated {name} tokens were kept"


def test_keras_file_round_trip_with_preprocessor(
    causal_lm_with_preprocessor, tmp_path
):
    causal_lm = causal_lm_with_preprocessor
    x, _, _ = causal_lm.preprocessor(PROMPTS)
    path = str(tmp_path / "causal_lm.keras")

    causal_lm.save(path)
    restored = keras.saving.load_model(path)

    assert isinstance(restored, NexusformerCausalLM)
    assert isinstance(restored.preprocessor, NexusformerCausalLMPreprocessor)
    assert (
        restored.preprocessor.get_config()
        == causal_lm.preprocessor.get_config()
    )
    np.testing.assert_array_equal(_numpy(restored(x)), _numpy(causal_lm(x)))


def test_preset_round_trip(causal_lm_with_preprocessor, tmp_path):
    causal_lm = causal_lm_with_preprocessor
    x, _, _ = causal_lm.preprocessor(PROMPTS)
    preset = str(tmp_path / "preset")

    causal_lm.save_to_preset(preset)
    restored = keras_nexus.models.NexusformerCausalLM.from_preset(preset)
    tokenizer = NexusformerTokenizer.from_preset(preset)

    assert isinstance(restored.preprocessor, NexusformerCausalLMPreprocessor)
    assert restored.preprocessor.sequence_length == TOTAL
    assert restored.backbone.get_config() == causal_lm.backbone.get_config()
    np.testing.assert_array_equal(_numpy(restored(x)), _numpy(causal_lm(x)))
    assert tokenizer.end_token_id == 3
    np.testing.assert_array_equal(tokenizer("To be"), [84, 111, 32, 98, 101])


TEXTS = [
    "To be, or not to be, that is the question:",
    "Whether 'tis nobler in the mind to suffer",
    "The slings and arrows of outrageous fortune,",
    "Or to take arms against a sea of troubles",
] * 4


def test_fit_on_text_after_a_call():
    # The model is built by a call before `fit`, not inside `fit`. The
    # mixed precision test below trains a model that was never called.
    causal_lm = NexusformerCausalLM(
        make_backbone(), _preprocessor(sequence_length=48)
    )
    x, _, _ = causal_lm.preprocessor(TEXTS[:2])
    causal_lm(x)
    causal_lm.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = [ops.convert_to_numpy(v) for v in causal_lm.trainable_weights]

    history = causal_lm.fit(TEXTS, batch_size=8, epochs=4, verbose=0)

    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0] - 0.5
    after = [ops.convert_to_numpy(v) for v in causal_lm.trainable_weights]
    for variable, old, new in zip(causal_lm.trainable_weights, before, after):
        assert not np.array_equal(old, new), f"{variable.path} did not train"


def test_mixed_bfloat16_forward_and_train_step():
    causal_lm = _causal_lm(dtype="mixed_bfloat16")
    rng = np.random.default_rng(4)
    token_ids = random_token_ids(rng, (BATCH, TOTAL))
    padding_mask = np.ones_like(token_ids)
    padding_mask[1:, 9:] = 0
    x = {"token_ids": token_ids, "padding_mask": padding_mask}
    y = np.roll(token_ids, -1, axis=1)
    causal_lm.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = [ops.convert_to_numpy(v) for v in causal_lm.trainable_weights]

    loss = causal_lm.train_on_batch(
        x, y, sample_weight=padding_mask, return_dict=True
    )["loss"]

    assert np.isfinite(loss)
    for variable, old in zip(causal_lm.trainable_weights, before):
        assert variable.dtype == "float32"
        new = ops.convert_to_numpy(variable)
        assert np.all(np.isfinite(new)), variable.path
        assert not np.array_equal(new, old), variable.path

    hidden = causal_lm.backbone(x)
    logits = causal_lm(x)
    assert keras.backend.standardize_dtype(hidden.dtype) == "bfloat16"
    # The model returns float32 logits (Keras 3.15, all three backends),
    # so the loss and sampling softmax run in float32.
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert np.all(np.isfinite(_numpy(hidden)))
    assert np.all(np.isfinite(_numpy(logits)))
