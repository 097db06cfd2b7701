"""The Nexusformer decoder-only backbone."""

import math

import keras
from keras_hub.layers import ReversibleEmbedding
from keras_hub.models import Backbone

from keras_nexus.layers.nexusformer_decoder import NexusformerDecoder
from keras_nexus.layers.rms_normalization import NexusRMSNormalization
from keras_nexus.models.nexusformer import nexusformer_layout


def _round_up(value, multiple):
    return int(math.ceil(value / multiple) * multiple)


def default_ffn_expanded_dim(hidden_dim):
    """Return 8 * hidden_dim / 3 rounded up to a multiple of 256."""
    return _round_up(8 * hidden_dim / 3, 256)


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )


def _check_attention_shape(num_query_heads, num_key_value_heads, head_dim):
    if num_query_heads % num_key_value_heads:
        raise ValueError(
            "`num_key_value_heads` must divide `num_query_heads`, because "
            "each key/value head serves an equal group of query heads. "
            f"Received: num_key_value_heads={num_key_value_heads}, "
            f"num_query_heads={num_query_heads}"
        )
    if head_dim % 2:
        raise ValueError(
            "`head_dim` must be even, because rotary embeddings rotate pairs "
            f"of features. Received: head_dim={head_dim}. Pass an even "
            "`head_dim`, or a `hidden_dim` and `num_query_heads` whose "
            "quotient is even."
        )


def _check_float_arguments(
    rope_max_wavelength, layer_norm_epsilon, dropout, nexus_epsilon
):
    def is_number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    if not is_number(rope_max_wavelength) or rope_max_wavelength <= 0:
        raise ValueError(
            "`rope_max_wavelength` must be a positive number. Received: "
            f"rope_max_wavelength={rope_max_wavelength!r}"
        )
    if not is_number(layer_norm_epsilon) or layer_norm_epsilon <= 0:
        raise ValueError(
            "`layer_norm_epsilon` must be a positive float. Received: "
            f"layer_norm_epsilon={layer_norm_epsilon!r}"
        )
    if not is_number(dropout) or not 0.0 <= dropout < 1.0:
        raise ValueError(
            f"`dropout` must be a float in [0, 1). Received: dropout={dropout!r}"
        )
    if not is_number(nexus_epsilon) or nexus_epsilon < 0:
        raise ValueError(
            "`nexus_epsilon` must be a non-negative float. Received: "
            f"nexus_epsilon={nexus_epsilon!r}"
        )


@keras.saving.register_keras_serializable(package="keras_nexus")
class NexusformerBackbone(Backbone):
    """Nexusformer decoder network, without a language-model head.

    A stack of pre-RMSNorm decoder blocks in which the query, key, value and
    output projections and the feed-forward network are `NexusRankDense`
    layers. Attention is causal, grouped-query, with rotary position
    embeddings over the full head dimension. A final RMS normalisation
    follows the last block. Every kernel and the token embedding start from
    `RandomNormal(stddev=0.02)`.

    Sub-layers are named so that weights can be found by path:
    `token_embedding`, `transformer_layer_0` ... `transformer_layer_{n-1}`
    and `sequence_output_layernorm`.

    Args:
        vocabulary_size: Number of tokens.
        num_layers: Number of decoder blocks.
        num_query_heads: Number of query heads.
        num_key_value_heads: Number of key/value heads; must divide
            `num_query_heads`. Equal to `num_query_heads` for plain
            multi-head attention.
        hidden_dim: Width D of the residual stream.
        head_dim: Even width of each head. `None` (the default) means
            `hidden_dim // num_query_heads`.
        nexus_hidden_dim: Hidden width M of the attention projections.
            `None` means `2 * hidden_dim`.
        nexus_expanded_dim: Expanded width A of the attention projections.
            `None` means `4 * hidden_dim`.
        ffn_hidden_dim: Hidden width M of the feed-forward layer. `None`
            means `2 * hidden_dim`.
        ffn_expanded_dim: Expanded width A of the feed-forward layer. `None`
            means `8 * hidden_dim / 3` rounded up to a multiple of 256, as
            in the Nexusformer reference code.
        rope_max_wavelength: Maximum wavelength of the rotary embedding.
        layer_norm_epsilon: Epsilon of every RMS normalisation.
        dropout: Dropout rate in every block.
        tie_word_embeddings: Whether the language-model head reuses the
            token embedding. Defaults to `False`.
        nexus_epsilon: Epsilon added to each Nexus-Rank L2 norm.
        nexus_norm_scales: Optional dict of the Nexus-Rank scales by
            projection (`"query"`, `"key"`, `"value"`, `"attention_output"`,
            `"feedforward"`). Missing entries resolve to the square root of
            that projection's output width. The resolved dict is part of the
            config, and `grow_model` carries it over unchanged, which keeps
            growth exact.
        dtype: dtype or `keras.DTypePolicy` of the whole model, for example
            `"mixed_bfloat16"`.

    Examples:

    ```python
    import numpy as np
    from keras_nexus.models import NexusformerBackbone

    backbone = NexusformerBackbone(
        vocabulary_size=256,
        num_layers=2,
        num_query_heads=4,
        num_key_value_heads=2,
        hidden_dim=64,
        nexus_hidden_dim=96,
        nexus_expanded_dim=128,
        ffn_hidden_dim=128,
        ffn_expanded_dim=256,
    )
    inputs = {
        "token_ids": np.array([[1, 72, 105, 33, 0]]),
        "padding_mask": np.array([[1, 1, 1, 1, 0]]),
    }
    backbone(inputs).shape  # (1, 5, 64)
    ```
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_query_heads,
        num_key_value_heads,
        hidden_dim,
        head_dim=None,
        nexus_hidden_dim=None,
        nexus_expanded_dim=None,
        ffn_hidden_dim=None,
        ffn_expanded_dim=None,
        rope_max_wavelength=10000,
        layer_norm_epsilon=1e-6,
        dropout=0.0,
        tie_word_embeddings=False,
        nexus_epsilon=1e-5,
        nexus_norm_scales=None,
        dtype=None,
        **kwargs,
    ):
        for name, value in (
            ("vocabulary_size", vocabulary_size),
            ("num_layers", num_layers),
            ("num_query_heads", num_query_heads),
            ("num_key_value_heads", num_key_value_heads),
            ("hidden_dim", hidden_dim),
        ):
            _check_positive_int(name, value)
        if head_dim is None:
            if hidden_dim % num_query_heads:
                raise ValueError(
                    "`hidden_dim` must be divisible by `num_query_heads` "
                    "when `head_dim` is None. Received: "
                    f"hidden_dim={hidden_dim}, "
                    f"num_query_heads={num_query_heads}. Pass `head_dim` "
                    "explicitly or choose divisible sizes."
                )
            head_dim = hidden_dim // num_query_heads
        # Compare with None, not truthiness: an explicit 0 must be rejected
        # below instead of silently becoming the default width.
        if nexus_hidden_dim is None:
            nexus_hidden_dim = 2 * hidden_dim
        if nexus_expanded_dim is None:
            nexus_expanded_dim = 4 * hidden_dim
        if ffn_hidden_dim is None:
            ffn_hidden_dim = 2 * hidden_dim
        if ffn_expanded_dim is None:
            ffn_expanded_dim = default_ffn_expanded_dim(hidden_dim)
        for name, value in (
            ("head_dim", head_dim),
            ("nexus_hidden_dim", nexus_hidden_dim),
            ("nexus_expanded_dim", nexus_expanded_dim),
            ("ffn_hidden_dim", ffn_hidden_dim),
            ("ffn_expanded_dim", ffn_expanded_dim),
        ):
            _check_positive_int(name, value)
        _check_attention_shape(num_query_heads, num_key_value_heads, head_dim)
        _check_float_arguments(
            rope_max_wavelength, layer_norm_epsilon, dropout, nexus_epsilon
        )

        default_scales = {
            "query": math.sqrt(num_query_heads * head_dim),
            "key": math.sqrt(num_key_value_heads * head_dim),
            "value": math.sqrt(num_key_value_heads * head_dim),
            "attention_output": math.sqrt(hidden_dim),
            "feedforward": math.sqrt(hidden_dim),
        }
        unknown = set(nexus_norm_scales or {}) - set(default_scales)
        if unknown:
            raise ValueError(
                f"`nexus_norm_scales` keys must be among "
                f"{sorted(default_scales)}. Received unknown keys "
                f"{sorted(unknown)} in nexus_norm_scales={nexus_norm_scales!r}"
            )
        norm_scales = {**default_scales, **(nexus_norm_scales or {})}

        # === Layers ===
        initializer = keras.initializers.RandomNormal(stddev=0.02)
        self.token_embedding = ReversibleEmbedding(
            input_dim=vocabulary_size,
            output_dim=hidden_dim,
            tie_weights=tie_word_embeddings,
            embeddings_initializer=initializer,
            dtype=dtype,
            name="token_embedding",
        )
        self.transformer_layers = []
        for i in range(num_layers):
            layer = NexusformerDecoder(
                num_query_heads=num_query_heads,
                num_key_value_heads=num_key_value_heads,
                head_dim=head_dim,
                nexus_hidden_dim=nexus_hidden_dim,
                nexus_expanded_dim=nexus_expanded_dim,
                ffn_hidden_dim=ffn_hidden_dim,
                ffn_expanded_dim=ffn_expanded_dim,
                rope_max_wavelength=rope_max_wavelength,
                layer_norm_epsilon=layer_norm_epsilon,
                dropout=dropout,
                nexus_epsilon=nexus_epsilon,
                norm_scales=norm_scales,
                kernel_initializer=initializer,
                dtype=dtype,
                name=f"transformer_layer_{i}",
            )
            self.transformer_layers.append(layer)
        self.layer_norm = NexusRMSNormalization(
            epsilon=layer_norm_epsilon,
            dtype=dtype,
            name="sequence_output_layernorm",
        )

        # === Functional model ===
        token_id_input = keras.Input(
            shape=(None,), dtype="int32", name="token_ids"
        )
        padding_mask_input = keras.Input(
            shape=(None,), dtype="int32", name="padding_mask"
        )
        x = self.token_embedding(token_id_input)
        for transformer_layer in self.transformer_layers:
            x = transformer_layer(x, padding_mask=padding_mask_input)
        sequence_output = self.layer_norm(x)
        super().__init__(
            inputs={
                "token_ids": token_id_input,
                "padding_mask": padding_mask_input,
            },
            outputs=sequence_output,
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_query_heads = num_query_heads
        self.num_key_value_heads = num_key_value_heads
        self.hidden_dim = hidden_dim
        self.head_dim = head_dim
        self.nexus_hidden_dim = nexus_hidden_dim
        self.nexus_expanded_dim = nexus_expanded_dim
        self.ffn_hidden_dim = ffn_hidden_dim
        self.ffn_expanded_dim = ffn_expanded_dim
        self.rope_max_wavelength = rope_max_wavelength
        self.layer_norm_epsilon = layer_norm_epsilon
        self.dropout = dropout
        self.tie_word_embeddings = tie_word_embeddings
        self.nexus_epsilon = nexus_epsilon
        self.nexus_norm_scales = norm_scales

    @staticmethod
    def get_layout_map(
        device_mesh,
        model_parallel_dim_name="model",
        data_parallel_dim_name="batch",
    ):
        """Return a `keras.distribution.LayoutMap` for model parallelism.

        The token embedding, the language-model head and the hidden,
        expanded and output kernels of every `NexusRankDense` layer are
        split along `model_parallel_dim_name` and replicated along
        `data_parallel_dim_name`. The vocabulary size and the hidden and
        expanded widths of the attention and feed-forward layers must be
        divisible by the size of the model axis. The number of heads need
        not be. `keras_nexus.models.nexusformer.nexusformer_layout`
        documents which axis of each kernel is split and why.

        Args:
            device_mesh: A `keras.distribution.DeviceMesh`.
            model_parallel_dim_name: Mesh axis that weights are split along.
            data_parallel_dim_name: Mesh axis that the batch is split along.

        Returns:
            A `keras.distribution.LayoutMap`.

        Example:

        ```python
        import keras

        devices = keras.distribution.list_devices()  # 8 devices
        mesh = keras.distribution.DeviceMesh(
            shape=(2, 4), axis_names=("batch", "model"), devices=devices
        )
        layout_map = NexusformerBackbone.get_layout_map(mesh)
        distribution = keras.distribution.ModelParallel(
            layout_map=layout_map, batch_dim_name="batch"
        )
        with distribution.scope():
            backbone = NexusformerBackbone(
                vocabulary_size=256,
                num_layers=2,
                num_query_heads=4,
                num_key_value_heads=2,
                hidden_dim=64,
            )
        ```
        """
        return nexusformer_layout.build_layout_map(
            device_mesh,
            model_parallel_dim_name=model_parallel_dim_name,
            data_parallel_dim_name=data_parallel_dim_name,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "num_layers": self.num_layers,
                "num_query_heads": self.num_query_heads,
                "num_key_value_heads": self.num_key_value_heads,
                "hidden_dim": self.hidden_dim,
                "head_dim": self.head_dim,
                "nexus_hidden_dim": self.nexus_hidden_dim,
                "nexus_expanded_dim": self.nexus_expanded_dim,
                "ffn_hidden_dim": self.ffn_hidden_dim,
                "ffn_expanded_dim": self.ffn_expanded_dim,
                "rope_max_wavelength": self.rope_max_wavelength,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "dropout": self.dropout,
                "tie_word_embeddings": self.tie_word_embeddings,
                "nexus_epsilon": self.nexus_epsilon,
                "nexus_norm_scales": dict(self.nexus_norm_scales),
            }
        )
        return config
