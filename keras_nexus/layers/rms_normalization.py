"""Root-mean-square normalisation computed in float32."""

import keras
from keras import ops

from keras_nexus.layers.precision import statistics_dtype


@keras.saving.register_keras_serializable(package="keras_nexus")
class NexusRMSNormalization(keras.layers.Layer):
    """RMS normalisation over the last axis with a learned per-feature gain.

    `y = x / sqrt(mean(x ** 2) + epsilon) * scale`, computed in float32 and
    returned in the compute dtype, so mixed-precision models normalise
    without float16 overflow.

    Growing the residual width from D to D' appends zeros to `x`, which
    divides `mean(x ** 2)` by D' / D. Multiplying `scale` by sqrt(D / D')
    and `epsilon` by D / D' (what `keras_nexus.grow_model` does) makes the
    old features come out exactly as before.

    Args:
        epsilon: Positive float added to the mean square. Defaults to 1e-6.
        **kwargs: Base layer arguments such as `name` and `dtype`.
    """

    def __init__(self, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
            raise ValueError(
                f"`epsilon` must be a positive float. Received: "
                f"epsilon={epsilon!r}"
            )
        if epsilon <= 0:
            raise ValueError(
                f"`epsilon` must be a positive float. Received: "
                f"epsilon={epsilon!r}"
            )
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        self.scale = self.add_weight(
            name="scale",
            shape=(input_shape[-1],),
            initializer="ones",
        )
        self.built = True

    def call(self, inputs):
        dtype = statistics_dtype(self.compute_dtype)
        inputs = ops.cast(inputs, dtype)
        mean_square = ops.mean(ops.square(inputs), axis=-1, keepdims=True)
        outputs = inputs * ops.rsqrt(mean_square + self.epsilon)
        outputs = outputs * ops.cast(self.scale, dtype)
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config
