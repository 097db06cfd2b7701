"""One Nexusformer decoder block: attention and feed-forward, pre-norm."""

import math

import keras
from keras import ops
from keras_hub.src.layers.modeling.transformer_layer_utils import (
    compute_causal_mask,
)

from keras_nexus.layers.nexus_attention import NexusAttention
from keras_nexus.layers.nexus_rank_dense import NexusRankDense
from keras_nexus.layers.rms_normalization import NexusRMSNormalization


@keras.saving.register_keras_serializable(package="keras_nexus")
class NexusformerDecoder(keras.layers.Layer):
    """A pre-RMSNorm decoder block with Nexus-Rank attention and feed-forward.

    ```
    x = x + dropout(attention(rms_norm(x)))
    x = x + dropout(feedforward(rms_norm(x)))
    ```

    The feed-forward network is a single `NexusRankDense` layer from
    `hidden_dim` back to `hidden_dim`, through its own hidden and expanded
    widths. Its nonlinearity comes from the two Nexus-Rank activations, so
    no separate up and down projection is needed.

    Args:
        num_query_heads: Number of query heads.
        num_key_value_heads: Number of key/value heads, dividing
            `num_query_heads`.
        head_dim: Width of each attention head.
        nexus_hidden_dim: Hidden width M of the attention projections.
        nexus_expanded_dim: Expanded width A of the attention projections.
        ffn_hidden_dim: Hidden width M of the feed-forward layer.
        ffn_expanded_dim: Expanded width A of the feed-forward layer.
        rope_max_wavelength: Maximum wavelength of the rotary embedding.
        layer_norm_epsilon: Epsilon of both RMS normalisations.
        dropout: Dropout rate on attention probabilities and on both
            residual branches.
        nexus_epsilon: Epsilon of every Nexus-Rank normalisation.
        norm_scales: Optional dict of Nexus-Rank scales by projection name
            (`"query"`, `"key"`, `"value"`, `"attention_output"`,
            `"feedforward"`). Missing names resolve to the square root of
            the projection's output width.
        kernel_initializer: Initializer of every kernel.
        **kwargs: Base layer arguments such as `name` and `dtype`.
    """

    def __init__(
        self,
        num_query_heads,
        num_key_value_heads,
        head_dim,
        nexus_hidden_dim,
        nexus_expanded_dim,
        ffn_hidden_dim,
        ffn_expanded_dim,
        rope_max_wavelength=10000,
        layer_norm_epsilon=1e-6,
        dropout=0.0,
        nexus_epsilon=1e-5,
        norm_scales=None,
        kernel_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if kernel_initializer is None:
            kernel_initializer = keras.initializers.RandomNormal(stddev=0.02)
        self.num_query_heads = num_query_heads
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim
        self.nexus_hidden_dim = nexus_hidden_dim
        self.nexus_expanded_dim = nexus_expanded_dim
        self.ffn_hidden_dim = ffn_hidden_dim
        self.ffn_expanded_dim = ffn_expanded_dim
        self.rope_max_wavelength = rope_max_wavelength
        self.layer_norm_epsilon = layer_norm_epsilon
        self.dropout = dropout
        self.nexus_epsilon = nexus_epsilon
        self.norm_scales = dict(norm_scales or {})
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _initializer(self):
        # A fresh instance per weight, so seeded initializers do not repeat.
        return keras.initializers.get(
            keras.initializers.serialize(self.kernel_initializer)
        )

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        attention_scales = {
            name: scale
            for name, scale in self.norm_scales.items()
            if name != "feedforward"
        }
        self.norm_scales.setdefault("feedforward", math.sqrt(hidden_dim))

        self.self_attention_layernorm = NexusRMSNormalization(
            epsilon=self.layer_norm_epsilon,
            dtype=self.dtype_policy,
            name="self_attention_layernorm",
        )
        self.self_attention_layernorm.build(input_shape)
        self.self_attention = NexusAttention(
            num_query_heads=self.num_query_heads,
            num_key_value_heads=self.num_key_value_heads,
            head_dim=self.head_dim,
            hidden_units=self.nexus_hidden_dim,
            expanded_units=self.nexus_expanded_dim,
            rope_max_wavelength=self.rope_max_wavelength,
            dropout=self.dropout,
            nexus_epsilon=self.nexus_epsilon,
            norm_scales=attention_scales,
            kernel_initializer=self._initializer(),
            dtype=self.dtype_policy,
            name="self_attention",
        )
        self.self_attention.build(input_shape)
        self.norm_scales.update(self.self_attention.norm_scales)

        self.feedforward_layernorm = NexusRMSNormalization(
            epsilon=self.layer_norm_epsilon,
            dtype=self.dtype_policy,
            name="feedforward_layernorm",
        )
        self.feedforward_layernorm.build(input_shape)
        self.feedforward = NexusRankDense(
            hidden_dim,
            hidden_units=self.ffn_hidden_dim,
            expanded_units=self.ffn_expanded_dim,
            epsilon=self.nexus_epsilon,
            norm_scale=self.norm_scales["feedforward"],
            kernel_initializer=self._initializer(),
            dtype=self.dtype_policy,
            name="feedforward",
        )
        self.feedforward.build(input_shape)

        self.residual_dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="residual_dropout"
        )
        self.built = True

    def _attention_mask(self, x, padding_mask, cache, cache_update_index):
        batch_size = ops.shape(x)[0]
        query_length = ops.shape(x)[1]
        key_length = query_length if cache is None else ops.shape(cache)[2]
        start = 0 if cache_update_index is None else cache_update_index

        # (batch, query, key): True where a query may read a key.
        mask = compute_causal_mask(batch_size, key_length, query_length, start)
        if padding_mask is None:
            return mask

        # Every query may also read its own key, even a padding token.
        # Without this, a left-padded query has no readable key at all, its
        # softmax row becomes uniform over every key, future ones included,
        # and its output depends on later tokens. Real tokens never read a
        # padding key either way.
        query_positions = ops.arange(query_length) + start
        key_positions = ops.arange(key_length)
        # (query, key)
        is_own_key = ops.equal(
            ops.expand_dims(query_positions, axis=1),
            ops.expand_dims(key_positions, axis=0),
        )
        # (batch, 1, key)
        key_mask = ops.expand_dims(ops.cast(padding_mask, "bool"), axis=1)
        readable = ops.logical_or(key_mask, ops.expand_dims(is_own_key, 0))
        return ops.logical_and(mask, readable)

    def call(
        self,
        x,
        padding_mask=None,
        cache=None,
        cache_update_index=None,
        training=None,
    ):
        """Apply the block.

        `padding_mask` marks the keys that may be read, with shape
        `(batch, key_length)`: the sequence length without a cache, the
        cache length with one. A query also always reads its own key, so a
        padding query depends only on itself and earlier real tokens.
        Returns `x`, or `(x, cache)` with a cache.
        """
        mask = self._attention_mask(x, padding_mask, cache, cache_update_index)

        residual = x
        x = self.self_attention_layernorm(x)
        x = self.self_attention(
            x,
            attention_mask=mask,
            cache=cache,
            cache_update_index=cache_update_index,
            training=training,
        )
        if cache is not None:
            x, cache = x
        x = residual + self.residual_dropout(x, training=training)

        residual = x
        x = self.feedforward_layernorm(x)
        x = self.feedforward(x)
        x = residual + self.residual_dropout(x, training=training)

        if cache is not None:
            return x, cache
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_query_heads": self.num_query_heads,
                "num_key_value_heads": self.num_key_value_heads,
                "head_dim": self.head_dim,
                "nexus_hidden_dim": self.nexus_hidden_dim,
                "nexus_expanded_dim": self.nexus_expanded_dim,
                "ffn_hidden_dim": self.ffn_hidden_dim,
                "ffn_expanded_dim": self.ffn_expanded_dim,
                "rope_max_wavelength": self.rope_max_wavelength,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "dropout": self.dropout,
                "nexus_epsilon": self.nexus_epsilon,
                "norm_scales": dict(self.norm_scales),
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
