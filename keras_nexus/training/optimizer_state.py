"""Carry Adam and AdamW moments across `grow_model`."""

import dataclasses
import logging

import keras
import numpy as np
from keras import ops

logger = logging.getLogger(__name__)


def _slots(optimizer):
    """Return the names of the per-variable slot lists of an Adam optimizer."""
    if not isinstance(optimizer, keras.optimizers.Adam):
        raise ValueError(
            "Carrying optimizer state across growth supports Adam and AdamW "
            f"(and subclasses). Received: {type(optimizer).__name__}. Pass "
            "carry_optimizer_state=False to start a fresh optimizer instead."
        )
    slots = ["_momentums", "_velocities"]
    if optimizer.amsgrad:
        slots.append("_velocity_hats")
    return slots


def transfer_optimizer_state(old_model, new_model, transfers, fresh=False):
    """Return an optimizer for `new_model` that continues `old_model`'s.

    The new optimizer has the same class and config (learning-rate schedule
    included) and the same step count, so the schedule continues where it
    was. Unless `fresh`, each Adam moment moves with its weight: the entries
    of old weights are copied by the same `WeightTransfer` that grew the
    weight, and new entries start at zero, as in a new optimizer. When a
    transfer multiplies a weight by `s` (RMS-norm gains), its gradient
    scales by `1 / s`, so the first moment is divided by `s` and the second
    by `s ** 2`.

    Args:
        old_model: the model before growth, with a built optimizer.
        new_model: the grown model.
        transfers: `growth_report.transfers` of the growth.
        fresh: if `True`, keep only the step count: all moments start at
            zero.

    Returns:
        A built optimizer, ready for `new_model.compile(optimizer=...)`.
    """
    old_optimizer = old_model.optimizer
    optimizer = old_optimizer.__class__.from_config(old_optimizer.get_config())
    optimizer.build(new_model.trainable_variables)
    optimizer.iterations.assign(old_optimizer.iterations)
    if fresh:
        return optimizer

    slots = _slots(old_optimizer)
    old_variables = {v.path: v for v in old_model.trainable_variables}
    for variable in new_model.trainable_variables:
        transfer = transfers.get(variable.path)
        if transfer is None:
            source = old_variables.get(variable.path)
            if source is None:
                continue  # A weight of a new block: moments stay zero.
        else:
            if transfer.source_path is None:
                continue
            source = old_variables[transfer.source_path]

        old_index = old_optimizer._get_variable_index(source)
        new_index = optimizer._get_variable_index(variable)
        for slot in slots:
            old_value = ops.convert_to_numpy(
                getattr(old_optimizer, slot)[old_index]
            )
            target = getattr(optimizer, slot)[new_index]
            if transfer is None:
                target.assign(old_value)
                continue
            # Second-moment slots scale with the square of the gradient.
            exponent = 1 if slot == "_momentums" else 2
            moment_transfer = dataclasses.replace(
                transfer, scale=transfer.scale ** (-exponent)
            )
            zeros = np.zeros(tuple(target.shape), old_value.dtype)
            target.assign(moment_transfer.apply(old_value, zeros))
    logger.debug("Carried %s state into the grown model.", type(optimizer))
    return optimizer


def optimizer_state(optimizer):
    """Return the optimizer's variables as a list of numpy arrays."""
    return [ops.convert_to_numpy(v) for v in optimizer.variables]


def restore_optimizer_state(optimizer, model, values):
    """Build `optimizer` for `model` and load `values` from `optimizer_state`.

    Raises:
        ValueError: if the saved state does not match the optimizer's
            variables (a checkpoint from another model or optimizer).
    """
    optimizer.build(model.trainable_variables)
    variables = optimizer.variables
    if len(variables) != len(values):
        raise ValueError(
            f"The saved optimizer state has {len(values)} arrays but the "
            f"optimizer has {len(variables)} variables; the checkpoint does "
            "not belong to this model."
        )
    for variable, value in zip(variables, values):
        if tuple(variable.shape) != tuple(value.shape):
            raise ValueError(
                f"Saved optimizer array of shape {value.shape} does not fit "
                f"{variable.path} of shape {tuple(variable.shape)}."
            )
        variable.assign(value)
