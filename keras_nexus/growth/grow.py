"""`grow_model`: make a Nexusformer larger without changing what it computes."""

import logging

import keras
from keras import ops

from keras_nexus.growth import verification
from keras_nexus.growth.backbone_plan import place_heads
from keras_nexus.growth.backbone_plan import plan_backbone_growth
from keras_nexus.growth.report import GrowthReport
from keras_nexus.growth.transfer import AxisMap
from keras_nexus.growth.transfer import WeightTransfer
from keras_nexus.growth_axes import BACKBONE_AXES
from keras_nexus.growth_axes import LAYER_AXES
from keras_nexus.layers.nexus_rank_dense import NexusRankDense
from keras_nexus.models.nexusformer.nexusformer_backbone import (
    NexusformerBackbone,
)
from keras_nexus.models.nexusformer.nexusformer_causal_lm import (
    NexusformerCausalLM,
)

logger = logging.getLogger(__name__)



def grow_model(
    model,
    *,
    num_layers=None,
    hidden_dim=None,
    num_query_heads=None,
    num_key_value_heads=None,
    nexus_hidden_dim=None,
    nexus_expanded_dim=None,
    ffn_hidden_dim=None,
    ffn_expanded_dim=None,
    hidden_units=None,
    expanded_units=None,
    new_layer_positions="interleave",
    verify=True,
    atol=1e-5,
    probe_inputs=None,
    seed=None,
    **unknown_axes,
):
    """Return a larger copy of `model` that computes the same function.

    The grown model is built from scratch and the weights of `model` are
    copied into it. Every new weight is either zero or fresh, as the growth
    rules in `keras_nexus.growth.backbone_plan` require. Where a new unit
    is computed from zero weights, the weights that read it are fresh, so
    every new weight receives a gradient from the first training steps on.
    `model` itself is never modified.

    Args:
        model: A `NexusformerBackbone`, a `NexusformerCausalLM` (the result
            keeps its preprocessor), or a Sequential or functional Keras
            model with top-level `NexusRankDense` layers.
        num_layers: New number of decoder blocks.
        hidden_dim: New residual width D. `head_dim` stays fixed.
        num_query_heads: New number of query heads (head_dim fixed).
        num_key_value_heads: New number of key/value heads.
        nexus_hidden_dim: New hidden width M of the attention projections.
        nexus_expanded_dim: New expanded width A of the attention
            projections.
        ffn_hidden_dim: New hidden width M of the feed-forward layers.
        ffn_expanded_dim: New expanded width A of the feed-forward layers.
        hidden_units: For plain Keras models only: the new `hidden_units`
            of every `NexusRankDense` layer (an int) or per layer name (a
            dict).
        expanded_units: Like `hidden_units`, for `expanded_units`.
        new_layer_positions: Where new blocks go: `"interleave"` (spread
            evenly through the stack), `"top"` (after the last block),
            `"bottom"` (before the first) or a list of block indices in the
            grown model.
        verify: Whether to compare the outputs of both models on a probe
            batch, in inference mode and float32 compute.
        atol: Largest absolute output difference accepted by `verify`.
        probe_inputs: Inputs for the comparison. Defaults to random token
            ids with a padded row (Nexusformer models) or standard-normal
            inputs (plain models).
        seed: Optional integer. When given, fresh weights are drawn from
            seeded initializers, so growth is reproducible.

    Returns:
        The grown, built model, of the same class as `model`, with a
        `growth_report` attribute (a `GrowthReport`) whose `max_abs_diff` is
        the measured difference.

    Raises:
        ValueError: for an invalid request: an unknown axis, a width that
            would shrink, `head_dim`, head counts that do not divide, or a
            model without Nexus-Rank layers.
        GrowthVerificationError: when `verify` finds a difference above
            `atol`.

    Examples:

    ```python
    import keras_nexus

    backbone = keras_nexus.models.NexusformerBackbone(
        vocabulary_size=256,
        num_layers=2,
        num_query_heads=4,
        num_key_value_heads=2,
        hidden_dim=32,
    )
    grown = keras_nexus.grow_model(
        backbone, num_layers=3, nexus_hidden_dim=96, num_query_heads=6
    )
    grown.growth_report.max_abs_diff  # about 1e-7
    ```
    """
    _reject_unknown_axes(unknown_axes)
    if isinstance(atol, bool) or not isinstance(atol, (int, float)):
        raise ValueError(f"`atol` must be a number. Received: atol={atol!r}")
    if not atol >= 0:
        raise ValueError(
            f"`atol` must be a non-negative number. Received: atol={atol!r}"
        )
    backbone_request = {
        "num_layers": num_layers,
        "hidden_dim": hidden_dim,
        "num_query_heads": num_query_heads,
        "num_key_value_heads": num_key_value_heads,
        "nexus_hidden_dim": nexus_hidden_dim,
        "nexus_expanded_dim": nexus_expanded_dim,
        "ffn_hidden_dim": ffn_hidden_dim,
        "ffn_expanded_dim": ffn_expanded_dim,
    }
    backbone_request = {
        key: value for key, value in backbone_request.items() if value is not None
    }
    layer_request = {
        key: value
        for key, value in (
            ("hidden_units", hidden_units),
            ("expanded_units", expanded_units),
        )
        if value is not None
    }

    if isinstance(model, (NexusformerBackbone, NexusformerCausalLM)):
        if layer_request:
            raise ValueError(
                f"{sorted(layer_request)} apply to plain Keras models with "
                "NexusRankDense layers. For a Nexusformer model, use "
                "nexus_hidden_dim, nexus_expanded_dim, ffn_hidden_dim or "
                "ffn_expanded_dim."
            )
        grown = _grow_nexusformer(
            model, backbone_request, new_layer_positions, seed
        )
    elif isinstance(model, keras.Model):
        if backbone_request:
            raise ValueError(
                f"{sorted(backbone_request)} apply to Nexusformer models "
                "only. For a plain Keras model, use hidden_units= or "
                "expanded_units=."
            )
        grown = _grow_plain_model(model, layer_request, seed)
    else:
        raise ValueError(
            "`model` must be a NexusformerBackbone, a NexusformerCausalLM or "
            "a Keras model with NexusRankDense layers. Received: "
            f"model={type(model).__name__}"
        )
    new_model, changes, transfers = grown

    difference = None
    if verify:
        difference = verification.measure_difference(
            model, new_model, probe_inputs
        )
        verification.check(difference, atol)

    report = GrowthReport(
        changes=changes,
        max_abs_diff=difference,
        atol=atol,
        old_parameters=model.count_params(),
        new_parameters=new_model.count_params(),
        transfers=transfers,
    )
    new_model.growth_report = report
    logger.info(report.summary())
    return new_model


def _reject_unknown_axes(unknown_axes):
    if not unknown_axes:
        return
    if "head_dim" in unknown_axes:
        raise ValueError(
            "head_dim cannot grow because the rotary frequencies and the "
            "1/sqrt(head_dim) score scale depend on it, so no zero padding "
            "keeps the outputs equal. Received: "
            f"head_dim={unknown_axes['head_dim']!r}. Grow num_query_heads "
            "and num_key_value_heads instead."
        )
    valid = ", ".join(BACKBONE_AXES + LAYER_AXES)
    raise ValueError(
        f"Unknown growth axis {sorted(unknown_axes)}. Valid axes: {valid}."
    )


def _check_target(name, current, requested):
    if isinstance(requested, bool) or not isinstance(requested, int):
        raise ValueError(
            f"`{name}` must be a positive integer. Received: "
            f"{name}={requested!r}"
        )
    if requested < current:
        raise ValueError(
            f"`{name}` can only grow: the model has {name}={current}, "
            f"requested {name}={requested}. Pass a value >= {current}, or "
            "leave it unset."
        )


def _fresh_values(variables, seed):
    """Return fresh initial values by variable path."""
    values = {}
    for offset, variable in enumerate(variables):
        if seed is None or variable.path.endswith("scale"):
            values[variable.path] = ops.convert_to_numpy(variable)
            continue
        initializer = keras.initializers.RandomNormal(
            stddev=0.02, seed=seed + offset
        )
        values[variable.path] = ops.convert_to_numpy(
            initializer(variable.shape, dtype=variable.dtype)
        )
    return values


def _grown_backbone_config(config, request):
    new_config = dict(config)
    for name, value in request.items():
        _check_target(name, config[name], value)
        new_config[name] = value

    num_query = new_config["num_query_heads"]
    num_key_value = new_config["num_key_value_heads"]
    if num_query % num_key_value:
        raise ValueError(
            "`num_key_value_heads` must divide `num_query_heads`. Requested: "
            f"num_query_heads={num_query}, "
            f"num_key_value_heads={num_key_value}. Choose counts such that "
            "num_query_heads is a multiple of num_key_value_heads."
        )
    place_heads(
        config["num_query_heads"],
        config["num_key_value_heads"],
        num_query,
        num_key_value,
    )

    # The RMS epsilon shrinks with the mean square it is added to; the
    # gains are rescaled in the weight transfer (see backbone_plan).
    ratio = config["hidden_dim"] / new_config["hidden_dim"]
    new_config["layer_norm_epsilon"] = config["layer_norm_epsilon"] * ratio
    new_config["head_dim"] = config["head_dim"]
    new_config["nexus_norm_scales"] = dict(config["nexus_norm_scales"])
    return new_config


def _grow_nexusformer(model, request, new_layer_positions, seed):
    if not request:
        raise ValueError(
            "No growth requested. Pass at least one of: "
            f"{', '.join(BACKBONE_AXES)}."
        )
    backbone = model.backbone if isinstance(model, NexusformerCausalLM) else model
    config = backbone.get_config()
    new_config = _grown_backbone_config(config, request)
    transfers = plan_backbone_growth(config, new_config, new_layer_positions)

    new_backbone = NexusformerBackbone.from_config(new_config)
    old_values = {v.path: ops.convert_to_numpy(v) for v in backbone.weights}
    fresh = _fresh_values(new_backbone.weights, seed)
    for variable in new_backbone.weights:
        # The plan leaves out the weights of new blocks that keep their
        # fresh values; record them too, so the report covers every weight.
        transfer = transfers.setdefault(variable.path, WeightTransfer(None))
        old_value = old_values.get(transfer.source_path)
        variable.assign(transfer.apply(old_value, fresh[variable.path]))

    changes = {
        name: (config[name], new_config[name])
        for name in BACKBONE_AXES
        if config[name] != new_config[name]
    }
    if isinstance(model, NexusformerCausalLM):
        new_model = NexusformerCausalLM(
            new_backbone, preprocessor=model.preprocessor
        )
    else:
        new_model = new_backbone
    return new_model, changes, transfers


def _layer_targets(layers, name, request):
    if request is None:
        return {}
    names = [layer.name for layer in layers]
    if isinstance(request, dict):
        unknown = set(request) - set(names)
        if unknown:
            raise ValueError(
                f"`{name}` names layers that are not NexusRankDense layers "
                f"of this model: {sorted(unknown)}. NexusRankDense layers: "
                f"{names}"
            )
        return dict(request)
    return {layer_name: request for layer_name in names}


def _plain_layer_transfers(layer, new_config):
    hidden = AxisMap.extend(layer.hidden_units, new_config["hidden_units"], 0)
    expanded = AxisMap.extend(
        layer.expanded_units, new_config["expanded_units"], 0
    )
    inputs = AxisMap.identity(layer.hidden_kernel.shape[0])
    outputs = AxisMap.identity(layer.units)

    axes = {
        "hidden_kernel": (inputs, hidden.with_new_zero()),
        "expanded_kernel": (hidden, expanded.with_new_zero()),
        "output_kernel": (expanded, outputs),
    }
    if layer.use_bias:
        axes.update(
            {
                "hidden_bias": (hidden.with_new_zero(),),
                "expanded_bias": (expanded.with_new_zero(),),
                "output_bias": (outputs,),
            }
        )
    return {
        name: WeightTransfer(f"{layer.name}/{name}", weight_axes)
        for name, weight_axes in axes.items()
    }


def _grow_plain_model(model, request, seed):
    nexus_layers = [
        layer for layer in model.layers if isinstance(layer, NexusRankDense)
    ]
    if not nexus_layers:
        raise ValueError(
            f"Model {model.name!r} has no top-level NexusRankDense layer, so "
            "there is nothing to grow. Replace Dense layers with "
            "keras_nexus.layers.NexusRankDense first."
        )
    if not request:
        raise ValueError(
            "No growth requested. Pass hidden_units= or expanded_units= "
            "(an int, or a dict by layer name)."
        )
    targets = {
        key: _layer_targets(nexus_layers, key, request.get(key))
        for key in LAYER_AXES
    }
    new_configs = {}
    changes = {}
    for layer in nexus_layers:
        config = layer.get_config()
        for key in LAYER_AXES:
            if layer.name in targets[key]:
                value = targets[key][layer.name]
                _check_target(f"{key}[{layer.name!r}]", config[key], value)
                if value != config[key]:
                    changes[f"{layer.name}.{key}"] = (config[key], value)
                config[key] = value
        new_configs[layer.name] = config

    def clone_layer(layer):
        if layer.name in new_configs:
            return NexusRankDense.from_config(new_configs[layer.name])
        return layer.__class__.from_config(layer.get_config())

    try:
        new_model = keras.models.clone_model(model, clone_function=clone_layer)
    except ValueError as error:
        raise ValueError(
            f"Cannot rebuild model {model.name!r} with larger layers: only "
            "Sequential and functional models can be grown, not subclassed "
            f"ones. Keras reported: {error}"
        ) from error

    rng_seed = seed
    # clone_model keeps the order of layers but may rename input layers.
    for old_layer, new_layer in zip(model.layers, new_model.layers):
        if old_layer.name not in new_configs:
            new_layer.set_weights(old_layer.get_weights())
            continue
        transfers = _plain_layer_transfers(
            old_layer, new_configs[old_layer.name]
        )
        for name, transfer in transfers.items():
            old_value = ops.convert_to_numpy(getattr(old_layer, name))
            variable = getattr(new_layer, name)
            fresh = ops.convert_to_numpy(variable)
            if rng_seed is not None and name.endswith("kernel"):
                initializer = _seeded(new_layer.kernel_initializer, rng_seed)
                fresh = ops.convert_to_numpy(initializer(variable.shape))
                rng_seed += 1
            variable.assign(transfer.apply(old_value, fresh))

    transfers = {}
    for layer in nexus_layers:
        for name, transfer in _plain_layer_transfers(
            layer, new_configs[layer.name]
        ).items():
            transfers[f"{layer.name}/{name}"] = transfer
    return new_model, changes, transfers


def _seeded(initializer, seed):
    config = keras.initializers.serialize(initializer)
    if "seed" in config.get("config", {}):
        config["config"]["seed"] = seed
    return keras.initializers.deserialize(config)
