"""
Title: The Nexus-Rank layer and exact width growth
Author: keras-nexus contributors
Date created: 2026/12/04
Last modified: 2026/12/04
Description: What `NexusRankDense` computes, how to train it in Keras models, and how to widen a trained layer without changing its outputs.
Accelerator: None
"""

"""
## Introduction

Nexusformer (Zhao et al., "Nexusformer: Nonlinear Attention Expansion for
Stable and Inheritable Transformer Scaling", arXiv 2604.19147, 2026) replaces
the linear projections of a Transformer with a *Nexus-Rank* layer: a
three-stage nonlinear mapping through two progressively wider spaces. The
layer is built so that a trained instance can be made wider *exactly*: the
wider layer starts out computing the very same function, and training then
continues from there instead of from scratch.

This guide covers:

- the five equations of the layer, checked against a NumPy re-implementation,
- why each stage is L2-normalised and multiplied by `sqrt(units)`,
- why new units whose incoming weights are zero leave the output unchanged,
- `keras_nexus.layers.NexusRankDense` in a Sequential and a functional model,
  trained with `model.fit` on a toy regression task,
- widening both inner axes of a trained model with `keras_nexus.grow_model`,
  checking that the outputs did not change, and training on.

The guide runs on JAX, PyTorch and TensorFlow: choose one with the
`KERAS_BACKEND` environment variable. Set `KERAS_NEXUS_QUICK=1` for a smoke
run with tiny sizes (its numbers are not meaningful), and
`KERAS_NEXUS_OUTPUT_DIR` for the directory that receives the figure
(default: `guide_outputs` in the current directory).
"""

"""
## Setup
"""

import math
import os
import time

import matplotlib

# Save figures to files: the guide also runs on machines without a display.
matplotlib.use("Agg")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import keras_nexus  # noqa: E402
from keras_nexus.layers import NexusRankDense  # noqa: E402

QUICK = os.environ.get("KERAS_NEXUS_QUICK", "") not in ("", "0")
OUTPUT_DIR = os.environ.get("KERAS_NEXUS_OUTPUT_DIR", "guide_outputs")
os.makedirs(OUTPUT_DIR, exist_ok=True)

# Quick mode only checks that every cell runs. Full mode trains long enough
# for the loss curves to mean something (one to a few minutes on a CPU).
NUM_TRAIN = 512 if QUICK else 8192
NUM_VALIDATION = 256 if QUICK else 2048
EPOCHS_PER_PHASE = 2 if QUICK else 40
BATCH_SIZE = 64

keras.utils.set_random_seed(0)
print(f"Keras {keras.__version__}, backend {keras.config.backend()}")
print(f"Quick mode: {QUICK}. Outputs go to {os.path.abspath(OUTPUT_DIR)}")
start_time = time.time()

"""
## What the layer computes

A `keras.layers.Dense` layer computes `y = x @ W`. A Nexus-Rank layer with
output width `units` (D_out), hidden width `hidden_units` (M) and expanded
width `expanded_units` (A) computes, for an input `x` of width D:

```
h1 = x @ W_hidden                        # (..., M)
a1 = gelu(h1 / (||h1|| + eps) * s)       # ||.|| is the L2 norm of the last axis
h2 = a1 @ W_expanded                     # (..., A)
a2 = gelu(h2 / (||h2|| + eps) * s)
y  = a2 @ W_output                       # (..., D_out)
```

with `gelu` in its exact (erf) form, `eps = 1e-5`, no biases, and
`s = sqrt(D_out)`. Nexusformer intends `D < M < A`: the input is lifted into
a wider hidden space, then into an even wider expanded space, and projected
back down. The two activations ("dual activations") make the mapping
nonlinear, so the layer can represent functions that a single matrix
cannot.

The cell below builds a layer, reads its three kernels and recomputes the
output with NumPy in float64. The two results agree to float32 precision:
these five lines are all the layer does.
"""


def gelu(x):
    """Exact GELU, x * Phi(x), with Phi the standard normal CDF."""
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def nexus_rank_reference(
    x, hidden_kernel, expanded_kernel, output_kernel, scale
):
    """Compute a Nexus-Rank layer in float64 NumPy, without biases."""
    epsilon = 1e-5

    def normalize(h):
        norm = np.sqrt(np.sum(h**2, axis=-1, keepdims=True))
        return h / (norm + epsilon) * scale

    hidden = gelu(normalize(x @ hidden_kernel))
    expanded = gelu(normalize(hidden @ expanded_kernel))
    return expanded @ output_kernel


layer = NexusRankDense(units=4, hidden_units=8, expanded_units=16)
x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
y = ops.convert_to_numpy(layer(x))

kernels = [
    ops.convert_to_numpy(w).astype("float64")
    for w in (layer.hidden_kernel, layer.expanded_kernel, layer.output_kernel)
]
y_reference = nexus_rank_reference(
    x.astype("float64"), *kernels, layer.norm_scale
)

print("kernel shapes:", [k.shape for k in kernels])
print(f"norm_scale s = {layer.norm_scale:.4f}, sqrt(4) = {math.sqrt(4):.4f}")
print(f"max |layer - NumPy reference| = {np.max(np.abs(y - y_reference)):.2e}")

"""
## Why normalise, and why the scale is `sqrt(units)`

Each normalisation divides `h` by its own length, so `a1` and `a2` do not
depend on how large `x` or the kernels are, only on their direction. Up to
the tiny `eps`, multiplying the input by a positive constant leaves the output
unchanged, which keeps the activations in a fixed range however the
weights drift during training. The scale `s` then sets the length of the
vector that reaches `gelu`: a short vector keeps `gelu` almost linear
(`gelu(z) ~ z / 2` near zero), a long one makes it behave like a ReLU.
"""

y_scaled = ops.convert_to_numpy(layer(10.0 * x))
print(f"max |f(10 x) - f(x)| = {np.max(np.abs(y_scaled - y)):.2e}")

"""
Why `sqrt(units)`, and not `sqrt(M)` or `sqrt(A)`, which a LayerNorm-style
choice would suggest? Because `units` is the one width that growth does not
change. If the scale were tied to `M`, widening `M` would either have to
change the scale (and with it every output), or leave the wider layer with
a scale that a freshly built layer of the same size would not have. With
`s = sqrt(units)`, a widened layer is exactly the layer you would have built
at the larger size, and its scale is untouched.

The layer stores the resolved number in its config (`norm_scale`), so even
a later change of this default could not silently alter a saved model.

## Why zero-started units leave the output unchanged

Widen `M` by appending columns to `W_hidden` that are all zero. Then:

1. `h1` gains entries that are exactly zero, so its L2 norm, and with it
   every old entry of `h1 / ||h1|| * s`, is unchanged;
2. the new entries are still zero after normalisation, and `gelu(0) = 0`,
   so `a1` simply gains zeros;
3. the new rows of `W_expanded` multiply those zeros, so `h2` is unchanged,
   whatever values the new rows hold.

The same argument, one stage later, covers new columns of `W_expanded` and
new rows of `W_output`. The outgoing rows are *not* zero: they are drawn
from the kernel initializer. If both sides of a new unit were zero, its
gradient would be zero too and the unit would never train. With random
outgoing rows, the gradient of the zero incoming columns is non-zero from
the first step on.

Let's check it with the NumPy reference, widening `M` from 8 to 12 and `A`
from 16 to 24:
"""

rng = np.random.default_rng(1)
hidden_kernel, expanded_kernel, output_kernel = kernels
new_hidden = 12
new_expanded = 24

# New columns of W_hidden are zero, and the new rows of W_expanded that
# read them are random. The next stage follows the same rule.
wide_hidden_kernel = np.concatenate(
    [hidden_kernel, np.zeros((6, new_hidden - 8))], axis=1
)
wide_expanded_kernel = np.concatenate(
    [expanded_kernel, 0.02 * rng.normal(size=(new_hidden - 8, 16))], axis=0
)
wide_expanded_kernel = np.concatenate(
    [wide_expanded_kernel, np.zeros((new_hidden, new_expanded - 16))], axis=1
)
wide_output_kernel = np.concatenate(
    [output_kernel, 0.02 * rng.normal(size=(new_expanded - 16, 4))], axis=0
)
wide_kernels = [wide_hidden_kernel, wide_expanded_kernel, wide_output_kernel]

scale = layer.norm_scale
y_wide = nexus_rank_reference(x.astype("float64"), *wide_kernels, scale)
y_wide_rescaled = nexus_rank_reference(
    x.astype("float64"), *wide_kernels, math.sqrt(new_hidden)
)
print(f"zero-started growth, same s:   max |diff| = "
      f"{np.max(np.abs(y_wide - y_reference)):.2e}")
print(f"same weights, s = sqrt(new M): max |diff| = "
      f"{np.max(np.abs(y_wide_rescaled - y_reference)):.2e}")

"""
The first difference is zero up to float64 rounding. The second shows what
a scale that followed the grown width would do to the same weights.

## A toy task

The rest of the guide trains Nexus-Rank layers on a small regression
problem: predict a smooth but nonlinear function of 8 inputs. It is made
with NumPy, so the guide needs no download.
"""


def make_regression_data(num_samples, seed):
    data_rng = np.random.default_rng(seed)
    inputs = data_rng.uniform(-1.0, 1.0, size=(num_samples, 8))
    targets = (
        np.sin(3.0 * inputs[:, 0]) * np.cos(2.0 * inputs[:, 1])
        + inputs[:, 2] * inputs[:, 3]
        + 0.5 * np.sin(4.0 * inputs[:, 4] * inputs[:, 5])
        + 0.3 * inputs[:, 6] ** 2
        - 0.2 * inputs[:, 7]
    )
    return inputs.astype("float32"), targets[:, None].astype("float32")


x_train, y_train = make_regression_data(NUM_TRAIN, seed=10)
x_validation, y_validation = make_regression_data(NUM_VALIDATION, seed=11)
print("train:", x_train.shape, y_train.shape, "target variance:",
      f"{y_train.var():.3f}")

"""
## A Sequential model

`NexusRankDense` is a drop-in replacement for `Dense`. We start narrow on
purpose (`hidden_units=4`, `expanded_units=8`), so that widening it later
has something to add. A plain `Dense` head maps the 16 features to the
prediction.
"""


def compile_model(model):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=3e-3),
        loss="mse",
    )


sequential = keras.Sequential(
    [
        keras.Input(shape=(8,)),
        NexusRankDense(16, hidden_units=4, expanded_units=8, name="nexus"),
        keras.layers.Dense(1, name="head"),
    ],
    name="narrow_sequential",
)
compile_model(sequential)
sequential.summary()

history_narrow = sequential.fit(
    x_train,
    y_train,
    batch_size=BATCH_SIZE,
    epochs=EPOCHS_PER_PHASE,
    validation_data=(x_validation, y_validation),
    verbose=0,
)
print(f"narrow model after {EPOCHS_PER_PHASE} epochs: validation MSE "
      f"{history_narrow.history['val_loss'][-1]:.4f}")

"""
## Growing both axes of the trained model

`keras_nexus.grow_model` rebuilds the model with larger Nexus-Rank layers
and copies the trained weights in, following the rule above: the new
incoming columns are zero and the new outgoing rows come from the layer's
kernel initializer. The original model is not modified. With `verify=True`
(the default) it also runs both models on a random probe batch in inference
mode and raises `keras_nexus.GrowthVerificationError` if any output moved
by more than `atol` (default `1e-5`). The measured difference is in
`grown.growth_report`.

Passing an `int` widens every top-level `NexusRankDense` layer, and a dict by
layer name widens only the named ones (shown below on the functional model).
We also check the outputs ourselves, on the validation set. Expect float32
rounding, around `1e-7`, rather than exact zeros: the wider matrix products
add the same terms, plus zeros, in a different order.
"""

grown = keras_nexus.grow_model(
    sequential, hidden_units=32, expanded_units=64, seed=0
)
print(grown.growth_report.summary())

before = ops.convert_to_numpy(sequential.predict(x_validation, verbose=0))
after = ops.convert_to_numpy(grown.predict(x_validation, verbose=0))
growth_difference = float(np.max(np.abs(after - before)))
print(f"max |grown - original| on {len(x_validation)} validation inputs: "
      f"{growth_difference:.2e}")
if growth_difference > 1e-5:
    raise RuntimeError(
        f"Growth changed the outputs by {growth_difference:.2e}, more than "
        "float32 rounding. This is a bug in grow_model: please report it."
    )

nexus_layer = grown.get_layer("nexus")
fresh_layer = NexusRankDense(16, hidden_units=32, expanded_units=64)
print(f"grown layer: {nexus_layer.hidden_units} hidden, "
      f"{nexus_layer.expanded_units} expanded units, norm_scale "
      f"{nexus_layer.norm_scale:.4f} (a new layer of that size: "
      f"{fresh_layer.norm_scale:.4f})")

"""
The grown model is a new, uncompiled Keras model: compile it (with a fresh
optimizer) and keep training. To see what the extra capacity buys, we also
keep training the narrow model for the same number of epochs and compare.

A fresh Adam starts its moment estimates at zero, so the first few updates
of the grown model are not exactly those the narrow one would have taken.
The progressive trainer in `keras_nexus.training` carries the optimizer
state across growth instead, but here the simpler route is enough.
"""

initial_kernel = ops.convert_to_numpy(nexus_layer.hidden_kernel).copy()
compile_model(grown)

# Both models start the second phase from the same validation loss.
loss_at_growth = sequential.evaluate(x_validation, y_validation, verbose=0)
grown_loss_at_growth = grown.evaluate(x_validation, y_validation, verbose=0)
print(f"validation MSE at growth: narrow {loss_at_growth:.6f}, "
      f"grown {grown_loss_at_growth:.6f}")

history_grown = grown.fit(
    x_train,
    y_train,
    batch_size=BATCH_SIZE,
    epochs=EPOCHS_PER_PHASE,
    validation_data=(x_validation, y_validation),
    verbose=0,
)
history_continued = sequential.fit(
    x_train,
    y_train,
    batch_size=BATCH_SIZE,
    epochs=EPOCHS_PER_PHASE,
    validation_data=(x_validation, y_validation),
    verbose=0,
)

# The columns that started at zero must have moved: they receive gradients
# through the random rows that read them.
trained_kernel = ops.convert_to_numpy(nexus_layer.hidden_kernel)
new_columns_norm = float(np.linalg.norm(trained_kernel[:, 4:]))
initial_columns_norm = float(np.linalg.norm(initial_kernel[:, 4:]))
print(f"norm of the new W_hidden columns: {initial_columns_norm:.2e} before "
      f"training, {new_columns_norm:.2e} after")

print(f"validation MSE after {2 * EPOCHS_PER_PHASE} epochs:")
print(f"  narrow all along:        "
      f"{history_continued.history['val_loss'][-1]:.4f}")
print(f"  grown after epoch {EPOCHS_PER_PHASE:>3}:   "
      f"{history_grown.history['val_loss'][-1]:.4f}")

"""
## The same in a functional model

In a functional model, `NexusRankDense` is used like `Dense`: here two of
them form the bodies of two residual blocks, `x + f(x)`, between a `Dense`
embedding and a `Dense` readout. Like `Dense`, the layer acts on the last
axis, so it also takes sequences `(batch, steps, features)`:
"""

print("sequence input:", NexusRankDense(4, 8, 16)(np.ones((2, 5, 3))).shape)

embedding_inputs = keras.Input(shape=(8,), name="features")
features = keras.layers.Dense(16, name="embed")(embedding_inputs)
for block in (1, 2):
    update = NexusRankDense(
        16, hidden_units=24, expanded_units=32, name=f"block_{block}"
    )(features)
    features = keras.layers.Add(name=f"residual_{block}")([features, update])
readout = keras.layers.Dense(1, name="readout")(features)
functional = keras.Model(embedding_inputs, readout, name="residual_functional")
compile_model(functional)

history_functional = functional.fit(
    x_train,
    y_train,
    batch_size=BATCH_SIZE,
    epochs=EPOCHS_PER_PHASE,
    validation_data=(x_validation, y_validation),
    verbose=0,
)

"""
Dicts keyed by layer name widen only the named layers: `block_2` grows,
`block_1` keeps its widths.
"""

grown_functional = keras_nexus.grow_model(
    functional,
    hidden_units={"block_2": 48},
    expanded_units={"block_2": 64},
    seed=0,
)
print(grown_functional.growth_report.summary())

before = ops.convert_to_numpy(functional.predict(x_validation, verbose=0))
after = ops.convert_to_numpy(grown_functional.predict(x_validation, verbose=0))
functional_difference = float(np.max(np.abs(after - before)))
print(f"max |grown - original| (functional): {functional_difference:.2e}")
if functional_difference > 1e-5:
    raise RuntimeError(
        f"Growth changed the outputs by {functional_difference:.2e}, more than "
        "float32 rounding. This is a bug in grow_model: please report it."
    )
for name in ("block_1", "block_2"):
    grown_layer = grown_functional.get_layer(name)
    print(f"{name}: hidden_units={grown_layer.hidden_units}, "
          f"expanded_units={grown_layer.expanded_units}")

compile_model(grown_functional)
history_functional_grown = grown_functional.fit(
    x_train,
    y_train,
    batch_size=BATCH_SIZE,
    epochs=EPOCHS_PER_PHASE,
    validation_data=(x_validation, y_validation),
    verbose=0,
)
print(f"functional model, validation MSE: "
      f"{history_functional.history['val_loss'][-1]:.4f} before growth, "
      f"{history_functional_grown.history['val_loss'][-1]:.4f} after "
      f"{EPOCHS_PER_PHASE} more epochs")

"""
## The loss curves

Growth happens at the dashed line. Both second-phase curves start from the
loss measured at growth, which is the same for both models: the grown model
loses nothing it had learned, and its extra units start to pay off within
the first epoch. The narrow model, trained on for as long, is the
comparison.
"""

epochs_first = np.arange(1, EPOCHS_PER_PHASE + 1)
# The second phase starts at the growth point, epoch EPOCHS_PER_PHASE.
epochs_second = np.arange(EPOCHS_PER_PHASE, 2 * EPOCHS_PER_PHASE + 1)
figure, axis = plt.subplots(figsize=(7, 4))
axis.plot(epochs_first, history_narrow.history["val_loss"], color="tab:blue",
          label="narrow (M=4, A=8)")
axis.plot(epochs_second,
          [loss_at_growth, *history_continued.history["val_loss"]],
          color="tab:blue", linestyle=":", label="narrow, trained on")
axis.plot(epochs_second,
          [grown_loss_at_growth, *history_grown.history["val_loss"]],
          color="tab:red", label="grown to M=32, A=64")
axis.axvline(EPOCHS_PER_PHASE, color="gray", linestyle="--")
axis.set_xlabel("epoch")
axis.set_ylabel("validation MSE")
axis.set_yscale("log")
axis.set_title(f"Sequential model, backend {keras.config.backend()}")
axis.legend()
figure.tight_layout()
figure_path = os.path.join(OUTPUT_DIR, "nexus_rank_dense_growth.png")
figure.savefig(figure_path, dpi=120)
plt.close(figure)
print(f"Wrote {figure_path}")

print(f"Finished in {time.time() - start_time:.1f} s")

"""
## Summary

- A Nexus-Rank layer is `Dense` replaced by three matrix products with an
  L2 normalisation, a fixed scale `sqrt(units)` and a GELU between them.
- The scale depends only on `units`, and zero incoming weights produce
  exact zeros that `gelu` keeps at zero, so widening the hidden and the
  expanded axes leaves the outputs unchanged.
- `keras_nexus.grow_model(model, hidden_units=..., expanded_units=...)`
  performs that widening on Sequential and functional models and verifies
  it. The grown model then trains like any Keras model.

The next guide, `train_nexusformer.py`, builds a whole Nexusformer language
model out of these layers.
"""
