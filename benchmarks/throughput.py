"""Training throughput and model FLOP utilisation on each Keras backend.

For one backend per process (Keras picks its backend at import), this
script measures:

- the float32 matrix-multiply rate of the machine on that backend: the
  best of several timed `keras.ops.matmul` calls on two square matrices;
- training-step tokens per second of a mid-size Nexusformer causal LM
  (`NexusformerBackbone` + `NexusformerCausalLM`), compiled with XLA where
  that is practical. On JAX, Keras's default `jit_compile="auto"` resolves
  to XLA. On TensorFlow, "auto" disables XLA on CPU-only machines, so the
  script passes `jit_compile=True` and records the "auto" result too.
  PyTorch runs eagerly, its "auto" default, because `jit_compile=True`
  means `torch.compile`, whose compilation of this model took minutes on
  two cores;
- the same for `keras_hub.models.LlamaBackbone` at the same hidden size and
  depth, as the standard-Transformer reference;
- a profile of one `NexusRankDense` layer: forward plus backward time of
  the full layer next to variants that drop the L2 normalisation, drop the
  GELU, use the tanh GELU, or keep only the three matrix products; on
  PyTorch also the operators that take the most time in one forward and
  backward pass of the layer (`torch.profiler`).

Step times are medians over the timed steps, because other processes on a
shared machine add long outliers; the load average before and after each
backend's measurement is recorded next to the numbers.

Model FLOP utilisation (MFU) = analytic training FLOPs per second
(`keras_nexus.flops`) / the matmul rate measured in the same process.

Usage:
    python benchmarks/throughput.py --backend jax
    python benchmarks/throughput.py --all-backends   # one subprocess each
"""

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

logger = logging.getLogger("throughput")

NAME = "throughput"
BACKENDS = ("jax", "torch", "tensorflow")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Model sizes and timing budgets."""

    hidden_dim: int
    num_layers: int
    num_heads: int
    nexus_hidden_dim: int
    nexus_expanded_dim: int
    llama_intermediate_dim: int
    sequence_length: int
    batch_size: int
    warmup_steps: int
    timed_steps: int
    matmul_size: int
    matmul_repeats: int
    profile_tokens: int
    profile_steps: int
    vocabulary_size: int = 256


FULL_SETTINGS = Settings(
    hidden_dim=256,
    num_layers=4,
    num_heads=4,
    nexus_hidden_dim=384,
    nexus_expanded_dim=768,
    llama_intermediate_dim=768,
    sequence_length=128,
    batch_size=2,
    warmup_steps=3,
    timed_steps=8,
    matmul_size=2048,
    matmul_repeats=5,
    profile_tokens=512,
    profile_steps=20,
)

QUICK_SETTINGS = Settings(
    hidden_dim=32,
    num_layers=1,
    num_heads=2,
    nexus_hidden_dim=48,
    nexus_expanded_dim=96,
    llama_intermediate_dim=64,
    sequence_length=16,
    batch_size=2,
    warmup_steps=1,
    timed_steps=2,
    matmul_size=256,
    matmul_repeats=2,
    profile_tokens=32,
    profile_steps=2,
)


def _synchronize(tensor):
    """Block until `tensor` is computed, by copying it to numpy."""
    from keras import ops

    return ops.convert_to_numpy(tensor)


def measure_matmul_peak(settings):
    """Return the best float32 matmul rate in FLOP/s, and the trials."""
    from keras import ops

    size = settings.matmul_size
    rng = np.random.default_rng(0)
    left = ops.convert_to_tensor(rng.random((size, size), dtype=np.float32))
    right = ops.convert_to_tensor(rng.random((size, size), dtype=np.float32))
    _synchronize(ops.matmul(left, right))

    seconds = []
    for _ in range(settings.matmul_repeats):
        start = time.perf_counter()
        _synchronize(ops.matmul(left, right))
        seconds.append(time.perf_counter() - start)
    flops = 2.0 * size**3
    return flops / min(seconds), [flops / value for value in seconds]


def _token_batch(settings, seed=0):
    rng = np.random.default_rng(seed)
    shape = (settings.batch_size, settings.sequence_length)
    token_ids = rng.integers(0, settings.vocabulary_size, size=shape)
    inputs = {
        "token_ids": token_ids.astype("int32"),
        "padding_mask": np.ones(shape, dtype="int32"),
    }
    labels = rng.integers(0, settings.vocabulary_size, size=shape)
    return inputs, labels.astype("int32")


def jit_setting(backend):
    """Return the `jit_compile` argument used on `backend` (see above)."""
    return True if backend == "tensorflow" else "auto"


def time_training(model, settings, jit_compile="auto"):
    """Compile `model`, warm it up and time `timed_steps` training steps.

    Returns `(seconds_per_step list, resolved jit_compile)`.
    """
    import keras

    model.compile(
        optimizer=keras.optimizers.AdamW(1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=None,
        jit_compile=jit_compile,
    )
    inputs, labels = _token_batch(settings)
    for _ in range(settings.warmup_steps):
        model.train_on_batch(inputs, labels)

    seconds = []
    for _ in range(settings.timed_steps):
        start = time.perf_counter()
        # train_on_batch returns numpy scalars, which waits for the step.
        model.train_on_batch(inputs, labels)
        seconds.append(time.perf_counter() - start)
    return seconds, bool(model.jit_compile)


def build_nexus(settings):
    import keras

    import keras_nexus

    keras.utils.set_random_seed(0)
    backbone = keras_nexus.models.NexusformerBackbone(
        vocabulary_size=settings.vocabulary_size,
        num_layers=settings.num_layers,
        num_query_heads=settings.num_heads,
        num_key_value_heads=settings.num_heads,
        hidden_dim=settings.hidden_dim,
        nexus_hidden_dim=settings.nexus_hidden_dim,
        nexus_expanded_dim=settings.nexus_expanded_dim,
        ffn_hidden_dim=settings.nexus_hidden_dim,
        ffn_expanded_dim=settings.nexus_expanded_dim,
    )
    return keras_nexus.models.NexusformerCausalLM(backbone)


def build_llama(settings):
    import keras

    from benchmarks.baselines import transformer

    keras.utils.set_random_seed(0)
    return transformer.build_llama_lm(
        vocabulary_size=settings.vocabulary_size,
        num_layers=settings.num_layers,
        num_heads=settings.num_heads,
        hidden_dim=settings.hidden_dim,
        intermediate_dim=settings.llama_intermediate_dim,
    )


def model_record(model, seconds, jit_compile, step_flops, peak, settings):
    tokens = settings.batch_size * settings.sequence_length
    median = float(np.median(seconds))
    return {
        "parameters": model.count_params(),
        "jit_compile": jit_compile,
        "seconds_per_step_median": median,
        "seconds_per_step_min": float(np.min(seconds)),
        "seconds_per_step_max": float(np.max(seconds)),
        "tokens_per_second": tokens / median,
        "training_flops_per_step": step_flops,
        "model_flops_per_second": step_flops / median,
        "model_flops_utilization": step_flops / median / peak,
    }


# === NexusRankDense profile ===


def _profile_layer_class():
    """Return a layer computing NexusRankDense with parts switched off.

    Defined lazily so that Keras is imported after the backend is chosen.
    """
    import keras
    from keras import ops

    from keras_nexus.layers.nexus_rank_dense import SQUARED_NORM_FLOOR

    class NexusRankVariant(keras.layers.Layer):
        def __init__(self, units, hidden, expanded, normalize, activation):
            super().__init__()
            self.units = units
            self.hidden = hidden
            self.expanded = expanded
            self.normalize = normalize
            self.activation = activation
            self.scale = float(np.sqrt(units))

        def build(self, input_shape):
            initializer = keras.initializers.RandomNormal(stddev=0.02, seed=1)
            shapes = (
                (input_shape[-1], self.hidden),
                (self.hidden, self.expanded),
                (self.expanded, self.units),
            )
            self.kernels = [
                self.add_weight(shape=shape, initializer=initializer)
                for shape in shapes
            ]

        def _stage(self, x):
            if self.normalize:
                squared = ops.sum(ops.square(x), axis=-1, keepdims=True)
                norm = ops.sqrt(ops.maximum(squared, SQUARED_NORM_FLOOR))
                x = x / (norm + 1e-5) * self.scale
            if self.activation == "gelu":
                x = ops.gelu(x, approximate=False)
            elif self.activation == "gelu_tanh":
                x = ops.gelu(x, approximate=True)
            return x

        def call(self, x):
            x = self._stage(ops.matmul(x, self.kernels[0]))
            x = self._stage(ops.matmul(x, self.kernels[1]))
            return ops.matmul(x, self.kernels[2])

    return NexusRankVariant


PROFILE_VARIANTS = {
    "nexus_rank_dense": None,
    "no_normalization": (False, "gelu"),
    "no_activation": (True, None),
    "tanh_gelu": (True, "gelu_tanh"),
    "matmuls_only": (False, None),
}


def profile_nexus_rank_dense(settings):
    """Time forward + backward of NexusRankDense and of its variants.

    Each variant is a one-layer model trained with SGD on a mean-squared
    error, so every timing includes the same loss and update overhead.
    The widths are those of the throughput model's attention projections.
    """
    import keras

    from keras_nexus.layers import NexusRankDense

    variant_class = _profile_layer_class()
    width = settings.hidden_dim
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(settings.profile_tokens, width))
    inputs = inputs.astype("float32")
    targets = rng.normal(size=(settings.profile_tokens, width))
    targets = targets.astype("float32")

    models = {}
    for name, variant in PROFILE_VARIANTS.items():
        if variant is None:
            layer = NexusRankDense(
                width,
                hidden_units=settings.nexus_hidden_dim,
                expanded_units=settings.nexus_expanded_dim,
            )
        else:
            normalize, activation = variant
            layer = variant_class(
                width,
                settings.nexus_hidden_dim,
                settings.nexus_expanded_dim,
                normalize,
                activation,
            )
        model = keras.Sequential([keras.Input((width,)), layer])
        model.compile(
            optimizer=keras.optimizers.SGD(1e-6),
            loss="mse",
            jit_compile=jit_setting(keras.backend.backend()),
        )
        for _ in range(2):
            model.train_on_batch(inputs, targets)
        models[name] = model

    # Round robin, so that every variant sees the same background load.
    seconds = {name: [] for name in models}
    for _ in range(settings.profile_steps):
        for name, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(inputs, targets)
            seconds[name].append(time.perf_counter() - start)
    results = {
        name: {"seconds_per_step_median": float(np.median(values))}
        for name, values in seconds.items()
    }

    full = results["nexus_rank_dense"]["seconds_per_step_median"]
    matmuls = results["matmuls_only"]["seconds_per_step_median"]
    for record in results.values():
        record["relative_to_full_layer"] = (
            record["seconds_per_step_median"] / full
        )
    results["elementwise_share_of_layer_time"] = 1.0 - matmuls / full
    return results


# === One backend ===


def measure_model(name, model, step_flops, peak, settings, jit_compile):
    seconds, resolved = time_training(model, settings, jit_compile)
    record = model_record(model, seconds, resolved, step_flops, peak, settings)
    logger.info(
        "%s (jit_compile=%s): %.0f tokens/s, MFU %.3f",
        name,
        resolved,
        record["tokens_per_second"],
        record["model_flops_utilization"],
    )
    return record


def measure_backend(settings):
    """Run every measurement on the current backend and return a dict."""
    import keras

    from benchmarks.baselines import transformer
    from keras_nexus import flops

    keras.config.set_dtype_policy("float32")
    backend = keras.backend.backend()
    load_before = os.getloadavg()
    peak, peak_trials = measure_matmul_peak(settings)
    logger.info("%s: float32 matmul %.1f GFLOP/s", backend, peak / 1e9)

    jit_compile = jit_setting(backend)
    nexus = build_nexus(settings)
    nexus_flops = flops.training_flops(
        nexus.backbone, settings.sequence_length, settings.batch_size
    )
    nexus_record = measure_model(
        f"{backend} Nexusformer", nexus, nexus_flops, peak, settings,
        jit_compile,
    )
    llama = build_llama(settings)
    llama_flops = transformer.llama_training_flops(
        llama.llama_config, settings.sequence_length, settings.batch_size
    )
    llama_record = measure_model(
        f"{backend} Llama", llama, llama_flops, peak, settings, jit_compile
    )

    record = {
        "matmul_peak_flops": peak,
        "matmul_trials_flops": peak_trials,
        "tokens_per_second": nexus_record["tokens_per_second"],
        "model_flops_utilization": nexus_record["model_flops_utilization"],
        "llama_tokens_per_second": llama_record["tokens_per_second"],
        "llama_model_flops_utilization": llama_record[
            "model_flops_utilization"
        ],
        "nexusformer": nexus_record,
        "llama": llama_record,
    }
    if jit_compile != "auto" and not common.is_quick():
        # What `model.compile()` gives without arguments on this backend.
        record["nexusformer_auto"] = measure_model(
            f"{backend} Nexusformer", nexus, nexus_flops, peak, settings,
            "auto",
        )
        record["llama_auto"] = measure_model(
            f"{backend} Llama", llama, llama_flops, peak, settings, "auto"
        )

    record["nexus_rank_dense_profile"] = profile_nexus_rank_dense(settings)
    if backend == "torch":
        record["nexus_rank_dense_torch_operators"] = torch_operator_profile(
            settings
        )
    record["load_average_before"] = list(load_before)
    record["load_average_after"] = list(os.getloadavg())
    return record


def torch_operator_profile(settings, top=8):
    """Return the operators with the most self CPU time in NexusRankDense.

    One forward and backward pass of the profiled layer under
    `torch.profiler`, after two warm-up passes.
    """
    import keras
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile

    from keras_nexus.layers import NexusRankDense

    width = settings.hidden_dim
    layer = NexusRankDense(
        width,
        hidden_units=settings.nexus_hidden_dim,
        expanded_units=settings.nexus_expanded_dim,
    )
    inputs = keras.ops.convert_to_tensor(
        np.random.default_rng(0).normal(
            size=(settings.profile_tokens, width)
        ).astype("float32")
    )
    for _ in range(2):
        torch.sum(layer(inputs)).backward()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        torch.sum(layer(inputs)).backward()
    events = profiler.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    ranked = sorted(
        events, key=lambda event: event.self_cpu_time_total, reverse=True
    )
    return [
        {
            "operator": event.key,
            "calls": event.count,
            "self_cpu_ms": event.self_cpu_time_total / 1000,
            "share": event.self_cpu_time_total / total,
        }
        for event in ranked[:top]
    ]


def run_backend_subprocess(backend, output_dir):
    """Measure one backend in a fresh interpreter and return its record."""
    raw_path = os.path.join(output_dir, f"{NAME}_{backend}.raw.json")
    environment = dict(os.environ, KERAS_BACKEND=backend)
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--backend",
        backend,
        "--raw-output",
        raw_path,
    ]
    logger.info("Measuring %s in a subprocess", backend)
    completed = subprocess.run(command, env=environment, check=False)
    if completed.returncode != 0:
        raise RuntimeError(
            f"The {backend} measurement failed with exit code "
            f"{completed.returncode}; rerun `{' '.join(command)}` to see why."
        )
    with open(raw_path, encoding="utf-8") as file:
        record = json.load(file)
    os.remove(raw_path)
    return record


# === Report ===


def plot_throughput(result, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    names = list(result["backends"])
    nexus = [result["backends"][name]["tokens_per_second"] for name in names]
    llama = [
        result["backends"][name]["llama_tokens_per_second"] for name in names
    ]
    positions = np.arange(len(names))
    figure, axis = pyplot.subplots(figsize=(7, 4))
    axis.bar(positions - 0.2, nexus, width=0.4, label="Nexusformer")
    axis.bar(positions + 0.2, llama, width=0.4, label="Llama (KerasHub)")
    axis.set_xticks(positions)
    axis.set_xticklabels(names)
    axis.set_ylabel("training tokens / second")
    axis.set_title("Training throughput by backend (same hidden size, depth)")
    axis.legend()
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def _throughput_row(label, peak, nexus, llama, load):
    return [
        label,
        f"{peak / 1e9:.1f}",
        "yes" if nexus["jit_compile"] else "no",
        f"{nexus['tokens_per_second']:.0f}",
        f"{nexus['model_flops_utilization']:.3f}",
        f"{llama['tokens_per_second']:.0f}",
        f"{llama['model_flops_utilization']:.3f}",
        load,
    ]


def report_markdown(result, plot_path, report_path):
    settings = result["settings"]
    environment = result["environment"]
    lines = [
        "## Training throughput and model FLOP utilisation",
        "",
        common.environment_markdown(environment),
        "",
        f"Models: Nexusformer with hidden size {settings['hidden_dim']}, "
        f"{settings['num_layers']} layers, {settings['num_heads']} heads, "
        f"Nexus-Rank widths M = {settings['nexus_hidden_dim']}, "
        f"A = {settings['nexus_expanded_dim']} in every projection and the "
        f"feed-forward layer; KerasHub Llama with the same hidden size, "
        f"depth and heads and a SwiGLU width of "
        f"{settings['llama_intermediate_dim']}. Batch "
        f"{settings['batch_size']} x {settings['sequence_length']} tokens, "
        f"AdamW, float32. {settings['warmup_steps']} warm-up steps, then "
        f"the median of {settings['timed_steps']} timed `train_on_batch` "
        f"steps. XLA on JAX (the default) and on TensorFlow "
        f"(`jit_compile=True`; the default \"auto\" turns XLA off on CPU and "
        f"is listed as its own row); PyTorch eager (the default; "
        f"`torch.compile` took minutes to compile this model here).",
        "",
        f"MFU = analytic training FLOPs per second (`keras_nexus.flops`, "
        f"3 x forward matrix products) / the float32 rate of a "
        f"{settings['matmul_size']} x {settings['matmul_size']} "
        f"`keras.ops.matmul` measured in the same process (best of "
        f"{settings['matmul_repeats']}).",
        "",
    ]
    rows = []
    for name, record in result["backends"].items():
        load = (
            f"{record['load_average_before'][0]:.1f} / "
            f"{record['load_average_after'][0]:.1f}"
        )
        rows.append(
            _throughput_row(
                name,
                record["matmul_peak_flops"],
                record["nexusformer"],
                record["llama"],
                load,
            )
        )
        if "nexusformer_auto" in record:
            rows.append(
                _throughput_row(
                    f"{name} (auto)",
                    record["matmul_peak_flops"],
                    record["nexusformer_auto"],
                    record["llama_auto"],
                    load,
                )
            )
    lines.append(
        common.markdown_table(
            [
                "backend",
                "matmul GFLOP/s",
                "XLA / jit",
                "Nexusformer tokens/s",
                "Nexusformer MFU",
                "Llama tokens/s",
                "Llama MFU",
                "load avg before / after",
            ],
            rows,
        )
    )
    lines.append("")
    first = next(iter(result["backends"].values()))
    nexus_flops = first["nexusformer"]["training_flops_per_step"]
    llama_flops = first["llama"]["training_flops_per_step"]
    lines.append(
        f"Parameters: Nexusformer {first['nexusformer']['parameters']:,}, "
        f"Llama {first['llama']['parameters']:,}. Training FLOPs per step: "
        f"Nexusformer {common.format_flops(nexus_flops)}, Llama "
        f"{common.format_flops(llama_flops)}. The machine has "
        f"{environment['machine']['usable_cores']} cores, so a load average "
        f"above that means other processes shared them during the run."
    )
    utilizations = [
        record[key]["model_flops_utilization"]
        for record in result["backends"].values()
        for key in ("nexusformer", "llama", "nexusformer_auto", "llama_auto")
        if key in record
    ]
    if max(utilizations) > 1.0:
        lines.append(
            "An MFU above 1 means that the model's matrix products ran "
            "faster than the single timed matmul did, so that matmul rate "
            "is not the machine's peak. Treat MFU here as a ratio of two "
            "measurements taken under the load shown."
        )
    lines.append("")
    lines.append(
        f"NexusRankDense profile (input {settings['hidden_dim']}, M = "
        f"{settings['nexus_hidden_dim']}, A = {settings['nexus_expanded_dim']}"
        f", output {settings['hidden_dim']}, {settings['profile_tokens']} "
        f"tokens; median forward + backward + SGD step, and its ratio to the "
        f"full layer):"
    )
    lines.append("")
    variant_names = list(PROFILE_VARIANTS)
    profile_rows = []
    for name, record in result["backends"].items():
        profile = record["nexus_rank_dense_profile"]
        cells = [name]
        for variant in variant_names:
            seconds = profile[variant]["seconds_per_step_median"]
            relative = profile[variant]["relative_to_full_layer"]
            cells.append(f"{1000 * seconds:.2f} ms ({relative:.2f})")
        share = profile["elementwise_share_of_layer_time"]
        cells.append(f"{100 * share:.0f}%")
        profile_rows.append(cells)
    lines.append(
        common.markdown_table(
            ["backend"] + variant_names + ["non-matmul share"], profile_rows
        )
    )
    operators = [
        record["nexus_rank_dense_torch_operators"]
        for record in result["backends"].values()
        if "nexus_rank_dense_torch_operators" in record
    ]
    if operators:
        lines.append("")
        lines.append(
            "PyTorch operators with the most self CPU time in one forward "
            "and backward pass of the profiled layer:"
        )
        lines.append("")
        lines.append(
            common.markdown_table(
                ["operator", "calls", "self CPU ms", "share"],
                [
                    [
                        f"`{event['operator']}`",
                        event["calls"],
                        f"{event['self_cpu_ms']:.2f}",
                        f"{100 * event['share']:.0f}%",
                    ]
                    for event in operators[0]
                ],
            )
        )
    lines.append("")
    link = common.relative_link(plot_path, report_path)
    lines.append(f"![Training throughput by backend]({link})")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help=(
            "Keras backend to measure in this process. Defaults to "
            "KERAS_BACKEND, or jax when it is unset."
        ),
    )
    parser.add_argument(
        "--all-backends",
        action="store_true",
        help="Measure every backend, each in its own subprocess, and merge.",
    )
    parser.add_argument(
        "--raw-output",
        default=None,
        help=(
            "Write only this backend's record to this JSON file and skip "
            "the report (used by --all-backends)."
        ),
    )
    common.add_output_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = QUICK_SETTINGS if common.is_quick() else FULL_SETTINGS

    if args.all_backends:
        output_dir, report_path = common.resolve_output_paths(args)
        with tempfile.TemporaryDirectory() as scratch:
            backends = {
                backend: run_backend_subprocess(backend, scratch)
                for backend in BACKENDS
            }
        backend_label = ", ".join(BACKENDS)
    else:
        backend = args.backend or os.environ.get("KERAS_BACKEND", "jax")
        os.environ["KERAS_BACKEND"] = backend
        common.prepare_quick_mode()
        record = measure_backend(settings)
        if args.raw_output:
            common.write_json(args.raw_output, record)
            return record
        output_dir, report_path = common.resolve_output_paths(args)
        backends = {backend: record}
        backend_label = backend

    result = {
        "environment": common.environment_record(backend_label),
        "settings": dataclasses.asdict(settings),
        "matmul_peak_flops": max(
            record["matmul_peak_flops"] for record in backends.values()
        ),
        "backends": backends,
    }
    json_path = os.path.join(output_dir, f"{NAME}.json")
    plot_path = os.path.join(output_dir, f"{NAME}.png")
    common.write_json(json_path, result)
    plot_throughput(result, plot_path)
    common.update_report_section(
        report_path, NAME, report_markdown(result, plot_path, report_path)
    )
    logger.info("Wrote %s, %s and %s", json_path, plot_path, report_path)
    return result


if __name__ == "__main__":
    main()
