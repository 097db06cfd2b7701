"""A Tokenformer baseline for the benchmarks, written from its equations.

Tokenformer (Wang et al., 2024, "TokenFormer: Rethinking Transformer
Scaling with Tokenized Model Parameters", arXiv 2410.23168) replaces every
linear projection of a Transformer with token-parameter attention
("Pattention"): the input tokens are queries, and the keys and values are
`n` learnable parameter tokens. For an input `x` of width D_in:

    scores  = x @ K_P.T                                  # (..., n)
    weights = gelu(scores / ||scores||_2 * sqrt(n))      # L2 over the n axis
    y       = weights @ V_P                              # (..., D_out)

The "modified softmax" is an L2 normalisation of the scores scaled by
`sqrt(n)` followed by the exact GELU. This matches the `l2_norm_gelu` mode
of the authors' release (github.com/Haiyang-W/TokenFormer, file
`megatron/model/tokenformer.py`), which recomputes `sqrt(n)` from the
current number of parameter tokens.

Growth ("progressive model scaling") appends parameter tokens. New key
tokens start at zero, so their scores are 0 and `gelu(0) = 0`; a zero also
leaves `||scores||_2` unchanged. New value tokens are drawn from the value
initializer: if they were zero too, neither new keys nor new values would
ever receive a gradient. Because `sqrt(n)` grows with `n`, the old tokens'
normalised scores are multiplied by `sqrt(n_new / n_old)`. The grown model
is therefore close to the old one but not equal to it, and
`grow_tokenformer` measures the difference.

Block layout, following the authors' language-model configs: pre-norm
blocks with a non-parametric LayerNorm, causal multi-head softmax attention
whose query, key, value and output projections are Pattention layers, a
single Pattention layer as the feed-forward network, residual connections,
and a final LayerNorm with scale and bias. Simplifications here: rotary
embeddings over the full head dimension (the authors rotate 25% of it),
an untied output head, and `RandomNormal(0.02)` for keys and values.
"""

import math

import keras
import numpy as np
from keras import ops
from keras_hub.layers import RotaryEmbedding

# Squared norms below this floor are raised to it, so an all-zero score
# vector gives zero weights instead of NaN. The authors' code has no floor.
SQUARED_NORM_FLOOR = 1e-30
MASKED_SCORE = -1e9


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )


def _normal_initializer(seed=None):
    return keras.initializers.RandomNormal(stddev=0.02, seed=seed)


@keras.saving.register_keras_serializable(package="keras_nexus_benchmarks")
class Pattention(keras.layers.Layer):
    """Token-parameter attention, Tokenformer's replacement for `Dense`.

    Args:
        units: Output width D_out.
        num_param_tokens: Number of key/value parameter tokens, n.
        norm_scale: Scale applied after the L2 normalisation. `None` (the
            default) means `sqrt(num_param_tokens)`, recomputed for every
            new `n` as in the authors' code.
        key_initializer: Initializer of the key tokens `(n, D_in)`.
        value_initializer: Initializer of the value tokens `(n, D_out)`.
        **kwargs: Base layer arguments.
    """

    def __init__(
        self,
        units,
        num_param_tokens,
        norm_scale=None,
        key_initializer=None,
        value_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_positive_int("units", units)
        _check_positive_int("num_param_tokens", num_param_tokens)
        self.units = units
        self.num_param_tokens = num_param_tokens
        self.norm_scale = norm_scale
        self.key_initializer = keras.initializers.get(
            key_initializer or _normal_initializer()
        )
        self.value_initializer = keras.initializers.get(
            value_initializer or _normal_initializer()
        )

    def build(self, input_shape):
        self.key_tokens = self.add_weight(
            name="key_tokens",
            shape=(self.num_param_tokens, input_shape[-1]),
            initializer=self.key_initializer,
        )
        self.value_tokens = self.add_weight(
            name="value_tokens",
            shape=(self.num_param_tokens, self.units),
            initializer=self.value_initializer,
        )
        self.built = True

    def call(self, inputs):
        scale = self.norm_scale
        if scale is None:
            scale = math.sqrt(self.num_param_tokens)

        # (..., D_in) -> (..., n)
        scores = ops.matmul(inputs, ops.transpose(self.key_tokens))
        squared_norm = ops.sum(ops.square(scores), axis=-1, keepdims=True)
        norm = ops.sqrt(ops.maximum(squared_norm, SQUARED_NORM_FLOOR))
        weights = ops.gelu(scores / norm * scale, approximate=False)

        # (..., n) -> (..., D_out)
        return ops.matmul(weights, self.value_tokens)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "num_param_tokens": self.num_param_tokens,
                "norm_scale": self.norm_scale,
                "key_initializer": keras.initializers.serialize(
                    self.key_initializer
                ),
                "value_initializer": keras.initializers.serialize(
                    self.value_initializer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_nexus_benchmarks")
class TokenformerBlock(keras.layers.Layer):
    """One pre-norm Tokenformer decoder block.

    Args:
        num_heads: Number of attention heads; must divide the input width.
        attention_param_tokens: Parameter tokens of each of the query, key,
            value and output Pattention layers.
        ffn_param_tokens: Parameter tokens of the feed-forward Pattention.
        rope_max_wavelength: Maximum wavelength of the rotary embedding.
        layer_norm_epsilon: Epsilon of the two non-parametric LayerNorms.
        seed: Optional integer seed of the initializers.
        **kwargs: Base layer arguments.
    """

    def __init__(
        self,
        num_heads,
        attention_param_tokens,
        ffn_param_tokens,
        rope_max_wavelength=10000,
        layer_norm_epsilon=1e-5,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_positive_int("num_heads", num_heads)
        _check_positive_int("attention_param_tokens", attention_param_tokens)
        _check_positive_int("ffn_param_tokens", ffn_param_tokens)
        self.num_heads = num_heads
        self.attention_param_tokens = attention_param_tokens
        self.ffn_param_tokens = ffn_param_tokens
        self.rope_max_wavelength = rope_max_wavelength
        self.layer_norm_epsilon = layer_norm_epsilon
        self.seed = seed

    def _pattention(self, units, num_param_tokens, name, offset):
        seed = None if self.seed is None else self.seed + offset
        key_seed = None if seed is None else 2 * seed
        value_seed = None if seed is None else 2 * seed + 1
        return Pattention(
            units,
            num_param_tokens,
            key_initializer=_normal_initializer(key_seed),
            value_initializer=_normal_initializer(value_seed),
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        if hidden_dim % self.num_heads:
            raise ValueError(
                "The input width must be divisible by `num_heads`. Received "
                f"width {hidden_dim} and num_heads={self.num_heads}."
            )
        self.head_dim = hidden_dim // self.num_heads

        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon,
            center=False,
            scale=False,
            dtype=self.dtype_policy,
            name="attention_norm",
        )
        self.attention_norm.build(input_shape)
        self.projections = {}
        for offset, name in enumerate(("query", "key", "value", "output")):
            layer = self._pattention(
                hidden_dim, self.attention_param_tokens, name, offset
            )
            layer.build(input_shape)
            self.projections[name] = layer
        self.rotary_embedding = RotaryEmbedding(
            max_wavelength=self.rope_max_wavelength,
            dtype=self.dtype_policy,
            name="rotary_embedding",
        )

        self.feedforward_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon,
            center=False,
            scale=False,
            dtype=self.dtype_policy,
            name="feedforward_norm",
        )
        self.feedforward_norm.build(input_shape)
        self.feedforward = self._pattention(
            hidden_dim, self.ffn_param_tokens, "feedforward", 4
        )
        self.feedforward.build(input_shape)
        self.built = True

    def _split_heads(self, x):
        # (batch, sequence, width) -> (batch, sequence, heads, head_dim)
        shape = ops.shape(x)
        return ops.reshape(
            x, (shape[0], shape[1], self.num_heads, self.head_dim)
        )

    def _attend(self, x, padding_mask):
        query = self.rotary_embedding(
            self._split_heads(self.projections["query"](x))
        )
        key = self.rotary_embedding(
            self._split_heads(self.projections["key"](x))
        )
        value = self._split_heads(self.projections["value"](x))

        # Letters: b batch, q query position, k key position, h head,
        # d head feature.
        scores = ops.einsum("bqhd,bkhd->bhqk", query, key)
        scores = scores / math.sqrt(self.head_dim)
        length = ops.shape(x)[1]
        causal = ops.tril(ops.ones((length, length), dtype="bool"))
        # (batch, 1, 1, key) & (query, key) -> (batch, 1, query, key)
        keys_present = ops.cast(padding_mask, "bool")[:, None, None, :]
        mask = ops.logical_and(causal[None, None, :, :], keys_present)
        scores = ops.where(mask, scores, MASKED_SCORE)
        probabilities = ops.softmax(scores, axis=-1)
        outputs = ops.einsum("bhqk,bkhd->bqhd", probabilities, value)

        # (batch, sequence, heads, head_dim) -> (batch, sequence, width)
        shape = ops.shape(outputs)
        outputs = ops.reshape(
            outputs, (shape[0], shape[1], self.num_heads * self.head_dim)
        )
        return self.projections["output"](outputs)

    def call(self, x, padding_mask):
        x = x + self._attend(self.attention_norm(x), padding_mask)
        return x + self.feedforward(self.feedforward_norm(x))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "attention_param_tokens": self.attention_param_tokens,
                "ffn_param_tokens": self.ffn_param_tokens,
                "rope_max_wavelength": self.rope_max_wavelength,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "seed": self.seed,
            }
        )
        return config


def build_tokenformer_lm(
    vocabulary_size,
    num_layers,
    num_heads,
    hidden_dim,
    attention_param_tokens,
    ffn_param_tokens,
    seed=None,
):
    """Build a Tokenformer causal language model as a functional model.

    The model takes `{"token_ids", "padding_mask"}` (int tensors of shape
    `(batch, sequence)`) like `NexusformerCausalLM` and returns logits of
    shape `(batch, sequence, vocabulary_size)`. Its sizes are stored in
    `model.tokenformer_config` for the FLOP counter and for growth.
    """
    config = {
        "vocabulary_size": vocabulary_size,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "hidden_dim": hidden_dim,
        "attention_param_tokens": attention_param_tokens,
        "ffn_param_tokens": ffn_param_tokens,
    }
    for name, value in config.items():
        _check_positive_int(name, value)

    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    padding_mask = keras.Input(
        shape=(None,), dtype="int32", name="padding_mask"
    )
    x = keras.layers.Embedding(
        vocabulary_size,
        hidden_dim,
        embeddings_initializer=_normal_initializer(seed),
        name="token_embedding",
    )(token_ids)
    for i in range(num_layers):
        block_seed = None if seed is None else seed + 10 * (i + 1)
        x = TokenformerBlock(
            num_heads,
            attention_param_tokens,
            ffn_param_tokens,
            seed=block_seed,
            name=f"transformer_layer_{i}",
        )(x, padding_mask=padding_mask)
    x = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")(x)
    head_seed = None if seed is None else seed + 1
    logits = keras.layers.Dense(
        vocabulary_size,
        use_bias=False,
        kernel_initializer=_normal_initializer(head_seed),
        name="lm_head",
    )(x)
    model = keras.Model(
        {"token_ids": token_ids, "padding_mask": padding_mask},
        logits,
        name="tokenformer_lm",
    )
    model.tokenformer_config = config
    return model


def grow_tokenformer(
    model,
    attention_param_tokens,
    ffn_param_tokens,
    probe_inputs=None,
    seed=None,
    verify=True,
):
    """Return a copy of `model` with more parameter tokens in every layer.

    Old parameter tokens are copied. New key tokens are zero and new value
    tokens keep the fresh initializer draw of the new model (see the module
    docstring). Every other weight is copied unchanged.

    Args:
        model: A model from `build_tokenformer_lm`.
        attention_param_tokens: New token count of the attention layers.
        ffn_param_tokens: New token count of the feed-forward layers.
        probe_inputs: Optional inputs on which both models are compared.
            Defaults to a fixed random batch of 2 sequences of 16 tokens.
        seed: Optional integer seed of the new model's initializers.
        verify: Whether to run both models on the probe inputs and measure
            the difference.

    Returns:
        `(grown_model, max_abs_diff)`: the new model and the largest
        absolute logit difference from `model` on the probe inputs, or
        None when `verify` is False.
    """
    old_config = model.tokenformer_config
    if attention_param_tokens < old_config["attention_param_tokens"]:
        raise ValueError(
            "`attention_param_tokens` cannot shrink. Received "
            f"attention_param_tokens={attention_param_tokens}, current "
            f"{old_config['attention_param_tokens']}."
        )
    if ffn_param_tokens < old_config["ffn_param_tokens"]:
        raise ValueError(
            "`ffn_param_tokens` cannot shrink. Received "
            f"ffn_param_tokens={ffn_param_tokens}, current "
            f"{old_config['ffn_param_tokens']}."
        )
    new_config = dict(
        old_config,
        attention_param_tokens=attention_param_tokens,
        ffn_param_tokens=ffn_param_tokens,
    )
    grown = build_tokenformer_lm(**new_config, seed=seed)

    # Both models create their weights in the same order.
    for old, new in zip(model.weights, grown.weights):
        old_value = ops.convert_to_numpy(old)
        if old.shape == new.shape:
            new.assign(old_value)
            continue
        new_value = ops.convert_to_numpy(new).copy()
        count = old_value.shape[0]
        new_value[:count] = old_value
        if new.path.endswith("key_tokens"):
            new_value[count:] = 0.0
        new.assign(new_value)

    if not verify:
        return grown, None
    if probe_inputs is None:
        rng = np.random.default_rng(0)
        probe_inputs = {
            "token_ids": rng.integers(
                0, old_config["vocabulary_size"], size=(2, 16)
            ).astype("int32"),
            "padding_mask": np.ones((2, 16), dtype="int32"),
        }
    old_logits = ops.convert_to_numpy(model(probe_inputs, training=False))
    new_logits = ops.convert_to_numpy(grown(probe_inputs, training=False))
    max_abs_diff = float(np.max(np.abs(old_logits - new_logits)))
    return grown, max_abs_diff


def tokenformer_forward_flops(config, sequence_length, batch_size=1):
    """Count the forward FLOPs of a Tokenformer LM (same rules as Nexus).

    A Pattention layer with n tokens costs `2 * T * n * D_in` for the scores
    and `2 * T * n * D_out` for the weighted values. Attention scores and
    the head are counted as in `keras_nexus.flops`. Normalisations and
    activations are not counted.
    """
    tokens = batch_size * sequence_length
    hidden_dim = config["hidden_dim"]

    def pattention(num_param_tokens):
        return 2 * tokens * num_param_tokens * (hidden_dim + hidden_dim)

    per_layer = (
        4 * pattention(config["attention_param_tokens"])
        + pattention(config["ffn_param_tokens"])
        + 2 * (2 * batch_size * sequence_length**2 * hidden_dim)
    )
    head = 2 * tokens * hidden_dim * config["vocabulary_size"]
    return config["num_layers"] * per_layer + head


def tokenformer_training_flops(config, sequence_length, batch_size=1):
    """Return the FLOPs of one Tokenformer training step (3x forward)."""
    return 3 * tokenformer_forward_flops(config, sequence_length, batch_size)
