"""Check that a grown model computes what the original computed."""

import keras
import numpy as np
from keras import ops

from keras_nexus.growth.report import GrowthVerificationError
from keras_nexus.models.nexusformer.nexusformer_backbone import (
    NexusformerBackbone,
)
from keras_nexus.models.nexusformer.nexusformer_causal_lm import (
    NexusformerCausalLM,
)

PROBE_BATCH_SIZE = 2
PROBE_SEQUENCE_LENGTH = 16


def _float32_twin(model):
    """Return `model`, or a float32-compute copy of it with equal weights.

    Mixed-precision variables are float32 already, so the copy contains the
    very same numbers and only the compute dtype differs.
    """
    if model.dtype_policy.compute_dtype == "float32":
        return model
    if isinstance(model, (NexusformerBackbone, NexusformerCausalLM)):
        backbone = (
            model.backbone if isinstance(model, NexusformerCausalLM) else model
        )
        config = {**backbone.get_config(), "dtype": "float32"}
        twin = NexusformerBackbone.from_config(config)
        twin.set_weights(backbone.get_weights())
        if isinstance(model, NexusformerCausalLM):
            twin = NexusformerCausalLM(twin)
        return twin

    def clone_layer(layer):
        config = {**layer.get_config(), "dtype": "float32"}
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=clone_layer)
    twin.set_weights(model.get_weights())
    return twin


def default_probe_inputs(model):
    """Random inputs for `model`: token ids with one padded row, or normals."""
    rng = np.random.default_rng(0)
    if isinstance(model, (NexusformerBackbone, NexusformerCausalLM)):
        backbone = (
            model.backbone if isinstance(model, NexusformerCausalLM) else model
        )
        shape = (PROBE_BATCH_SIZE, PROBE_SEQUENCE_LENGTH)
        token_ids = rng.integers(0, backbone.vocabulary_size, shape)
        padding_mask = np.ones(shape, "int32")
        padding_mask[1, -5:] = 0
        return {
            "token_ids": token_ids.astype("int32"),
            "padding_mask": padding_mask,
        }

    probes = []
    for tensor in model.inputs:
        shape = [PROBE_BATCH_SIZE] + [
            4 if size is None else size for size in tensor.shape[1:]
        ]
        probes.append(rng.standard_normal(shape).astype("float32"))
    return probes[0] if len(probes) == 1 else probes


def measure_difference(old_model, new_model, probe_inputs=None):
    """Return the max absolute output difference, in float32 compute.

    When the grown model's last axis is wider (a larger residual width),
    its extra features must be exactly zero and count as differences.
    """
    if probe_inputs is None:
        probe_inputs = default_probe_inputs(old_model)
    old_outputs = _float32_twin(old_model)(probe_inputs, training=False)
    new_outputs = _float32_twin(new_model)(probe_inputs, training=False)

    difference = 0.0
    for old, new in zip(
        keras.tree.flatten(old_outputs), keras.tree.flatten(new_outputs)
    ):
        old = ops.convert_to_numpy(old).astype(np.float64)
        new = ops.convert_to_numpy(new).astype(np.float64)
        width = old.shape[-1]
        difference = max(
            difference,
            float(np.max(np.abs(new[..., :width] - old), initial=0.0)),
            float(np.max(np.abs(new[..., width:]), initial=0.0)),
        )
        if not np.all(np.isfinite(new)):
            return float("nan")
    return difference


def check(difference, atol):
    """Raise `GrowthVerificationError` unless `difference <= atol`."""
    # `not <=` also catches NaN.
    if not difference <= atol:
        raise GrowthVerificationError(difference, atol)
