"""Backend-specific gradient computation for tests."""

import keras
import numpy as np
from keras import ops


def loss_gradients(model, x, y):
    """Return {variable path: gradient} of the mean cross-entropy loss."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    variables = model.trainable_variables
    backend = keras.backend.backend()

    if backend == "jax":
        import jax

        def loss(trainable_values):
            non_trainable = [v.value for v in model.non_trainable_variables]
            logits, _ = model.stateless_call(
                trainable_values, non_trainable, x, training=True
            )
            return loss_fn(y, logits)

        grads = jax.jit(jax.grad(loss))([v.value for v in variables])
    elif backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, variables)
    else:
        for variable in variables:
            variable.value.grad = None
        loss = loss_fn(y, model(x, training=True))
        loss.backward()
        grads = [v.value.grad for v in variables]

    return {
        v.path: np.asarray(ops.convert_to_numpy(g))
        for v, g in zip(variables, grads)
    }
