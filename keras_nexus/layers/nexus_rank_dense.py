"""The Nexus-Rank layer: a three-stage nonlinear replacement for `Dense`."""

import math

import keras
from keras import ops

from keras_nexus.layers.precision import statistics_dtype

# A squared norm below this floor is treated as the floor. Taking the square
# root of an exact zero has an infinite derivative, so an all-zero hidden
# vector (padding tokens, freshly grown units) would give NaN gradients. The
# floor's square root (1e-15) is ten orders of magnitude below `epsilon`, so
# outputs for every other input are unchanged in float32.
SQUARED_NORM_FLOOR = 1e-30


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )


@keras.saving.register_keras_serializable(package="keras_nexus")
class NexusRankDense(keras.layers.Layer):
    """A Nexus-Rank layer, a drop-in replacement for `keras.layers.Dense`.

    Nexusformer (Zhao et al., "Nexusformer: Nonlinear Attention Expansion for
    Stable and Inheritable Transformer Scaling", arXiv 2604.19147) replaces
    each linear projection of a Transformer with this three-stage mapping
    through two progressively wider spaces, a hidden space of width M and an
    expanded space of width A. For an input `x` of width D:

    ```
    h1 = x @ hidden_kernel                          # (..., M)
    a1 = activation(h1 / (||h1||_2 + epsilon) * s)  # L2 norm over the last axis
    h2 = a1 @ expanded_kernel                       # (..., A)
    a2 = activation(h2 / (||h2||_2 + epsilon) * s)
    y  = a2 @ output_kernel                         # (..., units)
    ```

    The scale `s` is `sqrt(units)` at both stages, not `sqrt(M)` or
    `sqrt(A)`. Because `s` does not depend on M or A, and because zero
    entries change neither an L2 norm nor `gelu(0) = 0`, new hidden or
    expanded units whose incoming weights are zero leave the output exactly
    unchanged. This is what makes growth along M and A exact. The resolved
    scale is stored in the config, so a grown layer keeps the scale of the
    layer it came from.

    The normalisations run in float32 even under a mixed-precision policy,
    so a large activation cannot overflow a float16 sum of squares. The
    matrix products run in the compute dtype.

    Args:
        units: Positive integer, width of the output.
        hidden_units: Positive integer, the hidden width M.
        expanded_units: Positive integer, the expanded width A. Nexusformer
            intends `input width < hidden_units < expanded_units`, but any
            positive widths are accepted.
        activation: Activation after the first and second stages. Defaults
            to `"gelu"`, the exact (erf) form. Any Keras activation
            identifier is accepted.
        epsilon: Non-negative float added to each L2 norm. Defaults to 1e-5.
        norm_scale: Positive float `s` multiplying each normalised vector.
            `None` (the default) resolves to `sqrt(units)` when the layer is
            created; the resolved number is stored in the config.
        use_bias: Whether each of the three stages adds a bias. Defaults to
            `False`, as in Nexusformer.
        kernel_initializer: Initializer for the three kernels. Defaults to
            `RandomNormal(stddev=0.02)`.
        bias_initializer: Initializer for the biases. Defaults to `"zeros"`.
        kernel_regularizer: Optional regularizer for the three kernels.
        bias_regularizer: Optional regularizer for the biases.
        kernel_constraint: Optional constraint for the three kernels.
        bias_constraint: Optional constraint for the biases.
        **kwargs: Base layer arguments such as `name` and `dtype`.

    Input shape:
        N-D tensor with shape `(batch_size, ..., input_dim)`, N >= 2.

    Output shape:
        N-D tensor with shape `(batch_size, ..., units)`.

    Examples:

    In a Sequential model:

    ```python
    import keras
    import numpy as np
    from keras_nexus.layers import NexusRankDense

    model = keras.Sequential(
        [
            keras.Input(shape=(8,)),
            NexusRankDense(16, hidden_units=32, expanded_units=64),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.random.rand(64, 8), np.random.rand(64, 1), verbose=0)
    ```

    In a functional model, on a sequence:

    ```python
    inputs = keras.Input(shape=(10, 8))
    outputs = NexusRankDense(4, hidden_units=16, expanded_units=32)(inputs)
    model = keras.Model(inputs, outputs)
    model(np.ones((2, 10, 8))).shape  # (2, 10, 4)
    ```
    """

    def __init__(
        self,
        units,
        hidden_units,
        expanded_units,
        activation="gelu",
        epsilon=1e-5,
        norm_scale=None,
        use_bias=False,
        kernel_initializer=None,
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_positive_int("units", units)
        _check_positive_int("hidden_units", hidden_units)
        _check_positive_int("expanded_units", expanded_units)
        if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool):
            raise ValueError(
                f"`epsilon` must be a non-negative float. Received: "
                f"epsilon={epsilon!r}"
            )
        if epsilon < 0 or not math.isfinite(epsilon):
            raise ValueError(
                f"`epsilon` must be a non-negative float. Received: "
                f"epsilon={epsilon!r}"
            )
        if norm_scale is None:
            norm_scale = math.sqrt(units)
        if (
            isinstance(norm_scale, bool)
            or not isinstance(norm_scale, (int, float))
            or not math.isfinite(norm_scale)
            or norm_scale <= 0
        ):
            raise ValueError(
                f"`norm_scale` must be a positive float or None (which means "
                f"sqrt(units)). Received: norm_scale={norm_scale!r}"
            )
        try:
            self.activation = keras.activations.get(activation)
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"`activation` must be a Keras activation name, a serialized "
                f"activation or a callable, such as 'gelu' or 'relu'. "
                f"Received: activation={activation!r}"
            ) from error
        if kernel_initializer is None:
            kernel_initializer = keras.initializers.RandomNormal(stddev=0.02)

        self.units = units
        self.hidden_units = hidden_units
        self.expanded_units = expanded_units
        self.epsilon = float(epsilon)
        self.norm_scale = float(norm_scale)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                "The last axis of the input to `NexusRankDense` must be "
                f"defined. Received: input_shape={input_shape}"
            )
        widths = {
            "hidden": (input_dim, self.hidden_units),
            "expanded": (self.hidden_units, self.expanded_units),
            "output": (self.expanded_units, self.units),
        }
        for stage, shape in widths.items():
            kernel = self.add_weight(
                name=f"{stage}_kernel",
                shape=shape,
                initializer=self.kernel_initializer,
                regularizer=self.kernel_regularizer,
                constraint=self.kernel_constraint,
            )
            setattr(self, f"{stage}_kernel", kernel)
            bias = None
            if self.use_bias:
                bias = self.add_weight(
                    name=f"{stage}_bias",
                    shape=(shape[1],),
                    initializer=self.bias_initializer,
                    regularizer=self.bias_regularizer,
                    constraint=self.bias_constraint,
                )
            setattr(self, f"{stage}_bias", bias)
        self.input_spec = keras.layers.InputSpec(
            min_ndim=2, axes={-1: input_dim}
        )
        self.built = True

    def _project(self, inputs, kernel, bias):
        outputs = ops.matmul(inputs, ops.cast(kernel, self.compute_dtype))
        if bias is not None:
            outputs = outputs + ops.cast(bias, self.compute_dtype)
        return outputs

    def _normalize_and_activate(self, inputs):
        # float32 keeps a float16 sum of squares from overflowing.
        inputs = ops.cast(inputs, statistics_dtype(self.compute_dtype))
        squared_norm = ops.sum(ops.square(inputs), axis=-1, keepdims=True)
        norm = ops.sqrt(ops.maximum(squared_norm, SQUARED_NORM_FLOOR))
        outputs = inputs / (norm + self.epsilon) * self.norm_scale
        return ops.cast(self.activation(outputs), self.compute_dtype)

    def call(self, inputs):
        hidden = self._project(inputs, self.hidden_kernel, self.hidden_bias)
        hidden = self._normalize_and_activate(hidden)

        expanded = self._project(
            hidden, self.expanded_kernel, self.expanded_bias
        )
        expanded = self._normalize_and_activate(expanded)

        return self._project(expanded, self.output_kernel, self.output_bias)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "hidden_units": self.hidden_units,
                "expanded_units": self.expanded_units,
                "activation": keras.activations.serialize(self.activation),
                "epsilon": self.epsilon,
                "norm_scale": self.norm_scale,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "bias_regularizer": keras.regularizers.serialize(
                    self.bias_regularizer
                ),
                "kernel_constraint": keras.constraints.serialize(
                    self.kernel_constraint
                ),
                "bias_constraint": keras.constraints.serialize(
                    self.bias_constraint
                ),
            }
        )
        return config
