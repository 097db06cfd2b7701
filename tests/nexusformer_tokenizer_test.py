"""Tests of the byte-level tokenizer and the causal LM preprocessor."""

import numpy as np
import pytest
from keras import ops

from keras_nexus.models import NexusformerCausalLMPreprocessor
from keras_nexus.models import NexusformerTokenizer

TEXTS = [
    "To be, or not to be",
    "Größe, naïve café",
    "日本語のテキスト",
    "emoji 🙂 and\nnew lines\ttabs",
    "",
]


def _ids(x):
    return np.asarray(ops.convert_to_numpy(x)).tolist()


def test_special_token_ids():
    tokenizer = NexusformerTokenizer()

    assert tokenizer.pad_token_id == 0
    assert tokenizer.start_token_id == 2
    assert tokenizer.end_token_id == 3
    assert sorted(tokenizer.special_token_ids) == [0, 2, 3]
    assert tokenizer.vocabulary_size() == 256


@pytest.mark.parametrize("text", TEXTS)
def test_tokenize_is_utf8_bytes_and_round_trips(text):
    tokenizer = NexusformerTokenizer()

    token_ids = tokenizer.tokenize(text)

    assert _ids(token_ids) == list(text.encode("utf-8"))
    assert tokenizer.detokenize(token_ids) == text


def test_batched_round_trip_keeps_case():
    tokenizer = NexusformerTokenizer()

    token_ids = tokenizer.tokenize(TEXTS)

    assert [_ids(row) for row in token_ids] == [
        list(text.encode("utf-8")) for text in TEXTS
    ]
    assert tokenizer.detokenize(token_ids) == TEXTS


def test_config_round_trip():
    tokenizer = NexusformerTokenizer()
    config = tokenizer.get_config()

    clone = NexusformerTokenizer.from_config(config)

    assert clone.get_config() == config
    assert config["lowercase"] is False


def test_preprocessor_packs_start_end_and_padding():
    preprocessor = NexusformerCausalLMPreprocessor(
        NexusformerTokenizer(), sequence_length=8
    )

    x, y, sample_weight = preprocessor(["Hé", "abcdefghij"])
    token_ids = np.asarray(ops.convert_to_numpy(x["token_ids"]))
    padding_mask = np.asarray(ops.convert_to_numpy(x["padding_mask"]))
    y = np.asarray(ops.convert_to_numpy(y))
    sample_weight = np.asarray(ops.convert_to_numpy(sample_weight))

    # "Hé" is three bytes: start, H, 0xC3 0xA9, end, then padding.
    np.testing.assert_array_equal(
        token_ids[0], [2, 72, 195, 169, 3, 0, 0, 0]
    )
    np.testing.assert_array_equal(padding_mask[0], [1, 1, 1, 1, 1, 0, 0, 0])
    # Labels are the inputs shifted left by one, and padding has no weight.
    np.testing.assert_array_equal(y[0], [72, 195, 169, 3, 0, 0, 0, 0])
    np.testing.assert_array_equal(sample_weight[0], [1, 1, 1, 1, 0, 0, 0, 0])
    # A long text is truncated, start token first.
    np.testing.assert_array_equal(
        token_ids[1], [2] + list(b"abcdefg")
    )


def test_generate_preprocess_has_no_end_token():
    preprocessor = NexusformerCausalLMPreprocessor(
        NexusformerTokenizer(), sequence_length=6
    )

    x = preprocessor.generate_preprocess(["ab"])

    np.testing.assert_array_equal(
        np.asarray(ops.convert_to_numpy(x["token_ids"]))[0], [2, 97, 98, 0, 0, 0]
    )


def test_generate_postprocess_strips_special_tokens():
    preprocessor = NexusformerCausalLMPreprocessor(
        NexusformerTokenizer(), sequence_length=8
    )
    token_ids = np.array(
        [[2, 72, 195, 169, 3, 0, 0, 0], [2, 2, 111, 107, 3, 3, 0, 0]],
        "int32",
    )
    padding_mask = np.array(
        [[1, 1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 0, 0]], bool
    )

    texts = preprocessor.generate_postprocess(
        {"token_ids": token_ids, "padding_mask": padding_mask}
    )

    assert texts == ["Hé", "ok"]
