"""
Title: Progressive scaling: train small, grow exactly, keep training
Author: keras-nexus contributors
Date created: 2026/12/04
Last modified: 2026/12/04
Description: Nexusformer's central idea end to end: grow a trained model along each axis without changing its outputs, keep training, and compare with a model trained from scratch at the final size.
Accelerator: None
"""

"""
## Introduction

The point of Nexusformer is growth. A Nexus-Rank layer normalises each of
its two inner stages by an L2 norm and multiplies by a fixed scale, so units
whose incoming weights are zero add nothing to either the norm or the next
stage. A whole model can therefore be made larger by adding such units (and
whole blocks whose output weights are zero): the larger model starts out
computing exactly what the smaller one computed, and training continues
from there rather than from scratch.

This guide:

1. trains a small `NexusformerCausalLM` on the bundled Shakespeare text,
2. grows it along each axis `keras_nexus.grow_model` supports, explaining
   why each one is exact, and checks the outputs,
3. keeps training the grown model, with the optimizer state carried over,
4. trains a model of the final size from scratch on the same data, for the
   same total number of steps, and compares validation losses and compute,
5. runs the same schedule through `keras_nexus.training.ProgressiveTrainer`,
   which is what the `keras-nexus train` command uses.

Choose the backend with `KERAS_BACKEND`. `KERAS_NEXUS_QUICK=1` runs tiny
sizes (a smoke test whose numbers mean nothing); `KERAS_NEXUS_OUTPUT_DIR`
sets where the loss plot goes (default `guide_outputs`).
"""

"""
## Setup
"""

import os
import time

import matplotlib

# Files only: the guide also runs on machines without a display.
matplotlib.use("Agg")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import keras_nexus  # noqa: E402
from keras_nexus.data import TextCorpus  # noqa: E402
from keras_nexus.flops import training_flops  # noqa: E402
from keras_nexus.models import NexusformerBackbone  # noqa: E402
from keras_nexus.models import NexusformerCausalLM  # noqa: E402
from keras_nexus.training import ProgressiveTrainer  # noqa: E402
from keras_nexus.training import Schedule  # noqa: E402
from keras_nexus.training import transfer_optimizer_state  # noqa: E402

QUICK = os.environ.get("KERAS_NEXUS_QUICK", "") not in ("", "0")
OUTPUT_DIR = os.environ.get("KERAS_NEXUS_OUTPUT_DIR", "guide_outputs")
os.makedirs(OUTPUT_DIR, exist_ok=True)

WIDTH = 16 if QUICK else 64
SEQUENCE_LENGTH = 32 if QUICK else 128
BATCH_SIZE = 4 if QUICK else 16
STEPS_PER_STAGE = 4 if QUICK else 300
EVAL_BATCHES = 1 if QUICK else 16
# Steps per Keras "epoch": each epoch adds one point to the loss curves.
LOG_EVERY = max(STEPS_PER_STAGE // 10, 1)

keras.utils.set_random_seed(0)
print(f"Keras {keras.__version__}, backend {keras.config.backend()}")
print(f"Quick mode: {QUICK}. Outputs go to {os.path.abspath(OUTPUT_DIR)}")
start_time = time.time()

"""
## Data

`TextCorpus` reads the bundled Shakespeare (about 1.1 MB), turns it into
byte ids (one token per UTF-8 byte) and holds out the last 10% for
validation. Its datasets yield `(inputs, next_tokens)` batches of token ids,
so the model is trained without a preprocessor.
"""

corpus = TextCorpus.from_paths(sequence_length=SEQUENCE_LENGTH)
validation = corpus.validation_dataset(SEQUENCE_LENGTH, BATCH_SIZE).take(
    EVAL_BATCHES
)
print(f"{corpus.num_train_tokens:,} training tokens")


def training_batches(first_step):
    """Return the seeded batch stream from `first_step` on, shared by all models."""
    stream = corpus.train_dataset(
        SEQUENCE_LENGTH, BATCH_SIZE, seed=0, repeat=True
    )
    return stream.skip(first_step)


def compile_model(model, optimizer):
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[],
    )


def validation_loss(model):
    return model.evaluate(validation, verbose=0, return_dict=True)["loss"]


"""
## Stage 1: a small model

Two decoder blocks, residual width 64 (16 in quick mode), four query heads
sharing two key/value heads. Every projection is a Nexus-Rank layer: the
attention projections go through a hidden width of 1.5x and an expanded
width of 2x the residual width, the feed-forward layer through 2x and 4x.
"""

small_config = dict(
    vocabulary_size=256,
    num_layers=2,
    num_query_heads=4,
    num_key_value_heads=2,
    hidden_dim=WIDTH,
    nexus_hidden_dim=WIDTH * 3 // 2,
    nexus_expanded_dim=WIDTH * 2,
    ffn_hidden_dim=WIDTH * 2,
    ffn_expanded_dim=WIDTH * 4,
)
TOTAL_STEPS = 2 * STEPS_PER_STAGE
learning_rate = keras.optimizers.schedules.CosineDecay(
    0.0,
    decay_steps=TOTAL_STEPS,
    warmup_target=2e-3,
    warmup_steps=min(20, TOTAL_STEPS // 4),
    alpha=0.1,
)


def make_optimizer():
    return keras.optimizers.AdamW(learning_rate, beta_2=0.95, global_clipnorm=1)


small = NexusformerCausalLM(NexusformerBackbone(**small_config))
compile_model(small, make_optimizer())
history_small = small.fit(
    training_batches(0),
    steps_per_epoch=LOG_EVERY,
    epochs=STEPS_PER_STAGE // LOG_EVERY,
    verbose=2,
)
small_loss = validation_loss(small)
print(f"Small model: {small.count_params():,} parameters, "
      f"validation loss {small_loss:.4f}")

"""
## Growing, axis by axis

`keras_nexus.grow_model` builds a larger model, copies the old weights in,
and fills the new weights so that the function is unchanged. For each new
unit, one side is zero and the other is drawn from the layer's initializer:
zero on both sides would never receive a gradient.

- **Nexus-Rank widths** (`nexus_hidden_dim`, `nexus_expanded_dim`,
  `ffn_hidden_dim`, `ffn_expanded_dim`, the paper's own axes): the new
  columns of the kernel computing a stage are zero, so the new units are 0.
  Zeros change neither the stage's L2 norm nor, through `gelu(0) = 0`, the
  next stage. The normalisation scale is a fixed number (`sqrt` of the
  output width), not a function of the inner widths.
- **Depth** (`num_layers`): a new block's two output kernels, which write to
  the residual stream, are zero, so the block adds zero.
- **Residual width** (`hidden_dim`): new embedding columns and new output
  columns are zero, so the new residual features stay zero. Each RMS norm
  then gets a smaller mean square, which the growth undoes by scaling its
  gains by `sqrt(D / D')` and its epsilon by `D / D'`.
- **Heads** (`num_query_heads`, `num_key_value_heads`, with `head_dim`
  fixed): new key/value heads produce zero values; old query heads are
  placed so that each keeps reading its old key/value head.

We grow one axis at a time on the trained model and print the largest
output difference that `grow_model` measured.
"""

for axis, value in [
    ("nexus_hidden_dim", small_config["nexus_hidden_dim"] * 3 // 2),
    ("nexus_expanded_dim", small_config["nexus_expanded_dim"] * 3 // 2),
    ("ffn_hidden_dim", small_config["ffn_hidden_dim"] * 3 // 2),
    ("ffn_expanded_dim", small_config["ffn_expanded_dim"] * 3 // 2),
    ("num_layers", 3),
    ("hidden_dim", WIDTH * 3 // 2),
    ("num_query_heads", 6),
]:
    grown = keras_nexus.grow_model(small, **{axis: value})
    report = grown.growth_report
    print(f"{axis:>20}: parameters {report.old_parameters:,} -> "
          f"{report.new_parameters:,}, max |diff| {report.max_abs_diff:.1e}")

"""
`head_dim` is the one axis that cannot grow: the rotary frequencies and the
`1 / sqrt(head_dim)` score scale depend on it, so no padding keeps the
attention scores equal. `grow_model` rejects it with an error that names
what to grow instead:
"""

try:
    keras_nexus.grow_model(small, head_dim=2 * small.backbone.head_dim)
except ValueError as error:
    print(f"ValueError: {error}")

"""
## Stage 2: grow along the paper's axes, then keep training

For the real run we grow the four Nexus-Rank widths by 1.5x and add one
block, the same growth as the default `keras-nexus train` schedule. The
validation loss before and after growth must agree: growth is exact.

The AdamW moments of old weights move into the grown model's optimizer with
their weights (`transfer_optimizer_state`), new weights start with zero
moments, and the step counter continues, so the learning-rate schedule goes
on rather than warming up again.
"""

grow_request = dict(
    num_layers=3,
    nexus_hidden_dim=small_config["nexus_hidden_dim"] * 3 // 2,
    nexus_expanded_dim=small_config["nexus_expanded_dim"] * 3 // 2,
    ffn_hidden_dim=small_config["ffn_hidden_dim"] * 3 // 2,
    ffn_expanded_dim=small_config["ffn_expanded_dim"] * 3 // 2,
)
large = keras_nexus.grow_model(small, **grow_request)
optimizer = transfer_optimizer_state(
    small, large, large.growth_report.transfers
)
compile_model(large, optimizer)
after_growth = validation_loss(large)
print(f"Validation loss before growth {small_loss:.6f}, "
      f"after growth {after_growth:.6f}")

history_large = large.fit(
    training_batches(STEPS_PER_STAGE),
    steps_per_epoch=LOG_EVERY,
    epochs=STEPS_PER_STAGE // LOG_EVERY,
    verbose=2,
)
progressive_loss = validation_loss(large)
print(f"Grown model: {large.count_params():,} parameters, "
      f"validation loss {progressive_loss:.4f}")

"""
## The baseline: the final size, from scratch

Same data, same order, same optimizer recipe, same total number of steps.
Compute is counted with `keras_nexus.flops.training_flops`, an analytic
count of the matrix multiplications of a training step (forward and
backward).
"""

scratch = NexusformerCausalLM(
    NexusformerBackbone(**{**small_config, **grow_request})
)
compile_model(scratch, make_optimizer())
history_scratch = scratch.fit(
    training_batches(0),
    steps_per_epoch=LOG_EVERY,
    epochs=TOTAL_STEPS // LOG_EVERY,
    verbose=2,
)
scratch_loss = validation_loss(scratch)


def run_flops(model, steps):
    per_step = training_flops(
        model.backbone.get_config(), SEQUENCE_LENGTH, BATCH_SIZE
    )
    return per_step * steps


progressive_flops = run_flops(small, STEPS_PER_STAGE) + run_flops(
    large, STEPS_PER_STAGE
)
scratch_flops = run_flops(scratch, TOTAL_STEPS)
print(f"Progressive: validation loss {progressive_loss:.4f} with "
      f"{progressive_flops:.3e} training FLOPs")
print(f"From scratch: validation loss {scratch_loss:.4f} with "
      f"{scratch_flops:.3e} training FLOPs")
print(f"The progressive run used {1 - progressive_flops / scratch_flops:.0%} "
      "less compute.")

"""
Whether the progressive run also reaches the scratch run's loss depends on
the budget: with few steps the small model's head start matters most, with
many steps the larger model's capacity does. `benchmarks/progressive_scaling.py`
measures the compute needed to reach the same loss, which is the paper's
claim, next to Tokenformer and a standard Transformer.

## The same schedule with the trainer

`ProgressiveTrainer` packages the steps above: stages of `model.fit`, exact
growth with the validation loss checked across it, optimizer state carried
over, a checkpoint after every stage (so `run(resume=True)` continues an
interrupted run), `metrics.json` and a loss plot.
"""

schedule = Schedule.from_dict(
    {
        "model": {k: v for k, v in small_config.items() if k != "vocabulary_size"},
        "sequence_length": SEQUENCE_LENGTH,
        "batch_size": BATCH_SIZE,
        "eval_batches": EVAL_BATCHES,
        "log_every": LOG_EVERY,
        "stages": [
            {"steps": STEPS_PER_STAGE},
            {"steps": STEPS_PER_STAGE, "grow": grow_request},
        ],
    }
)
run_dir = os.path.join(OUTPUT_DIR, "progressive_run")
metrics = ProgressiveTrainer(schedule, run_dir, verbose=0).run(overwrite=True)
for stage in metrics["stages"]:
    jump = ""
    if "val_loss_after_growth" in stage:
        jump = (f", loss across growth {stage['val_loss_before_growth']:.5f}"
                f" -> {stage['val_loss_after_growth']:.5f}")
    print(f"Stage {stage['index']}: {stage['parameters']:,} parameters, "
          f"validation loss {stage['val_loss']:.4f}{jump}")
for name in ("metrics.json", "loss.png", "model.keras"):
    print(f"Wrote {os.path.join(run_dir, name)}")

"""
## Loss curves

Training loss against training tokens for both runs of this guide, with
the growth point marked.
"""

tokens_per_step = BATCH_SIZE * SEQUENCE_LENGTH
progressive_curve = history_small.history["loss"] + history_large.history["loss"]
scratch_curve = history_scratch.history["loss"]
figure, axes = plt.subplots(figsize=(7, 4))
axes.plot(
    [(i + 1) * LOG_EVERY * tokens_per_step for i in range(len(progressive_curve))],
    progressive_curve,
    label="progressive: small, then grown",
)
axes.plot(
    [(i + 1) * LOG_EVERY * tokens_per_step for i in range(len(scratch_curve))],
    scratch_curve,
    label="final size from scratch",
)
axes.axvline(STEPS_PER_STAGE * tokens_per_step, color="grey", linestyle="--")
axes.set_xlabel("training tokens")
axes.set_ylabel("training loss (nats per byte)")
axes.legend()
figure.tight_layout()
plot_path = os.path.join(OUTPUT_DIR, "progressive_scaling.png")
figure.savefig(plot_path, dpi=120)
plt.close(figure)
print(f"Wrote {plot_path}")
print(f"Guide finished in {time.time() - start_time:.0f} s")
