"""Analytic FLOP counts for Nexusformer forward passes and training steps.

Conventions, chosen to match the usual "6 N D" accounting of language-model
training compute:

- A matrix product of shapes `(m, k) @ (k, n)` costs `2 * m * k * n` FLOPs
  (one multiply and one add per term).
- Every `NexusRankDense` layer applied to T tokens costs
  `2 * T * (D_in * M + M * A + A * D_out)` FLOPs: its three kernels.
- Self-attention costs `2 * T * T * H * head_dim` for the scores and the
  same again for the weighted sum of values, per sequence of length T with
  H query heads. The full T x T matrices are counted, because the model
  computes them in full and masks the upper triangle afterwards.
- The language-model head costs `2 * T * D * V` (tied or not).
- A training step costs 3 times the forward pass: the backward pass
  computes one product for the input gradient and one for the weight
  gradient of every forward product.

Not counted: embedding lookups, RMS and L2 normalisations, GELU, softmax,
rotary embeddings, residual additions and the optimizer update. Each of
these is linear in the number of tokens times a layer width, so it is at
most about `1 / min(M, head_dim)` of the matrix-product work.
"""

import math

from keras_nexus.models.nexusformer.nexusformer_backbone import (
    default_ffn_expanded_dim,
)

TRAINING_TO_FORWARD_RATIO = 3


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )


def _resolve_config(config):
    """Return a dict of backbone sizes with every default filled in.

    Accepts a `NexusformerBackbone`, a `NexusformerCausalLM` (its backbone
    is used) or a dict such as `NexusformerBackbone.get_config()`.
    """
    if hasattr(config, "backbone") and hasattr(config.backbone, "get_config"):
        config = config.backbone
    if hasattr(config, "get_config"):
        config = config.get_config()
    if not isinstance(config, dict):
        raise ValueError(
            "`config` must be a NexusformerBackbone, a NexusformerCausalLM "
            "or a dict of backbone arguments. Received: "
            f"config={config!r}"
        )
    required = (
        "vocabulary_size",
        "num_layers",
        "num_query_heads",
        "num_key_value_heads",
        "hidden_dim",
    )
    missing = [key for key in required if key not in config]
    if missing:
        raise ValueError(
            f"`config` is missing the backbone arguments {missing}. Pass "
            "`backbone.get_config()` or a dict with at least "
            f"{list(required)}."
        )

    hidden_dim = config["hidden_dim"]
    num_query_heads = config["num_query_heads"]
    resolved = {key: config[key] for key in required}
    resolved["head_dim"] = config.get("head_dim") or (
        hidden_dim // num_query_heads
    )
    resolved["nexus_hidden_dim"] = (
        config.get("nexus_hidden_dim") or 2 * hidden_dim
    )
    resolved["nexus_expanded_dim"] = (
        config.get("nexus_expanded_dim") or 4 * hidden_dim
    )
    resolved["ffn_hidden_dim"] = config.get("ffn_hidden_dim") or 2 * hidden_dim
    resolved["ffn_expanded_dim"] = config.get(
        "ffn_expanded_dim"
    ) or default_ffn_expanded_dim(hidden_dim)
    for name, value in resolved.items():
        _check_positive_int(name, value)
    return resolved


def nexus_rank_dense_flops(
    num_tokens, input_dim, hidden_units, expanded_units, units
):
    """Return the forward FLOPs of one `NexusRankDense` layer.

    Args:
        num_tokens: Number of input vectors (batch size times sequence
            length).
        input_dim: Input width D_in.
        hidden_units: Hidden width M.
        expanded_units: Expanded width A.
        units: Output width D_out.
    """
    for name, value in (
        ("num_tokens", num_tokens),
        ("input_dim", input_dim),
        ("hidden_units", hidden_units),
        ("expanded_units", expanded_units),
        ("units", units),
    ):
        _check_positive_int(name, value)
    weights = (
        input_dim * hidden_units
        + hidden_units * expanded_units
        + expanded_units * units
    )
    return 2 * num_tokens * weights


def forward_flops_breakdown(config, sequence_length, batch_size=1):
    """Count the forward FLOPs of a Nexusformer causal LM, by component.

    Args:
        config: A `NexusformerBackbone`, a `NexusformerCausalLM` or a dict
            of backbone arguments (unset widths take the backbone's
            defaults).
        sequence_length: Tokens per sequence, T.
        batch_size: Number of sequences.

    Returns:
        A dict of integers: `"attention_projections"` (query, key, value
        and output Nexus-Rank layers), `"attention_scores"` (scores and
        weighted values), `"feedforward"`, `"head"` and `"total"`.
    """
    _check_positive_int("sequence_length", sequence_length)
    _check_positive_int("batch_size", batch_size)
    sizes = _resolve_config(config)
    tokens = batch_size * sequence_length
    hidden_dim = sizes["hidden_dim"]
    query_width = sizes["num_query_heads"] * sizes["head_dim"]
    key_value_width = sizes["num_key_value_heads"] * sizes["head_dim"]

    def attention_projection(input_dim, units):
        return nexus_rank_dense_flops(
            tokens,
            input_dim,
            sizes["nexus_hidden_dim"],
            sizes["nexus_expanded_dim"],
            units,
        )

    projections_per_layer = (
        attention_projection(hidden_dim, query_width)
        + 2 * attention_projection(hidden_dim, key_value_width)
        + attention_projection(query_width, hidden_dim)
    )
    # Scores (T x T per head) and the weighted sum of values, full matrices.
    scores_per_layer = 2 * (
        2 * batch_size * sequence_length**2 * query_width
    )
    feedforward_per_layer = nexus_rank_dense_flops(
        tokens,
        hidden_dim,
        sizes["ffn_hidden_dim"],
        sizes["ffn_expanded_dim"],
        hidden_dim,
    )
    num_layers = sizes["num_layers"]
    breakdown = {
        "attention_projections": num_layers * projections_per_layer,
        "attention_scores": num_layers * scores_per_layer,
        "feedforward": num_layers * feedforward_per_layer,
        "head": 2 * tokens * hidden_dim * sizes["vocabulary_size"],
    }
    breakdown["total"] = sum(breakdown.values())
    return breakdown


def forward_flops(config, sequence_length, batch_size=1):
    """Return the forward-pass FLOPs of a Nexusformer causal LM.

    See `forward_flops_breakdown` for the arguments and the module
    docstring for what is counted.
    """
    return forward_flops_breakdown(config, sequence_length, batch_size)[
        "total"
    ]


def training_flops(config, sequence_length, batch_size=1):
    """Return the FLOPs of one training step: 3 times the forward pass.

    Args:
        config: A `NexusformerBackbone`, a `NexusformerCausalLM` or a dict
            of backbone arguments.
        sequence_length: Tokens per sequence, T.
        batch_size: Sequences per step.
    """
    return TRAINING_TO_FORWARD_RATIO * forward_flops(
        config, sequence_length, batch_size
    )


def training_flops_per_token(config, sequence_length):
    """Return the training FLOPs per token at a given sequence length."""
    flops = training_flops(config, sequence_length, batch_size=1)
    return flops / sequence_length


def model_flops_utilization(flops_per_second, peak_flops_per_second):
    """Return achieved model FLOP/s as a fraction of a peak FLOP/s.

    Raises:
        ValueError: if either rate is not a positive finite number.
    """
    for name, value in (
        ("flops_per_second", flops_per_second),
        ("peak_flops_per_second", peak_flops_per_second),
    ):
        if not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise ValueError(
                f"`{name}` must be a positive finite number. Received: "
                f"{name}={value!r}"
            )
        if value <= 0:
            raise ValueError(
                f"`{name}` must be a positive finite number. Received: "
                f"{name}={value!r}"
            )
    return flops_per_second / peak_flops_per_second
