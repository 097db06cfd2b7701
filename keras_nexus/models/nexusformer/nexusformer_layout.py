"""Sharding rules that lay out a Nexusformer backbone on a device mesh.

`NexusformerBackbone.get_layout_map` delegates here. The rules split every
large weight along the model-parallel axis of a
`keras.distribution.DeviceMesh` and replicate it along the data-parallel
axis. Inside a `NexusRankDense` layer they follow a Megatron-like pattern
(column-parallel, column-parallel, row-parallel), chosen for its low
communication:

```
x           (..., D_in)   replicated over the model axis
h1 = x @ W_hidden         W_hidden (D_in, M) split along M: no communication
||h1||                    sum of squares all-reduced: one number per token
a1                        all-gathered along M: (..., M) per token
h2 = a1 @ W_expanded      W_expanded (M, A) split along A: no communication
||h2||                    sum of squares all-reduced: one number per token
y = a2 @ W_output         W_output (A, D_out) split along A: partial sums
y                         all-reduced: (..., D_out) per token
```

Splitting `W_expanded` along M instead (row-parallel in the middle) would
replace the all-gather of the M-wide `a1` with an all-reduce of the
A-wide `h2`. An all-reduce moves about twice as much data as an all-gather
of the same size, and A > M, so that would cost more than twice as much.
The L2 normalisation over the whole hidden or expanded vector needs a
reduction across shards with either choice. It reduces one number per
token, so it costs little next to the activations.

Only the widths M and A of each `NexusRankDense` and the vocabulary are
split, never the head axis, so a model axis larger than the number of
key/value heads works. Each split width must be divisible by the size of
the model axis (JAX raises `IndivisibleError` otherwise), and
`check_model_parallel_widths` reports every width that is not.

NOTE: because queries, keys and values come out whole on every model
shard, the attention scores and softmax run replicated along the model
axis. Model parallelism therefore does not shrink their memory, which
grows with the square of the sequence length.
"""

import logging

import keras

logger = logging.getLogger(__name__)

# Variable paths are matched with `re.fullmatch`. The optional prefix lets
# the same rules match a backbone whose variables were created inside an
# outer layer's name scope.
_PREFIX = r"(?:.*/)?"

# Every `NexusRankDense` layer of a decoder block.
_NEXUS_RANK_LAYERS = (
    r"transformer_layer_\d+/"
    r"(?:self_attention/(?:query|key|value|attention_output)|feedforward)"
)

# Config keys of the backbone whose values are split along the model axis.
SPLIT_WIDTHS = (
    "vocabulary_size",
    "nexus_hidden_dim",
    "nexus_expanded_dim",
    "ffn_hidden_dim",
    "ffn_expanded_dim",
)


def _check_mesh(device_mesh, model_parallel_dim_name, data_parallel_dim_name):
    if not isinstance(device_mesh, keras.distribution.DeviceMesh):
        raise ValueError(
            "`device_mesh` must be a `keras.distribution.DeviceMesh`. "
            f"Received: device_mesh={device_mesh!r} of type "
            f"{type(device_mesh).__name__}"
        )
    axis_names = list(device_mesh.axis_names)
    for argument, name in (
        ("model_parallel_dim_name", model_parallel_dim_name),
        ("data_parallel_dim_name", data_parallel_dim_name),
    ):
        if name not in axis_names:
            raise ValueError(
                f"`{argument}` must name an axis of `device_mesh`, whose "
                f"axes are {axis_names}. Received: {argument}={name!r}"
            )
    if model_parallel_dim_name == data_parallel_dim_name:
        raise ValueError(
            "`model_parallel_dim_name` and `data_parallel_dim_name` must "
            "name different mesh axes. Received: both "
            f"{model_parallel_dim_name!r}. For data parallelism alone, use "
            "`keras.distribution.DataParallel` instead of a layout map."
        )


def build_layout_map(
    device_mesh,
    model_parallel_dim_name="model",
    data_parallel_dim_name="batch",
):
    """Build the `keras.distribution.LayoutMap` of a Nexusformer backbone.

    | weight | shape | split axis | layout |
    |---|---|---|---|
    | `token_embedding/embeddings` | (V, D) | V | `(model, None)` |
    | `token_embedding/reverse_embeddings` | (D, V) | V | `(None, model)` |
    | `.../hidden_kernel` | (D_in, M) | M | `(None, model)` |
    | `.../expanded_kernel` | (M, A) | A | `(None, model)` |
    | `.../output_kernel` | (A, D_out) | A | `(model, None)` |

    The vocabulary axis V of both tables is split so that the logits of the
    language-model head stay split along V (they are the largest activation
    of the model) and a tied head reads the same split table. The lookup of
    a V-split embedding costs one all-reduce of the D-wide result per
    token, once per forward pass. RMS normalisation scales (rank 1) have no
    rule and are replicated.

    Args:
        device_mesh: A `keras.distribution.DeviceMesh`.
        model_parallel_dim_name: Name of the mesh axis that weights are
            split along.
        data_parallel_dim_name: Name of the mesh axis that the batch is
            split along. Weights are replicated along it, so the only
            traffic along this axis is the gradient all-reduce. Pass the
            same name as `batch_dim_name` to
            `keras.distribution.ModelParallel`.

    Returns:
        A `keras.distribution.LayoutMap` with one rule per weight kind.
    """
    _check_mesh(device_mesh, model_parallel_dim_name, data_parallel_dim_name)
    model = model_parallel_dim_name

    layout_map = keras.distribution.LayoutMap(device_mesh)
    layout_map[_PREFIX + "token_embedding/embeddings"] = (model, None)
    layout_map[_PREFIX + "token_embedding/reverse_embeddings"] = (None, model)

    # Column-parallel, column-parallel, row-parallel: see the module
    # docstring for the collectives this pattern needs.
    nexus_rank = _PREFIX + _NEXUS_RANK_LAYERS
    layout_map[nexus_rank + "/hidden_kernel"] = (None, model)
    layout_map[nexus_rank + "/expanded_kernel"] = (None, model)
    layout_map[nexus_rank + "/output_kernel"] = (model, None)

    logger.debug(
        "Built a Nexusformer layout map with %d rules on mesh %s, model "
        "axis %r.",
        len(layout_map),
        device_mesh,
        model,
    )
    return layout_map


def check_model_parallel_widths(
    config, device_mesh, model_parallel_dim_name="model"
):
    """Check that every width the layout map splits fits the model axis.

    Call it before creating a model inside a `ModelParallel` scope to get
    one error that lists every problem, instead of JAX's
    `IndivisibleError` on the first weight that does not fit.

    Args:
        config: The config dict of a `NexusformerBackbone` (its
            `get_config()`), or the backbone itself.
        device_mesh: The `keras.distribution.DeviceMesh` to use.
        model_parallel_dim_name: Name of the mesh axis that weights are
            split along.

    Raises:
        ValueError: if a split width is not divisible by the size of the
            model axis.
    """
    if not isinstance(config, dict):
        config = config.get_config()
    axis_names = list(device_mesh.axis_names)
    if model_parallel_dim_name not in axis_names:
        raise ValueError(
            "`model_parallel_dim_name` must name an axis of `device_mesh`, "
            f"whose axes are {axis_names}. Received: "
            f"model_parallel_dim_name={model_parallel_dim_name!r}"
        )
    axis_size = device_mesh.shape[axis_names.index(model_parallel_dim_name)]

    indivisible = {
        name: config[name]
        for name in SPLIT_WIDTHS
        if config[name] % axis_size
    }
    if indivisible:
        raise ValueError(
            f"The Nexusformer layout map splits these widths along the "
            f"{model_parallel_dim_name!r} mesh axis of size {axis_size}, "
            f"but they are not divisible by it: {indivisible}. Choose "
            f"multiples of {axis_size} (pad the vocabulary if needed) or a "
            "smaller model axis."
        )
