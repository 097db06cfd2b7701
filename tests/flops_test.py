"""Tests of the analytic FLOP counter against hand counts and built models."""

import numpy as np
import pytest

from keras_nexus import flops
from keras_nexus.layers import NexusRankDense
from keras_nexus.models import NexusformerBackbone
from keras_nexus.models import NexusformerCausalLM

# Every width differs, so a swapped pair of widths changes the count.
TINY_CONFIG = {
    "vocabulary_size": 11,
    "num_layers": 2,
    "num_query_heads": 4,
    "num_key_value_heads": 2,
    "hidden_dim": 8,
    "head_dim": 2,
    "nexus_hidden_dim": 12,
    "nexus_expanded_dim": 20,
    "ffn_hidden_dim": 16,
    "ffn_expanded_dim": 24,
}


def test_breakdown_matches_hand_count():
    # 3 sequences of 5 tokens: 15 tokens. Query width 4 * 2 = 8, key/value
    # width 2 * 2 = 4.
    breakdown = flops.forward_flops_breakdown(
        TINY_CONFIG, sequence_length=5, batch_size=3
    )

    # query and output: 2 * 15 * (8*12 + 12*20 + 20*8) = 30 * 496 = 14880
    # key and value:    2 * 15 * (8*12 + 12*20 + 20*4) = 30 * 416 = 12480
    # per layer 2 * 14880 + 2 * 12480 = 54720, two layers.
    assert breakdown["attention_projections"] == 109440
    # scores and values: 2 * (2 * 3 * 5 * 5 * 8) = 2400 per layer.
    assert breakdown["attention_scores"] == 4800
    # 2 * 15 * (8*16 + 16*24 + 24*8) = 30 * 704 = 21120 per layer.
    assert breakdown["feedforward"] == 42240
    # 2 * 15 * 8 * 11
    assert breakdown["head"] == 2640
    assert breakdown["total"] == 109440 + 4800 + 42240 + 2640


def test_training_is_three_forward_passes():
    forward = flops.forward_flops(TINY_CONFIG, sequence_length=5, batch_size=3)
    training = flops.training_flops(
        TINY_CONFIG, sequence_length=5, batch_size=3
    )

    assert forward == 159120
    assert training == 3 * 159120
    assert flops.training_flops_per_token(TINY_CONFIG, 5) == pytest.approx(
        flops.training_flops(TINY_CONFIG, 5) / 5
    )


def test_projection_flops_match_built_kernels():
    backbone = NexusformerBackbone(**TINY_CONFIG)
    kernel_weights = sum(
        int(np.prod(layer.hidden_kernel.shape))
        + int(np.prod(layer.expanded_kernel.shape))
        + int(np.prod(layer.output_kernel.shape))
        for layer in backbone._flatten_layers()
        if isinstance(layer, NexusRankDense)
    )
    tokens = 2 * 7

    breakdown = flops.forward_flops_breakdown(backbone, 7, batch_size=2)

    # Every kernel weight is used in one multiply-add per token.
    projections = breakdown["attention_projections"] + breakdown["feedforward"]
    assert projections == 2 * tokens * kernel_weights
    embedding = backbone.token_embedding.embeddings
    assert breakdown["head"] == 2 * tokens * int(np.prod(embedding.shape))


def test_backbone_causal_lm_and_dict_agree():
    backbone = NexusformerBackbone(**TINY_CONFIG)
    causal_lm = NexusformerCausalLM(backbone)

    from_dict = flops.forward_flops(TINY_CONFIG, 6, batch_size=2)

    assert flops.forward_flops(backbone, 6, batch_size=2) == from_dict
    assert flops.forward_flops(causal_lm, 6, batch_size=2) == from_dict


def test_unset_widths_use_backbone_defaults():
    config = {
        "vocabulary_size": 13,
        "num_layers": 1,
        "num_query_heads": 2,
        "num_key_value_heads": 1,
        "hidden_dim": 12,
    }

    breakdown = flops.forward_flops_breakdown(config, 4)

    # head_dim 12 / 2 = 6, M = 2 * 12 = 24, A = 4 * 12 = 48. Query and
    # output: 2 * 4 * (12*24 + 24*48 + 48*12); key and value have width 6.
    query = 2 * 4 * (12 * 24 + 24 * 48 + 48 * 12)
    key = 2 * 4 * (12 * 24 + 24 * 48 + 48 * 6)
    assert breakdown["attention_projections"] == 2 * query + 2 * key
    # The feed-forward expanded width defaults to 8 * 12 / 3 = 32, rounded
    # up to a multiple of 256.
    assert breakdown["feedforward"] == 2 * 4 * (12 * 24 + 24 * 256 + 256 * 12)
    config_with_nones = dict(config, head_dim=None, nexus_hidden_dim=None)
    assert flops.forward_flops(config_with_nones, 4) == breakdown["total"]


def test_linear_in_batch_and_quadratic_attention():
    one = flops.forward_flops_breakdown(TINY_CONFIG, 5, batch_size=1)
    four = flops.forward_flops_breakdown(TINY_CONFIG, 5, batch_size=4)
    longer = flops.forward_flops_breakdown(TINY_CONFIG, 10, batch_size=1)

    assert four["total"] == 4 * one["total"]
    assert longer["attention_scores"] == 4 * one["attention_scores"]
    assert longer["feedforward"] == 2 * one["feedforward"]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"sequence_length": 0}, "sequence_length"),
        ({"sequence_length": 4, "batch_size": -1}, "batch_size"),
        ({"sequence_length": 2.5}, "sequence_length"),
    ],
)
def test_invalid_sizes_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        flops.forward_flops(TINY_CONFIG, **kwargs)


def test_incomplete_config_raises():
    with pytest.raises(ValueError, match="hidden_dim"):
        flops.forward_flops({"vocabulary_size": 5, "num_layers": 1}, 4)
    with pytest.raises(ValueError, match="config"):
        flops.forward_flops("not a config", 4)


def test_model_flops_utilization():
    assert flops.model_flops_utilization(2.5e9, 1e10) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="peak_flops_per_second"):
        flops.model_flops_utilization(1e9, 0.0)
    with pytest.raises(ValueError, match="flops_per_second"):
        flops.model_flops_utilization(float("nan"), 1e9)
