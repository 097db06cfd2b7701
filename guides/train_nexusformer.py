"""
Title: Training a Nexusformer language model
Author: keras-nexus contributors
Date created: 2026/12/04
Last modified: 2026/12/04
Description: Build a byte-level Nexusformer, train it on the bundled Shakespeare text with `model.fit`, generate text, save and reload it.
Accelerator: None
"""

"""
## Introduction

`keras_nexus.models` follows the layout of a KerasHub model family:

- `NexusformerBackbone`: the decoder stack, token ids in, hidden states out;
- `NexusformerCausalLM`: the backbone plus a language-model head, with
  `fit()` and `generate()`;
- `NexusformerTokenizer`: one token per UTF-8 byte (256 ids), so it needs no
  vocabulary file;
- `NexusformerCausalLMPreprocessor`: strings to padded token ids and back.

In a Nexusformer, the query, key, value and output projections of attention
and the feed-forward network are `NexusRankDense` layers (see the guide
`nexus_rank_dense.py`) instead of plain matrices. Everything else is a
standard pre-norm decoder: RMS normalisation, rotary position embeddings,
causal grouped-query attention and an untied output head.

This guide trains a small Nexusformer on the tiny Shakespeare corpus that
ships with keras-nexus, generates text with two samplers, saves the model to
a `.keras` file and checks that the reloaded model computes the same
outputs.

It runs on JAX, PyTorch and TensorFlow: choose one with `KERAS_BACKEND`.
`KERAS_NEXUS_QUICK=1` runs a smoke test with a tiny model and a few steps
(its text is gibberish). `KERAS_NEXUS_OUTPUT_DIR` sets where the figure, the
samples and the model file go (default: `guide_outputs` in the current
directory).
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
import keras_hub  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from keras_nexus.data import TextCorpus  # noqa: E402
from keras_nexus.models import NexusformerBackbone  # noqa: E402
from keras_nexus.models import NexusformerCausalLM  # noqa: E402
from keras_nexus.models import NexusformerCausalLMPreprocessor  # noqa: E402
from keras_nexus.models import NexusformerTokenizer  # noqa: E402

QUICK = os.environ.get("KERAS_NEXUS_QUICK", "") not in ("", "0")
OUTPUT_DIR = os.environ.get("KERAS_NEXUS_OUTPUT_DIR", "guide_outputs")
os.makedirs(OUTPUT_DIR, exist_ok=True)

if QUICK:
    # A smoke test: every cell runs, nothing is learned.
    SEQUENCE_LENGTH = 32
    BATCH_SIZE = 8
    MODEL_SIZE = dict(num_layers=1, hidden_dim=16, ffn_expanded_dim=64)
    EPOCHS = 2
    STEPS_PER_EPOCH = 3
    VALIDATION_STEPS = 2
else:
    # 600 steps of 16 x 128 tokens, 1.2 million in all, a bit more than one
    # pass over the training text. For about the same number of tokens, 320
    # steps of 32 sequences ended at a higher validation loss when measured
    # on JAX. Expect several minutes on a CPU.
    SEQUENCE_LENGTH = 128
    BATCH_SIZE = 16
    MODEL_SIZE = dict(num_layers=2, hidden_dim=64, ffn_expanded_dim=256)
    EPOCHS = 10
    STEPS_PER_EPOCH = 60
    VALIDATION_STEPS = 20

keras.utils.set_random_seed(0)
print(f"Keras {keras.__version__}, KerasHub {keras_hub.__version__}, "
      f"backend {keras.config.backend()}")
print(f"Quick mode: {QUICK}. Outputs go to {os.path.abspath(OUTPUT_DIR)}")
start_time = time.time()

"""
## The data

`TextCorpus.from_paths(None, ...)` reads the bundled corpus (about 1.1 MB of
Shakespeare's plays) and encodes it as UTF-8 byte values, which are exactly
the ids of `NexusformerTokenizer`. The last 10% of the text is held out for
validation. A contiguous split, rather than random windows, keeps every
validation window out of the training text.

`train_dataset` cuts the text into windows of `sequence_length + 1` bytes.
The first `sequence_length` bytes of a window are the input and the last
`sequence_length` are the labels, so the label at position `t` is the byte
that follows input position `t`. Both datasets are `tf.data` pipelines,
which `model.fit` reads on every Keras backend. `repeat=True` makes the
training set endless, so `fit` counts steps with `steps_per_epoch`.
"""

corpus = TextCorpus.from_paths(None, sequence_length=SEQUENCE_LENGTH)
print(f"{corpus.num_train_tokens:,} training and "
      f"{corpus.num_validation_tokens:,} validation tokens (bytes)")

train_dataset = corpus.train_dataset(
    sequence_length=SEQUENCE_LENGTH, batch_size=BATCH_SIZE, seed=0, repeat=True
)
validation_dataset = corpus.validation_dataset(
    sequence_length=SEQUENCE_LENGTH, batch_size=BATCH_SIZE
)

tokenizer = NexusformerTokenizer()
x_batch, y_batch = next(iter(train_dataset))
print("x:", {key: tuple(value.shape) for key, value in x_batch.items()},
      "y:", tuple(y_batch.shape))
first_input = tokenizer.detokenize(x_batch["token_ids"][0].numpy())
first_labels = tokenizer.detokenize(y_batch[0].numpy())
print("input :", repr(first_input)[:72])
print("labels:", repr(first_labels)[:72])

"""
## The backbone

The widths of a Nexusformer:

- `hidden_dim` (D) is the width of the residual stream;
- `num_query_heads` and `num_key_value_heads` set grouped-query attention:
  here every key/value head serves two query heads, which halves the
  key/value cache used by `generate()`;
- `nexus_hidden_dim` and `nexus_expanded_dim` are the hidden and expanded
  widths (M, A) of the four attention projections, by default 2D and 4D;
- `ffn_hidden_dim` and `ffn_expanded_dim` are those of the feed-forward
  layer. The default `ffn_expanded_dim` is 8D/3 rounded up to a multiple of
  256, which is large next to a tiny D, so this guide sets it.

The vocabulary has 256 entries, one per byte value.
"""

backbone = NexusformerBackbone(
    vocabulary_size=tokenizer.vocabulary_size(),
    num_query_heads=4,
    num_key_value_heads=2,
    **MODEL_SIZE,
)
backbone.summary()
print(f"backbone parameters: {backbone.count_params():,}")

"""
## Training with the preprocessor detached

A KerasHub task such as `NexusformerCausalLM` can hold a `preprocessor`.
When it does, `fit()`, `evaluate()` and `predict()` pass every batch through
it first (KerasHub's `Task.preprocess_samples`). That suits raw strings: the
preprocessor tokenizes them, adds start and end tokens and pads. Our
datasets, however, already yield `(token-id dict, labels)` batches. Passed
through a preprocessor, the dict would reach the tokenizer, which expects
strings, and `fit()` would fail. Tokenizing once for the whole corpus is
also much faster than tokenizing each batch of strings.

So we train a `NexusformerCausalLM` built with `preprocessor=None`: it takes
and returns token-id dicts. For generation, later, we wrap the *same*
backbone object in a second `NexusformerCausalLM` that has a preprocessor.
Both tasks share the backbone's variables, so nothing is copied. Setting
`causal_lm.preprocessor = ...` after training would work as well, but two
objects keep the training model and the text-in, text-out model apart.

`CausalLM.compile` defaults to a sparse categorical cross-entropy on logits
and a token accuracy metric. Its default optimizer (Adam at 2e-5) is meant
for fine-tuning, so we pass AdamW with a warm-up and a cosine decay.
"""

causal_lm = NexusformerCausalLM(backbone, preprocessor=None)

total_steps = EPOCHS * STEPS_PER_EPOCH
warmup_steps = max(1, total_steps // 10)
# The decay starts after the warm-up and ends with the last step, at 10%
# of the peak learning rate.
learning_rate = keras.optimizers.schedules.CosineDecay(
    initial_learning_rate=0.0,
    warmup_target=3e-3,
    warmup_steps=warmup_steps,
    decay_steps=total_steps - warmup_steps,
    alpha=0.1,
)
causal_lm.compile(
    optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=0.01),
)

# Before training, every byte is about equally likely: the loss is close
# to ln(256) = 5.55 nats.
initial_loss, _ = causal_lm.evaluate(
    validation_dataset, steps=VALIDATION_STEPS, verbose=0
)
print(f"validation loss before training: {initial_loss:.3f}")

history = causal_lm.fit(
    train_dataset,
    epochs=EPOCHS,
    steps_per_epoch=STEPS_PER_EPOCH,
    validation_data=validation_dataset,
    validation_steps=VALIDATION_STEPS,
    verbose=2,
)

"""
The loss is a cross-entropy in nats per byte. Divided by `ln 2` it becomes
bits per byte, the usual unit for byte-level models. To judge the number,
we compare it with two count-based models measured on the same split: a
unigram model, which predicts every byte from its frequency alone, and a bigram
model, which predicts each byte from the one before it. Both use add-one
smoothing, are counted on the training tokens and scored on the validation
tokens.
"""


def ngram_cross_entropy(train_tokens, validation_tokens, order):
    """Return the validation cross-entropy, in nats, of an add-one n-gram."""
    if order == 1:
        counts = np.bincount(train_tokens, minlength=256) + 1.0
        probabilities = counts / counts.sum()
        return float(-np.mean(np.log(probabilities[validation_tokens])))
    pair_ids = train_tokens[:-1] * 256 + train_tokens[1:]
    counts = np.bincount(pair_ids, minlength=256 * 256).reshape(256, 256) + 1.0
    probabilities = counts / counts.sum(axis=1, keepdims=True)
    previous, following = validation_tokens[:-1], validation_tokens[1:]
    return float(-np.mean(np.log(probabilities[previous, following])))


baselines = {
    name: ngram_cross_entropy(
        corpus.train_tokens, corpus.validation_tokens, order
    )
    for name, order in (("unigram", 1), ("bigram", 2))
}
validation_loss = history.history["val_loss"][-1]
print(f"after {total_steps} steps "
      f"({total_steps * BATCH_SIZE * SEQUENCE_LENGTH:,} training tokens):")
for name, loss in [("Nexusformer", validation_loss), *baselines.items()]:
    print(f"  {name:<12} validation {loss:.3f} nats/byte = "
          f"{loss / math.log(2):.3f} bits/byte, "
          f"perplexity {math.exp(loss):.2f}")

steps = np.arange(1, EPOCHS + 1) * STEPS_PER_EPOCH
figure, axis = plt.subplots(figsize=(7, 4))
axis.plot(steps, history.history["loss"], marker="o", label="training")
axis.plot(steps, history.history["val_loss"], marker="o", label="validation")
axis.axhline(math.log(256), color="gray", linestyle="--", label="uniform guess")
for (name, loss), style in zip(baselines.items(), (":", "-.")):
    axis.axhline(loss, color="black", linestyle=style, label=f"{name} model")
axis.set_xlabel("training step")
axis.set_ylabel("cross-entropy (nats per byte)")
axis.set_title(
    f"Nexusformer on tiny Shakespeare, backend {keras.config.backend()}"
)
axis.legend()
figure.tight_layout()
figure_path = os.path.join(OUTPUT_DIR, "train_nexusformer_loss.png")
figure.savefig(figure_path, dpi=120)
plt.close(figure)
print(f"Wrote {figure_path}")

"""
## Generating text

The generation model shares the trained backbone and adds a
`NexusformerCausalLMPreprocessor`. `generate()` tokenizes the prompt,
prepends the start token, pads it to `max_length` and fills the padding one
token at a time, reusing a key/value cache so that each new token costs one
position, not a pass over the whole sequence. The sampler, chosen in
`compile(sampler=...)`, turns each step's logits into a token:

- `"greedy"` always takes the most likely byte. It is deterministic, and
  small models fall into loops with it.
- `TopKSampler(k)` draws from the `k` most likely bytes, in proportion to
  their probabilities: more varied text, reproducible with a seed.

Three details of this setup:

- The training windows start anywhere in the text and contain no start
  token, so the start token that `generate()` prepends never occurred in
  training. Its embedding is still close to its random initial value.
- The text contains no end token either, so generation always runs to
  `max_length`.
- `max_length` is the training sequence length. Rotary position embeddings
  would let the model run past it, but it never learned to attend over
  longer distances.
"""

preprocessor = NexusformerCausalLMPreprocessor(
    tokenizer, sequence_length=SEQUENCE_LENGTH
)
generator = NexusformerCausalLM(backbone, preprocessor=preprocessor)
print("the generator shares the trained backbone:",
      generator.backbone is backbone)

prompt = "ROMEO:\n"
generator.compile(sampler="greedy")
greedy_text = generator.generate(prompt, max_length=SEQUENCE_LENGTH)
print("--- greedy ---")
print(greedy_text)

generator.compile(sampler=keras_hub.samplers.TopKSampler(k=10, seed=0))
top_k_text = generator.generate(prompt, max_length=SEQUENCE_LENGTH)
print("--- top-k, k=10 ---")
print(top_k_text)

samples_path = os.path.join(OUTPUT_DIR, "train_nexusformer_samples.txt")
with open(samples_path, "w", encoding="utf-8") as samples_file:
    samples_file.write(f"backend: {keras.config.backend()}\n")
    samples_file.write(f"--- greedy ---\n{greedy_text}\n")
    samples_file.write(f"--- top-k, k=10 ---\n{top_k_text}\n")
print(f"Wrote {samples_path}")

"""
## Saving and loading

`model.save` writes the whole task, backbone, preprocessor and tokenizer
included, to one `.keras` file, and `keras.saving.load_model` rebuilds it. The
Nexusformer classes are registered as Keras serializables, so loading needs
only `import keras_nexus` (done above through `keras_nexus.models`).
Keras warns while loading that `compile()` was not called: `CausalLM` has
its own `compile()`, which Keras does not replay. The sampler is one of its
settings, so we compile the loaded model ourselves.

We compare the logits of both models on a validation batch, then their
greedy generations.
"""

model_path = os.path.join(OUTPUT_DIR, "train_nexusformer.keras")
generator.save(model_path)
print(f"Wrote {model_path}")
print(f"model file size: {os.path.getsize(model_path) / 1e6:.1f} MB")

restored = keras.saving.load_model(model_path)
print("restored:", type(restored).__name__, "with",
      type(restored.preprocessor).__name__)

x_validation, _ = next(iter(validation_dataset))
logits = ops.convert_to_numpy(generator(x_validation))
restored_logits = ops.convert_to_numpy(restored(x_validation))
logits_difference = float(np.max(np.abs(restored_logits - logits)))
print(f"max |restored - original| logits: {logits_difference:.2e}")

restored.compile(sampler="greedy")
restored_text = restored.generate(prompt, max_length=SEQUENCE_LENGTH)
print("greedy generations equal:", restored_text == greedy_text)
if logits_difference != 0.0 or restored_text != greedy_text:
    raise RuntimeError(
        "the reloaded model differs from the saved one: max logit "
        f"difference {logits_difference:.2e}, generations equal: "
        f"{restored_text == greedy_text}"
    )

print(f"Finished in {time.time() - start_time:.1f} s")

"""
## Summary

- Pre-tokenized `tf.data` pipelines from `keras_nexus.data` train a
  `NexusformerCausalLM` built with `preprocessor=None`, through a plain
  `model.fit`.
- A second `NexusformerCausalLM` around the same backbone, with a
  `NexusformerCausalLMPreprocessor`, turns strings into strings with
  `generate()`. The sampler is chosen in `compile(sampler=...)`.
- `save()` and `keras.saving.load_model()` round-trip the whole task
  exactly.

A trained model like this one can be made larger without changing its
outputs, for example `keras_nexus.grow_model(generator, num_layers=3,
hidden_dim=96)`, and trained on: that is what Nexusformer's progressive
scaling is built on.
"""
