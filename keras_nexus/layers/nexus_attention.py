"""Causal grouped-query self-attention with Nexus-Rank projections."""

import math

import keras
from keras import ops
from keras_hub.layers import RotaryEmbedding
from keras_hub.src.layers.modeling.transformer_layer_utils import (
    compute_causal_mask,
)

from keras_nexus.layers.nexus_rank_dense import NexusRankDense
from keras_nexus.layers.precision import statistics_dtype

# Replaces the scores of masked key positions. A finite value (not -inf)
# keeps a query whose keys are all masked (possible with a caller's own
# mask) from producing NaN: its softmax row becomes uniform instead.
# `NexusformerDecoder` always lets a query read its own key, so its masks
# never mask a whole row.
MASKED_SCORE = -1e9

PROJECTION_NAMES = ("query", "key", "value", "attention_output")


@keras.saving.register_keras_serializable(package="keras_nexus")
class NexusAttention(keras.layers.Layer):
    """Causal multi-head self-attention whose projections are Nexus-Rank layers.

    The query, key, value and output projections are `NexusRankDense` layers
    that share the attention widths (`hidden_units`, `expanded_units`).
    Rotary position embeddings cover the whole head dimension, scores are
    scaled by `1 / sqrt(head_dim)` and the softmax runs in float32.

    Grouped-query attention: `num_key_value_heads` must divide
    `num_query_heads`, and query head `i` reads key/value head
    `i // (num_query_heads // num_key_value_heads)`.

    Args:
        num_query_heads: Positive integer, number of query heads.
        num_key_value_heads: Positive integer dividing `num_query_heads`.
        head_dim: Positive even integer, width of each head.
        hidden_units: Hidden width M of every projection.
        expanded_units: Expanded width A of every projection.
        rope_max_wavelength: Maximum wavelength of the rotary embedding.
            Defaults to 10000.
        dropout: Dropout rate on the attention probabilities.
        nexus_epsilon: `epsilon` of the Nexus-Rank normalisations.
        norm_scales: Optional dict from projection name (`"query"`,
            `"key"`, `"value"`, `"attention_output"`) to the `norm_scale`
            of that projection. A missing name resolves to the square root
            of the projection's output width when the layer is built. A
            grown layer passes the scales of the layer it came from, which
            keeps growth exact.
        kernel_initializer: Initializer of every projection kernel.
        **kwargs: Base layer arguments such as `name` and `dtype`.

    Call arguments:
        hidden_states: Tensor of shape `(batch, sequence, hidden_dim)`.
        attention_mask: Optional boolean tensor `(batch, sequence,
            key_length)`, `True` where a query may read a key. A given mask
            replaces the causal mask, so the caller combines the causal and
            padding masks. `None` (the default) applies the causal mask
            alone.
        cache: Optional key/value cache of shape `(batch, 2, max_length,
            num_key_value_heads, head_dim)`.
        cache_update_index: Integer position of `hidden_states[:, 0]` in
            the cache. Rotary positions start there.
        training: Python boolean, whether dropout is active.

    Returns:
        The attention output `(batch, sequence, hidden_dim)`, and the
        updated cache when `cache` is given.
    """

    def __init__(
        self,
        num_query_heads,
        num_key_value_heads,
        head_dim,
        hidden_units,
        expanded_units,
        rope_max_wavelength=10000,
        dropout=0.0,
        nexus_epsilon=1e-5,
        kernel_initializer=None,
        norm_scales=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("num_query_heads", num_query_heads),
            ("num_key_value_heads", num_key_value_heads),
            ("head_dim", head_dim),
            ("hidden_units", hidden_units),
            ("expanded_units", expanded_units),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(
                    f"`{name}` must be a positive integer. "
                    f"Received: {name}={value!r}"
                )
            if value <= 0:
                raise ValueError(
                    f"`{name}` must be a positive integer. "
                    f"Received: {name}={value!r}"
                )
        if num_query_heads % num_key_value_heads:
            raise ValueError(
                "`num_key_value_heads` must divide `num_query_heads`. "
                f"Received: num_query_heads={num_query_heads}, "
                f"num_key_value_heads={num_key_value_heads}"
            )
        if head_dim % 2:
            raise ValueError(
                "`head_dim` must be even because rotary embeddings rotate "
                f"pairs of features. Received: head_dim={head_dim}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"`dropout` must be in [0, 1). Received: dropout={dropout!r}"
            )
        if kernel_initializer is None:
            kernel_initializer = keras.initializers.RandomNormal(stddev=0.02)

        self.num_query_heads = num_query_heads
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim
        self.hidden_units = hidden_units
        self.expanded_units = expanded_units
        self.rope_max_wavelength = rope_max_wavelength
        self.dropout = dropout
        self.nexus_epsilon = nexus_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.norm_scales = dict(norm_scales or {})
        unknown = set(self.norm_scales) - set(PROJECTION_NAMES)
        if unknown:
            raise ValueError(
                f"`norm_scales` keys must be among {PROJECTION_NAMES}. "
                f"Received unknown keys: {sorted(unknown)}"
            )

    def _nexus(self, units, name):
        # Fix the scale on first build so that get_config records it.
        self.norm_scales.setdefault(name, math.sqrt(units))
        return NexusRankDense(
            units,
            hidden_units=self.hidden_units,
            expanded_units=self.expanded_units,
            epsilon=self.nexus_epsilon,
            norm_scale=self.norm_scales[name],
            kernel_initializer=keras.initializers.get(
                keras.initializers.serialize(self.kernel_initializer)
            ),
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        query_width = self.num_query_heads * self.head_dim
        key_value_width = self.num_key_value_heads * self.head_dim

        self.query_dense = self._nexus(query_width, "query")
        self.query_dense.build(input_shape)
        self.key_dense = self._nexus(key_value_width, "key")
        self.key_dense.build(input_shape)
        self.value_dense = self._nexus(key_value_width, "value")
        self.value_dense.build(input_shape)
        self.output_dense = self._nexus(hidden_dim, "attention_output")
        self.output_dense.build(tuple(input_shape[:-1]) + (query_width,))

        self.rotary_embedding = RotaryEmbedding(
            max_wavelength=self.rope_max_wavelength,
            dtype=self.dtype_policy,
            name="rotary_embedding",
        )
        self.dropout_layer = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="attention_dropout"
        )
        self.built = True

    def _split_heads(self, x, num_heads):
        # (batch, sequence, heads * head_dim) -> (batch, sequence, heads,
        # head_dim)
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1], num_heads, self.head_dim))

    def call(
        self,
        hidden_states,
        attention_mask=None,
        cache=None,
        cache_update_index=None,
        training=None,
    ):
        start_index = 0 if cache_update_index is None else cache_update_index

        query = self._split_heads(
            self.query_dense(hidden_states), self.num_query_heads
        )
        query = self.rotary_embedding(query, start_index=start_index)
        key = self._split_heads(
            self.key_dense(hidden_states), self.num_key_value_heads
        )
        key = self.rotary_embedding(key, start_index=start_index)
        value = self._split_heads(
            self.value_dense(hidden_states), self.num_key_value_heads
        )

        if cache is not None:
            if cache_update_index is None:
                raise ValueError(
                    "`cache_update_index` is required when `cache` is given."
                )
            start = [0, cache_update_index, 0, 0]
            key = ops.slice_update(cache[:, 0, ...], start, key)
            value = ops.slice_update(cache[:, 1, ...], start, value)
            cache = ops.stack((key, value), axis=1)

        if attention_mask is None:
            # (batch, query, key): query i reads keys 0 ... start_index + i.
            attention_mask = compute_causal_mask(
                ops.shape(query)[0],
                ops.shape(key)[1],
                ops.shape(query)[1],
                start_index,
            )

        outputs = self._attend(query, key, value, attention_mask, training)
        outputs = self.output_dense(outputs)
        if cache is not None:
            return outputs, cache
        return outputs

    def _attend(self, query, key, value, attention_mask, training):
        # Letters: b batch, q query position, k key position, h head,
        # d head feature.
        group = self.num_query_heads // self.num_key_value_heads
        if group > 1:
            # Query head i reads key/value head i // group.
            key = ops.repeat(key, group, axis=2)
            value = ops.repeat(value, group, axis=2)

        dtype = statistics_dtype(self.compute_dtype)
        scores = ops.einsum(
            "bqhd,bkhd->bhqk", ops.cast(query, dtype), ops.cast(key, dtype)
        )
        scores = scores * (1.0 / math.sqrt(self.head_dim))
        mask = ops.expand_dims(ops.cast(attention_mask, "bool"), axis=1)
        scores = ops.where(mask, scores, MASKED_SCORE)
        probabilities = ops.softmax(scores, axis=-1)
        probabilities = self.dropout_layer(probabilities, training=training)

        outputs = ops.einsum(
            "bhqk,bkhd->bqhd",
            ops.cast(probabilities, self.compute_dtype),
            value,
        )
        # (batch, query, heads, head_dim) -> (batch, query, heads * head_dim)
        shape = ops.shape(outputs)
        return ops.reshape(
            outputs, (shape[0], shape[1], self.num_query_heads * self.head_dim)
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_query_heads": self.num_query_heads,
                "num_key_value_heads": self.num_key_value_heads,
                "head_dim": self.head_dim,
                "hidden_units": self.hidden_units,
                "expanded_units": self.expanded_units,
                "rope_max_wavelength": self.rope_max_wavelength,
                "dropout": self.dropout,
                "nexus_epsilon": self.nexus_epsilon,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "norm_scales": dict(self.norm_scales),
            }
        )
        return config
