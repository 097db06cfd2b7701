"""Tiny Nexusformer models and weight helpers shared by the model tests."""

import numpy as np
from keras import ops

from keras_nexus.models import NexusformerBackbone

# Small enough that a forward pass takes milliseconds on one CPU core, with
# grouped-query attention (two query heads per key/value head) and widths
# that are all different, so a transposed kernel cannot go unnoticed.
TINY_CONFIG = {
    "vocabulary_size": 256,
    "num_layers": 2,
    "num_query_heads": 4,
    "num_key_value_heads": 2,
    "hidden_dim": 32,
    "nexus_hidden_dim": 48,
    "nexus_expanded_dim": 64,
    "ffn_hidden_dim": 40,
    "ffn_expanded_dim": 72,
}


def make_backbone(**overrides):
    """Return a `NexusformerBackbone` built from `TINY_CONFIG`."""
    return NexusformerBackbone(**{**TINY_CONFIG, **overrides})


def randomize_weights(model, stddev=0.3, seed=0):
    """Draw every kernel and embedding from N(0, stddev), gains near 1.

    The default initialisation (stddev 0.02) makes attention nearly uniform
    and logits nearly equal. Larger weights give peaked attention and clear
    argmax margins, so the comparisons test the whole computation.
    """
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if variable.path.endswith("scale"):
            values = 1.0 + 0.2 * rng.normal(size=shape)
        else:
            values = stddev * rng.normal(size=shape)
        variable.assign(values.astype("float32"))


def weights_by_path(model):
    """Return a dict from variable path to float64 numpy array."""
    return {
        variable.path: ops.convert_to_numpy(variable).astype(np.float64)
        for variable in model.weights
    }


def random_token_ids(rng, shape, low=4):
    """Return int32 token ids that avoid the special ids 0 to 3."""
    return rng.integers(low, 256, size=shape).astype("int32")
