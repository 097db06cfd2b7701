"""The standard-Transformer baseline: KerasHub's Llama at a chosen size.

`keras_hub.models.LlamaBackbone` is a pre-RMSNorm decoder with rotary
embeddings, grouped-query attention and a SwiGLU feed-forward network
(gate, up and down projections), with an untied output head by default.
"""

import keras_hub


def build_llama_lm(
    vocabulary_size,
    num_layers,
    num_heads,
    hidden_dim,
    intermediate_dim,
    num_key_value_heads=None,
):
    """Build a `keras_hub.models.LlamaCausalLM` without a preprocessor.

    The model takes `{"token_ids", "padding_mask"}` and returns logits.
    Its sizes are stored in `model.llama_config` for the FLOP counter.
    """
    num_key_value_heads = num_key_value_heads or num_heads
    backbone = keras_hub.models.LlamaBackbone(
        vocabulary_size=vocabulary_size,
        num_layers=num_layers,
        num_query_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        num_key_value_heads=num_key_value_heads,
    )
    model = keras_hub.models.LlamaCausalLM(backbone, preprocessor=None)
    model.llama_config = {
        "vocabulary_size": vocabulary_size,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "num_key_value_heads": num_key_value_heads,
        "hidden_dim": hidden_dim,
        "intermediate_dim": intermediate_dim,
    }
    return model


def llama_parameter_count(config):
    """Count the parameters of `build_llama_lm(**config)` without building.

    Per block: query and output `D * D`, key and value
    `D * D * kv_heads / heads`, three SwiGLU kernels `D * F`, two RMSNorm
    scales `D`. Plus the embedding and the untied head `V * D` each and the
    final RMSNorm scale.
    """
    hidden_dim = config["hidden_dim"]
    key_value_width = (
        hidden_dim * config["num_key_value_heads"] // config["num_heads"]
    )
    per_layer = (
        2 * hidden_dim * hidden_dim
        + 2 * hidden_dim * key_value_width
        + 3 * hidden_dim * config["intermediate_dim"]
        + 2 * hidden_dim
    )
    embeddings = 2 * config["vocabulary_size"] * hidden_dim
    return config["num_layers"] * per_layer + embeddings + hidden_dim


def match_llama_intermediate_dim(
    target_parameters,
    vocabulary_size,
    num_layers,
    num_heads,
    hidden_dim,
    multiple=32,
):
    """Return the SwiGLU width that best matches a parameter count.

    The width is a multiple of `multiple` and brings the parameter count of
    `build_llama_lm` closest to `target_parameters`.
    """
    config = {
        "vocabulary_size": vocabulary_size,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "num_key_value_heads": num_heads,
        "hidden_dim": hidden_dim,
        "intermediate_dim": 0,
    }
    fixed = llama_parameter_count(config)
    per_unit = 3 * hidden_dim * num_layers
    width = max(multiple, round((target_parameters - fixed) / per_unit))
    return int(max(multiple, multiple * round(width / multiple)))


def llama_forward_flops(config, sequence_length, batch_size=1):
    """Count the forward FLOPs of a Llama LM (same rules as Nexus).

    Per layer: query and output `2 * T * D * D`, key and value
    `2 * T * D * D_kv`, SwiGLU `3 * 2 * T * D * F`, attention scores and
    values `2 * 2 * T * T * D` per sequence. Head `2 * T * D * V`.
    """
    tokens = batch_size * sequence_length
    hidden_dim = config["hidden_dim"]
    key_value_width = (
        hidden_dim * config["num_key_value_heads"] // config["num_heads"]
    )
    projections = 2 * tokens * (
        2 * hidden_dim * hidden_dim + 2 * hidden_dim * key_value_width
    )
    feedforward = 3 * 2 * tokens * hidden_dim * config["intermediate_dim"]
    scores = 2 * (2 * batch_size * sequence_length**2 * hidden_dim)
    head = 2 * tokens * hidden_dim * config["vocabulary_size"]
    return config["num_layers"] * (projections + feedforward + scores) + head


def llama_training_flops(config, sequence_length, batch_size=1):
    """Return the FLOPs of one Llama training step (3x forward)."""
    return 3 * llama_forward_flops(config, sequence_length, batch_size)
