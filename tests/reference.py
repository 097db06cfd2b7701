"""Independent float64 numpy references of the Nexusformer equations."""

import math

import numpy as np


def gelu(x):
    """Exact (erf) GELU in float64."""
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def nexus_rank_dense(x, hidden, expanded, output, scale, epsilon=1e-5):
    """Return the three-stage Nexus-Rank mapping of `x`, in float64."""
    x = np.asarray(x, np.float64)
    stages = []
    for kernel in (hidden, expanded):
        h = x @ np.asarray(kernel, np.float64)
        norm = np.sqrt(np.sum(h * h, axis=-1, keepdims=True))
        x = gelu(h / (norm + epsilon) * scale)
        stages.append(x)
    return x @ np.asarray(output, np.float64)


def rms_norm(x, scale, epsilon=1e-6):
    """Return `x / sqrt(mean(x ** 2) + epsilon) * scale`, in float64."""
    x = np.asarray(x, np.float64)
    mean_square = np.mean(x * x, axis=-1, keepdims=True)
    return x / np.sqrt(mean_square + epsilon) * np.asarray(scale, np.float64)


def rotary(x, positions, max_wavelength=10000):
    """Rotate `x` of shape (batch, sequence, heads, head_dim) by position.

    Split-halves convention: feature `i` of the first half pairs with
    feature `i + head_dim / 2` of the second half, and the pair turns by
    the angle `position * max_wavelength ** (-2 i / head_dim)`.
    """
    x = np.asarray(x, np.float64)
    half = x.shape[-1] // 2
    inverse_frequency = max_wavelength ** (-np.arange(half) * 2.0 / (2 * half))
    # (sequence, half) -> (1, sequence, 1, half)
    angles = np.outer(np.asarray(positions, np.float64), inverse_frequency)
    cos = np.cos(angles)[None, :, None, :]
    sin = np.sin(angles)[None, :, None, :]
    first, second = x[..., :half], x[..., half:]
    return np.concatenate(
        [first * cos - second * sin, second * cos + first * sin], axis=-1
    )


def causal_mask(query_length, key_length, start=0):
    """Return a (query, key) boolean mask: query i reads keys <= start + i."""
    query_positions = start + np.arange(query_length)[:, None]
    return np.arange(key_length)[None, :] <= query_positions


def nexus_attention(
    x,
    projections,
    num_query_heads,
    num_key_value_heads,
    mask=None,
    keys=None,
    values=None,
    start=0,
    max_wavelength=10000,
    epsilon=1e-5,
):
    """Return grouped-query Nexus-Rank self-attention of `x`, in float64.

    Args:
        x: (batch, sequence, hidden_dim) input.
        projections: dict from "query", "key", "value" and
            "attention_output" to `(hidden, expanded, output, scale)`, the
            three kernels and the norm scale of each Nexus-Rank layer.
        mask: optional (batch, sequence, key_length) boolean mask, True
            where a query may read a key. Defaults to the causal mask.
        keys, values: optional (batch, start, num_key_value_heads,
            head_dim) keys (after rotary) and values of earlier positions,
            as a cache stores them.
        start: position of `x[:, 0]`.

    Returns:
        `(outputs, keys, values)`: the (batch, sequence, hidden_dim) output
        and the keys and values of all positions so far.
    """
    x = np.asarray(x, np.float64)
    batch, length, _ = x.shape

    def project(name, inputs):
        hidden, expanded, output, scale = projections[name]
        return nexus_rank_dense(
            inputs, hidden, expanded, output, scale=scale, epsilon=epsilon
        )

    query = project("query", x)
    head_dim = query.shape[-1] // num_query_heads
    positions = np.arange(start, start + length)
    # (batch, sequence, heads, head_dim)
    query = rotary(
        query.reshape(batch, length, num_query_heads, head_dim),
        positions,
        max_wavelength,
    )
    new_keys = rotary(
        project("key", x).reshape(batch, length, num_key_value_heads, head_dim),
        positions,
        max_wavelength,
    )
    new_values = project("value", x).reshape(
        batch, length, num_key_value_heads, head_dim
    )
    if keys is not None:
        new_keys = np.concatenate([keys, new_keys], axis=1)
        new_values = np.concatenate([values, new_values], axis=1)
    key_length = new_keys.shape[1]
    if mask is None:
        mask = np.broadcast_to(
            causal_mask(length, key_length, start),
            (batch, length, key_length),
        )

    group = num_query_heads // num_key_value_heads
    outputs = np.zeros((batch, length, num_query_heads, head_dim))
    for head in range(num_query_heads):
        key_value_head = head // group
        # (batch, query, key)
        scores = np.einsum(
            "bqd,bkd->bqk",
            query[:, :, head],
            new_keys[:, :, key_value_head],
        ) / math.sqrt(head_dim)
        scores = np.where(mask, scores, -np.inf)
        scores = scores - scores.max(axis=-1, keepdims=True)
        weights = np.exp(scores)
        weights = weights / weights.sum(axis=-1, keepdims=True)
        outputs[:, :, head] = np.einsum(
            "bqk,bkd->bqd", weights, new_values[:, :, key_value_head]
        )

    outputs = outputs.reshape(batch, length, num_query_heads * head_dim)
    return project("attention_output", outputs), new_keys, new_values


def nexusformer_backbone(token_ids, padding_mask, weights, config):
    """Return the Nexusformer backbone output for `token_ids`, in float64.

    Args:
        token_ids: (batch, sequence) integer array.
        padding_mask: (batch, sequence) array, nonzero at real tokens.
        weights: dict from variable path (for example
            `"transformer_layer_0/self_attention/query/hidden_kernel"`) to
            numpy array.
        config: the backbone's `get_config()` dict.

    A query reads the keys at or before its position that are real tokens,
    and also always its own key, so a padding query still has one key.
    """
    token_ids = np.asarray(token_ids)
    length = token_ids.shape[1]
    x = np.asarray(weights["token_embedding/embeddings"], np.float64)[token_ids]
    readable = np.asarray(padding_mask, bool)[:, None, :] | np.eye(
        length, dtype=bool
    )
    mask = causal_mask(length, length)[None] & readable
    scales = config["nexus_norm_scales"]
    epsilon = config["layer_norm_epsilon"]

    for i in range(config["num_layers"]):
        prefix = f"transformer_layer_{i}/"

        def kernels(path, scale):
            return tuple(
                weights[f"{prefix}{path}/{stage}_kernel"]
                for stage in ("hidden", "expanded", "output")
            ) + (scale,)

        projections = {
            name: kernels(f"self_attention/{name}", scales[name])
            for name in ("query", "key", "value", "attention_output")
        }
        normed = rms_norm(
            x, weights[f"{prefix}self_attention_layernorm/scale"], epsilon
        )
        attention, _, _ = nexus_attention(
            normed,
            projections,
            config["num_query_heads"],
            config["num_key_value_heads"],
            mask=mask,
            max_wavelength=config["rope_max_wavelength"],
            epsilon=config["nexus_epsilon"],
        )
        x = x + attention

        normed = rms_norm(
            x, weights[f"{prefix}feedforward_layernorm/scale"], epsilon
        )
        x = x + nexus_rank_dense(
            normed,
            *kernels("feedforward", scales["feedforward"]),
            epsilon=config["nexus_epsilon"],
        )

    return rms_norm(x, weights["sequence_output_layernorm/scale"], epsilon)
