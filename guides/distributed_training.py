"""
Title: Distributed training: data and model parallelism
Author: keras-nexus contributors
Date created: 2026/12/04
Last modified: 2026/12/04
Description: Train and grow a Nexusformer with `keras.distribution` on a (2, 4) device mesh, using the layout map that `NexusformerBackbone.get_layout_map` returns.
Accelerator: None
"""

"""
## Introduction

keras-nexus models are plain Keras 3 models, so they are distributed with
Keras's own `keras.distribution` API. This guide:

1. simulates 8 devices on one CPU, so that it runs on any machine,
2. trains a tiny `NexusformerCausalLM` with `DataParallel`: every device
   keeps all weights and reads one eighth of each batch,
3. builds a `DeviceMesh` of shape (2, 4) with axes `("batch", "model")`,
   splits the kernels with `NexusformerBackbone.get_layout_map` and trains
   with `ModelParallel`, printing how each kernel is split,
4. grows the trained model with `keras_nexus.grow_model` inside the same
   scope and checks that the grown kernels are split too,
5. lists what changes on a cluster with several hosts.

In Keras 3.15.1 only the JAX backend implements `keras.distribution`. On
TensorFlow and torch the guide builds the layout map, explains what to use
instead, and skips the training sections.

`KERAS_NEXUS_QUICK=1` runs tiny sizes (a smoke test whose numbers mean
nothing), and `KERAS_NEXUS_OUTPUT_DIR` sets where the JSON summary goes
(default `guide_outputs`).
"""

"""
## Setup

JAX decides how many devices it has when it initialises its backend, which
happens the first time any code requests a device. Keras does that while it
is imported, so the flag that splits the host CPU into 8 virtual devices
must be set before `import keras`. `setdefault` keeps a value you set
yourself, for example the device count of a real machine. On a machine with
GPUs or TPUs the flag only affects the CPU platform, and JAX uses the
accelerators.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import json  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_nexus  # noqa: E402
from keras_nexus.data import TextCorpus  # noqa: E402
from keras_nexus.models import NexusformerBackbone  # noqa: E402
from keras_nexus.models import NexusformerCausalLM  # noqa: E402
from keras_nexus.models.nexusformer import nexusformer_layout  # noqa: E402

QUICK = os.environ.get("KERAS_NEXUS_QUICK", "") not in ("", "0")
OUTPUT_DIR = os.environ.get("KERAS_NEXUS_OUTPUT_DIR", "guide_outputs")
os.makedirs(OUTPUT_DIR, exist_ok=True)

BACKEND = keras.config.backend()
WIDTH = 16 if QUICK else 64
SEQUENCE_LENGTH = 16 if QUICK else 64
# The global batch is split along the "batch" axis, so it must be
# divisible by 8 for DataParallel and by 2 for the (2, 4) mesh.
BATCH_SIZE = 8 if QUICK else 32
STEPS = 3 if QUICK else 50
MESH_SHAPE = (2, 4)

keras.utils.set_random_seed(0)
print(f"Keras {keras.__version__}, backend {BACKEND}")
print(f"Quick mode: {QUICK}. Outputs go to {os.path.abspath(OUTPUT_DIR)}")
start_time = time.time()
summary = {"backend": BACKEND, "quick": QUICK}

"""
## The model and the data

Every width that the layout map splits (the vocabulary, and the hidden and
expanded widths of each Nexus-Rank layer) must be divisible by the size of
the model axis, here 4. `hidden_dim` and the heads are never split.
`check_model_parallel_widths` raises one error that lists every width that
does not fit, before any weight is created.

`TextCorpus` reads the bundled Shakespeare as byte ids (vocabulary 256) and
yields `(inputs, next_tokens)` batches of token ids, so the model needs no
preprocessor.
"""

config = dict(
    vocabulary_size=256,
    num_layers=1 if QUICK else 2,
    num_query_heads=4,
    num_key_value_heads=2,
    hidden_dim=WIDTH,
    nexus_hidden_dim=WIDTH,
    nexus_expanded_dim=WIDTH * 2,
    ffn_hidden_dim=WIDTH * 2,
    ffn_expanded_dim=WIDTH * 4,
)

corpus = TextCorpus.from_paths(None, sequence_length=SEQUENCE_LENGTH)


def training_batches():
    return corpus.train_dataset(
        SEQUENCE_LENGTH, BATCH_SIZE, seed=0, repeat=True
    ).take(STEPS)


def build_causal_lm():
    backbone = NexusformerBackbone(**config)
    causal_lm = NexusformerCausalLM(backbone, preprocessor=None)
    causal_lm.compile(
        optimizer=keras.optimizers.AdamW(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[],
    )
    return causal_lm


def train(causal_lm):
    history = causal_lm.fit(training_batches(), epochs=1, verbose=0)
    loss = float(history.history["loss"][-1])
    print(f"  {STEPS} steps, final training loss {loss:.4f}")
    return loss


"""
## The layout map

`NexusformerBackbone.get_layout_map(device_mesh)` returns a
`keras.distribution.LayoutMap`: regular expressions over variable paths,
each mapped to the mesh axis of every weight dimension (`None` means
replicated). Inside each Nexus-Rank layer the hidden and expanded kernels
are split along their output columns and the output kernel along its input
rows. The layer then gathers no weights. It needs only all-reductions of
activations and one all-gather of the hidden activation. Both vocabulary
tables are split along the vocabulary, which keeps the logits split.

Building a mesh and a layout map needs no devices: a `DeviceMesh` only
stores device names until a backend places a variable on it. That is why
this cell runs on every backend. The device names here are placeholders.
"""

placeholder_devices = np.array(
    [f"cpu:{i}" for i in range(int(np.prod(MESH_SHAPE)))]
).reshape(MESH_SHAPE)
placeholder_mesh = keras.distribution.DeviceMesh(
    MESH_SHAPE, ("batch", "model"), placeholder_devices
)
nexusformer_layout.check_model_parallel_widths(config, placeholder_mesh)
layout_map = NexusformerBackbone.get_layout_map(placeholder_mesh)
print(f"{type(layout_map).__name__} with {len(layout_map)} rules:")
for pattern in layout_map:
    print(f"  {pattern}: {layout_map[pattern].axes}")
summary["layout_rules"] = {
    pattern: list(layout_map[pattern].axes) for pattern in layout_map
}

"""
## Data parallelism (JAX)

`DataParallel` replicates every weight on all devices and splits each batch
along its first axis. Create, compile and fit the model inside the scope:
the scope decides where each variable is placed when it is created, and
`fit` splits each batch across the devices. The scope restores the previous
distribution when it exits.

On TensorFlow and torch, Keras 3.15.1 accepts a distribution scope but
places nothing: TensorFlow trains on one device, and on torch
`keras.distribution.list_devices()` raises `AttributeError`. The
alternatives are `tf.distribute.MirroredStrategy` on TensorFlow and torch's
`DistributedDataParallel` around the Keras model on torch. Both are shown
and tested in `docs/distribution.md`. For model parallelism, use the JAX
backend: the model code is the same.
"""


def print_sharding(causal_lm, max_lines, print_filter=""):
    """Print the partition spec and per-device shape of some kernels.

    Returns the spec of every kernel. Only the first `max_lines` kernels
    whose path contains `print_filter` are printed.
    """
    specs = {}
    for variable in causal_lm.weights:
        if len(variable.shape) < 2:
            continue
        sharding = variable.value.sharding
        shape = tuple(variable.shape)
        specs[variable.path] = {
            "shape": list(shape),
            "spec": [str(axis) for axis in sharding.spec],
            "shard_shape": list(sharding.shard_shape(shape)),
        }
        if print_filter in variable.path and max_lines > 0:
            max_lines -= 1
            print(
                f"  {variable.path} {shape}: {sharding.spec}, "
                f"{sharding.shard_shape(shape)} per device"
            )
    return specs


if BACKEND == "jax":
    devices = keras.distribution.list_devices()
    print(f"{len(devices)} devices: {devices}")

    data_parallel = keras.distribution.DataParallel(devices=devices)
    with data_parallel.scope():
        data_parallel_lm = build_causal_lm()
        print("DataParallel:")
        summary["data_parallel_loss"] = train(data_parallel_lm)
        kernel = data_parallel_lm.backbone.token_embedding.embeddings
        print(
            f"  {kernel.path}: {kernel.value.sharding.spec} "
            f"(replicated on {len(kernel.value.sharding.device_set)} devices)"
        )
else:
    print(
        f"keras.distribution is JAX-only in Keras 3.15.1: on {BACKEND} a "
        "DataParallel scope is accepted and ignored. Use "
        + (
            "tf.distribute.MirroredStrategy"
            if BACKEND == "tensorflow"
            else "torch DistributedDataParallel"
        )
        + " for data parallelism, or KERAS_BACKEND=jax "
        "(see docs/distribution.md). Skipping the DataParallel section."
    )

"""
## Model parallelism (JAX)

Now the 8 devices form a (2, 4) mesh: the batch is split in two along the
`"batch"` axis, and each weight that the layout map names is split in four
along the `"model"` axis. A `PartitionSpec` lists the mesh axis of each
weight dimension. A kernel of shape (16, 16) with spec `(None, 'model')`
holds a (16, 4) slice on each device.
"""

if BACKEND == "jax":
    device_mesh = keras.distribution.DeviceMesh(
        MESH_SHAPE,
        ("batch", "model"),
        np.array(devices[: int(np.prod(MESH_SHAPE))]).reshape(MESH_SHAPE),
    )
    model_parallel = keras.distribution.ModelParallel(
        layout_map=NexusformerBackbone.get_layout_map(device_mesh),
        batch_dim_name="batch",
    )
    with model_parallel.scope():
        causal_lm = build_causal_lm()
        print("ModelParallel on a (2, 4) mesh:")
        summary["model_parallel_loss"] = train(causal_lm)
        summary["model_parallel_sharding"] = print_sharding(
            causal_lm, max_lines=6
        )
else:
    print(
        f"Skipping the ModelParallel section: on {BACKEND}, Keras 3.15.1 "
        "ignores the layout map and keeps every weight whole on one device."
    )

"""
## Growing a distributed model (JAX)

`keras_nexus.grow_model` builds a new, larger model and copies the trained
weights into it. Called inside the scope, it creates the new variables under
the same layout map, so the grown kernels come out split the same way. The
new widths must still be divisible by the model-axis size. With
`verify=True` (the default) it compares the outputs of both models on a
probe batch and stores the largest absolute difference in
`growth_report.max_abs_diff`. It differs from zero only by float32 rounding,
because sharded reductions add the same terms in a different order.
"""

if BACKEND == "jax":
    with model_parallel.scope():
        grown = keras_nexus.grow_model(
            causal_lm,
            nexus_hidden_dim=2 * config["nexus_hidden_dim"],
            num_layers=config["num_layers"] + 1,
            verify=True,
        )
        print(f"Grown model, changes {grown.growth_report.changes}:")
        # The new block, transformer_layer_1, is split like the old one.
        summary["grown_sharding"] = print_sharding(
            grown, max_lines=3, print_filter="transformer_layer_1/"
        )
        max_abs_diff = float(grown.growth_report.max_abs_diff)
        print(f"growth_report.max_abs_diff = {max_abs_diff:.3e}")
        summary["growth_max_abs_diff"] = max_abs_diff
else:
    print(
        f"Skipping growth under ModelParallel on {BACKEND}. "
        "keras_nexus.grow_model itself works on every backend."
    )

"""
## Several hosts

On a real cluster (several TPU hosts, or GPU servers), run the same program
once per host. Four things change:

1. Connect the processes before any JAX computation. With Keras, call
   `keras.distribution.initialize`, which calls
   `jax.distributed.initialize` and then, unless a seed was set, shares one
   random seed so that every host initialises the same weights. If you call
   `jax.distributed.initialize` yourself, call `keras.utils.set_random_seed`
   with the same seed on every host. On Cloud TPU, SLURM, Open MPI and
   Kubernetes, JAX finds the coordinator by itself and the arguments may be
   left out.
2. Drop the `XLA_FLAGS` line: the devices are real.
3. Build the mesh from all devices of all hosts. Keep the model axis inside
   one host, where the devices share the fast interconnect, and let the
   batch axis span the hosts.
4. Each host reads its own part of every global batch. Keras shards a
   `tf.data.Dataset` per process by itself. Pass
   `auto_shard_dataset=False` to the distribution if your input pipeline
   already does.

```python
import os

import jax
import keras
import keras_nexus

keras.distribution.initialize(
    job_addresses="10.0.0.1:1234",  # the coordinator, process 0
    num_processes=4,
    process_id=int(os.environ["HOST_INDEX"]),  # 0 .. 3
)

# 4 hosts x 8 accelerators: row i of the mesh is host i.
devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
mesh = keras.distribution.DeviceMesh(
    shape=(jax.process_count(), jax.local_device_count()),  # (4, 8)
    axis_names=("batch", "model"),
    devices=devices,
)
distribution = keras.distribution.ModelParallel(
    layout_map=keras_nexus.models.NexusformerBackbone.get_layout_map(mesh),
    batch_dim_name="batch",
)
with distribution.scope():
    backbone = keras_nexus.models.NexusformerBackbone(**config)
    causal_lm = keras_nexus.models.NexusformerCausalLM(
        backbone, preprocessor=None
    )
    causal_lm.compile(optimizer=keras.optimizers.AdamW(3e-4), loss=loss)
    causal_lm.fit(dataset, epochs=1)
```

NOTE: the multi-host steps follow the Keras 3.15.1 and JAX 0.10.2 sources
and were not run for this guide. Only one host with 8 virtual CPU devices
was.
"""

"""
## Summary file

The JSON file records the layout rules and, on JAX, the losses, the
partition spec of every kernel before and after growth, and
`max_abs_diff`.
"""

summary_path = os.path.join(OUTPUT_DIR, "distributed_training.json")
with open(summary_path, "w") as file:
    json.dump(summary, file, indent=2)
print(f"Wrote {summary_path}")
print(f"Finished in {time.time() - start_time:.1f} s")
