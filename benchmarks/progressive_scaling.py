"""Progressive scaling against training from scratch, in miniature.

Nexusformer's authors report that growing a model progressively from 240M
to 440M parameters reaches Tokenformer's perplexity with up to 41.5% less
training compute. This script repeats the comparison with models of a few
hundred thousand parameters on the bundled Shakespeare text (byte-level:
token ids are the UTF-8 bytes, vocabulary 256):

- `nexusformer_progressive`: a small Nexusformer, grown three times with
  `keras_nexus.grow_model` along the Nexus-Rank widths (M and A of every
  projection and of the feed-forward layer), training after each growth.
- `nexusformer_scratch`: the final Nexusformer size, trained from scratch.
- `tokenformer_progressive` / `tokenformer_scratch`: the same for the
  Tokenformer baseline (`benchmarks/baselines/tokenformer.py`), grown by
  appending parameter tokens, with parameter counts matched to Nexusformer
  at every stage.
- `transformer_scratch`: `keras_hub.models.LlamaBackbone` with the
  parameter count of the final Nexusformer.

Every run sees the same batches in the same order and uses the same
optimizer recipe (see `make_optimizer`). Training FLOPs are counted
analytically (3x the forward matrix products; `keras_nexus.flops`).

Usage:
    KERAS_BACKEND=jax python benchmarks/progressive_scaling.py
    KERAS_NEXUS_QUICK=1 python benchmarks/progressive_scaling.py \
        --output-dir /tmp/bench
"""

import argparse
import dataclasses
import logging
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

common.prepare_quick_mode()

import keras  # noqa: E402
from keras import ops  # noqa: E402

import keras_nexus  # noqa: E402
from benchmarks.baselines import tokenformer  # noqa: E402
from benchmarks.baselines import transformer  # noqa: E402
from keras_nexus import flops  # noqa: E402
from keras_nexus import scaling  # noqa: E402

logger = logging.getLogger("progressive_scaling")

NAME = "progressive_scaling"
VOCABULARY_SIZE = 256
DATA_SEED = 20240601
MODEL_SEED = 7


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes and budgets of one benchmark run.

    `nexus_stages` lists `(M, A)` per stage, used for the attention and the
    feed-forward Nexus-Rank layers alike. The Tokenformer stages are derived
    from them by `matched_tokenformer_stages`.
    """

    sequence_length: int
    batch_size: int
    hidden_dim: int
    num_layers: int
    num_heads: int
    nexus_stages: tuple
    stage_steps: tuple
    scratch_steps: int
    eval_every: int
    val_windows: int
    val_batch_size: int
    transformer_hidden_dim: int
    peak_learning_rate: float = 2e-3
    warmup_steps: int = 20
    final_learning_rate_fraction: float = 0.1
    weight_decay: float = 0.01
    verify_growth: bool = True


FULL_SETTINGS = Settings(
    sequence_length=64,
    batch_size=8,
    hidden_dim=64,
    num_layers=2,
    num_heads=4,
    nexus_stages=((48, 96), (64, 128), (96, 192), (128, 256)),
    stage_steps=(60, 60, 60, 180),
    # As many steps, so as many tokens, as a progressive run.
    scratch_steps=360,
    eval_every=20,
    val_windows=64,
    val_batch_size=32,
    transformer_hidden_dim=128,
)

QUICK_SETTINGS = Settings(
    sequence_length=16,
    batch_size=4,
    hidden_dim=16,
    num_layers=1,
    num_heads=2,
    nexus_stages=((16, 32), (24, 48), (32, 64), (40, 80)),
    stage_steps=(2, 2, 2, 3),
    scratch_steps=4,
    eval_every=2,
    val_windows=4,
    val_batch_size=4,
    transformer_hidden_dim=16,
    warmup_steps=2,
    # The eager probe passes cost more than the training in quick mode; the
    # validation loss before and after each growth is still recorded.
    verify_growth=False,
)


def matched_tokenformer_stages(settings):
    """Return `(attention tokens, feed-forward tokens)` for every stage.

    A Nexusformer block holds `5 * (D*M + M*A + A*D)` kernel weights (four
    attention projections and the feed-forward layer). A Tokenformer block
    with n attention tokens and 4n feed-forward tokens (the ratio of the
    Tokenformer configs) holds `4 * n * 2D + 4n * 2D = 16 * D * n`. Solving
    for n matches the parameter count, and so the projection FLOPs, of
    every stage.
    """
    hidden_dim = settings.hidden_dim
    stages = []
    for hidden, expanded in settings.nexus_stages:
        weights = 5 * (
            hidden_dim * hidden + hidden * expanded + expanded * hidden_dim
        )
        attention_tokens = max(1, round(weights / (16 * hidden_dim)))
        stages.append((attention_tokens, 4 * attention_tokens))
    return tuple(stages)


# === Data ===


def load_corpus_bytes():
    """Return the bundled Shakespeare text as int32 byte ids."""
    path = os.path.join(
        os.path.dirname(keras_nexus.__file__), "data", "tinyshakespeare.txt"
    )
    with open(path, "rb") as file:
        return np.frombuffer(file.read(), dtype=np.uint8).astype(np.int32)


class ByteBatches:
    """Fixed training batches and validation windows cut from the corpus.

    The first 90% of the bytes train, the last 10% validate. Training batch
    `i` is the same for every run: its window starts are drawn once from a
    seeded generator. Validation uses evenly spaced windows.
    """

    def __init__(self, settings, max_steps):
        tokens = load_corpus_bytes()
        split = int(0.9 * len(tokens))
        self.train_tokens = tokens[:split]
        self.val_tokens = tokens[split:]
        self.sequence_length = settings.sequence_length
        self.batch_size = settings.batch_size
        self.val_batch_size = settings.val_batch_size
        rng = np.random.default_rng(DATA_SEED)
        high = len(self.train_tokens) - self.sequence_length - 1
        self.starts = rng.integers(
            0, high, size=(max_steps, settings.batch_size)
        )
        val_high = len(self.val_tokens) - self.sequence_length - 1
        val_starts = np.linspace(0, val_high, settings.val_windows)
        self.val_windows = self._windows(
            self.val_tokens, val_starts.astype(np.int64)
        )

    def _windows(self, tokens, starts):
        offsets = np.arange(self.sequence_length + 1)
        return tokens[starts[:, None] + offsets[None, :]]

    @staticmethod
    def _split(windows):
        inputs = {
            "token_ids": windows[:, :-1],
            "padding_mask": np.ones_like(windows[:, :-1]),
        }
        return inputs, windows[:, 1:]

    def train_batch(self, step):
        """Return `(inputs, labels)` of training step `step`."""
        return self._split(self._windows(self.train_tokens, self.starts[step]))

    def val_batches(self):
        """Yield `(inputs, labels)` validation batches of `val_batch_size`."""
        for begin in range(0, len(self.val_windows), self.val_batch_size):
            windows = self.val_windows[begin : begin + self.val_batch_size]
            yield self._split(windows)


# === Optimizer recipe ===


class StageSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Cosine decay over a whole run, with a warmup for each new optimizer.

    A run of `total_steps` steps decays from the peak rate to
    `final_fraction` of it along a cosine of the global step. A grown model
    gets a fresh optimizer whose step counter restarts at 0, so the
    schedule adds `start_step` to recover the global step, and warms up
    linearly over `warmup_steps` because the fresh Adam moments are empty.
    """

    def __init__(
        self, peak, total_steps, warmup_steps, start_step, final_fraction
    ):
        self.peak = peak
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.start_step = start_step
        self.final_fraction = final_fraction

    def __call__(self, step):
        local_step = ops.cast(step, "float32")
        warmup = ops.minimum(1.0, (local_step + 1.0) / self.warmup_steps)
        progress = ops.minimum(
            (local_step + self.start_step) / self.total_steps, 1.0
        )
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        decay = self.final_fraction + (1.0 - self.final_fraction) * cosine
        return self.peak * warmup * decay

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "start_step": self.start_step,
            "final_fraction": self.final_fraction,
        }


def make_optimizer(settings, total_steps, start_step):
    """Return the optimizer every run uses: AdamW with the stage schedule.

    AdamW (beta_1 0.9, beta_2 0.95, weight decay `settings.weight_decay`),
    gradient norm clipped at 1.0, learning rate from `StageSchedule`.
    """
    schedule = StageSchedule(
        peak=settings.peak_learning_rate,
        total_steps=total_steps,
        warmup_steps=settings.warmup_steps,
        start_step=start_step,
        final_fraction=settings.final_learning_rate_fraction,
    )
    return keras.optimizers.AdamW(
        learning_rate=schedule,
        beta_1=0.9,
        beta_2=0.95,
        weight_decay=settings.weight_decay,
        clipnorm=1.0,
    )


def compile_model(model, settings, total_steps, start_step):
    model.compile(
        optimizer=make_optimizer(settings, total_steps, start_step),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=None,
    )


def evaluate(model, data):
    """Return the mean validation cross-entropy in nats per byte."""
    losses = [
        model.test_on_batch(inputs, labels, return_dict=True)["loss"]
        for inputs, labels in data.val_batches()
    ]
    return float(np.mean(losses))


# === Model families ===


class NexusFamily:
    """Nexusformer: built with `NexusformerCausalLM`, grown by `grow_model`."""

    name = "nexusformer"

    def __init__(self, settings):
        self.settings = settings
        self.stages = settings.nexus_stages

    def build(self, stage):
        hidden, expanded = self.stages[stage]
        keras.utils.set_random_seed(MODEL_SEED)
        backbone = keras_nexus.models.NexusformerBackbone(
            vocabulary_size=VOCABULARY_SIZE,
            num_layers=self.settings.num_layers,
            num_query_heads=self.settings.num_heads,
            num_key_value_heads=self.settings.num_heads,
            hidden_dim=self.settings.hidden_dim,
            nexus_hidden_dim=hidden,
            nexus_expanded_dim=expanded,
            ffn_hidden_dim=hidden,
            ffn_expanded_dim=expanded,
        )
        return keras_nexus.models.NexusformerCausalLM(backbone)

    def grow(self, model, stage):
        hidden, expanded = self.stages[stage]
        grown = keras_nexus.grow_model(
            model,
            nexus_hidden_dim=hidden,
            nexus_expanded_dim=expanded,
            ffn_hidden_dim=hidden,
            ffn_expanded_dim=expanded,
            # Float32 rounding in trained models reaches a few 1e-6 in the
            # logits; the measured difference is reported either way.
            atol=1e-4,
            verify=self.settings.verify_growth,
            seed=MODEL_SEED + stage,
        )
        if not self.settings.verify_growth:
            return grown, None
        return grown, float(grown.growth_report.max_abs_diff)

    def step_flops(self, model):
        return flops.training_flops(
            model.backbone,
            self.settings.sequence_length,
            self.settings.batch_size,
        )


class TokenformerFamily:
    """Tokenformer baseline: grown by appending parameter tokens."""

    name = "tokenformer"

    def __init__(self, settings):
        self.settings = settings
        self.stages = matched_tokenformer_stages(settings)

    def build(self, stage):
        attention_tokens, ffn_tokens = self.stages[stage]
        return tokenformer.build_tokenformer_lm(
            vocabulary_size=VOCABULARY_SIZE,
            num_layers=self.settings.num_layers,
            num_heads=self.settings.num_heads,
            hidden_dim=self.settings.hidden_dim,
            attention_param_tokens=attention_tokens,
            ffn_param_tokens=ffn_tokens,
            seed=MODEL_SEED,
        )

    def grow(self, model, stage):
        attention_tokens, ffn_tokens = self.stages[stage]
        return tokenformer.grow_tokenformer(
            model,
            attention_tokens,
            ffn_tokens,
            seed=MODEL_SEED + stage,
            verify=self.settings.verify_growth,
        )

    def step_flops(self, model):
        return tokenformer.tokenformer_training_flops(
            model.tokenformer_config,
            self.settings.sequence_length,
            self.settings.batch_size,
        )


class TransformerFamily:
    """KerasHub Llama with a parameter count matched to a target."""

    name = "transformer"

    def __init__(self, settings, target_parameters):
        self.settings = settings
        hidden_dim = settings.transformer_hidden_dim
        self.intermediate_dim = transformer.match_llama_intermediate_dim(
            target_parameters,
            vocabulary_size=VOCABULARY_SIZE,
            num_layers=settings.num_layers,
            num_heads=settings.num_heads,
            hidden_dim=hidden_dim,
        )
        self.stages = ((hidden_dim, self.intermediate_dim),)

    def build(self, stage):
        keras.utils.set_random_seed(MODEL_SEED)
        return transformer.build_llama_lm(
            vocabulary_size=VOCABULARY_SIZE,
            num_layers=self.settings.num_layers,
            num_heads=self.settings.num_heads,
            hidden_dim=self.settings.transformer_hidden_dim,
            intermediate_dim=self.intermediate_dim,
        )

    def grow(self, model, stage):
        raise NotImplementedError("The Transformer baseline is not grown.")

    def step_flops(self, model):
        return transformer.llama_training_flops(
            model.llama_config,
            self.settings.sequence_length,
            self.settings.batch_size,
        )


# === Training ===


def train_run(name, family, stage_indices, stage_steps, data, settings):
    """Train one run through its stages and record the validation curve.

    Args:
        name: Run name used in the results.
        family: A `*Family` object that builds, grows and counts FLOPs.
        stage_indices: Stage of the family for each training stage; a
            scratch run has a single stage.
        stage_steps: Training steps in each stage.
        data: The shared `ByteBatches`.
        settings: The `Settings`.

    Returns:
        A dict with the run's curve, growth events, stage losses and totals.
    """
    total_steps = sum(stage_steps)
    started = time.perf_counter()
    curve = []
    growth_events = []
    stage_records = []
    step = 0
    cumulative_flops = 0

    model = family.build(stage_indices[0])
    for position, (stage, steps) in enumerate(zip(stage_indices, stage_steps)):
        if position > 0:
            loss_before = curve[-1]["val_loss"]
            parameters_before = model.count_params()
            model, max_abs_diff = family.grow(model, stage)
            compile_model(model, settings, total_steps, start_step=step)
            loss_after = evaluate(model, data)
            curve.append(
                {"step": step, "flops": cumulative_flops, "val_loss": loss_after}
            )
            growth_events.append(
                {
                    "step": step,
                    "flops": cumulative_flops,
                    "parameters_before": parameters_before,
                    "parameters_after": model.count_params(),
                    "max_abs_diff": max_abs_diff,
                    "val_loss_before": loss_before,
                    "val_loss_after": loss_after,
                }
            )
        else:
            compile_model(model, settings, total_steps, start_step=0)
            curve.append(
                {"step": 0, "flops": 0, "val_loss": evaluate(model, data)}
            )

        step_flops = family.step_flops(model)
        budget_loss = None
        for local_step in range(1, steps + 1):
            inputs, labels = data.train_batch(step)
            model.train_on_batch(inputs, labels)
            step += 1
            cumulative_flops += step_flops
            if local_step % settings.eval_every == 0 or local_step == steps:
                val_loss = evaluate(model, data)
                curve.append(
                    {
                        "step": step,
                        "flops": cumulative_flops,
                        "val_loss": val_loss,
                    }
                )
                if local_step == settings.stage_steps[0]:
                    budget_loss = val_loss
        stage_records.append(
            {
                "stage": int(stage),
                "parameters": model.count_params(),
                "steps": steps,
                "flops_per_step": step_flops,
                "end_val_loss": curve[-1]["val_loss"],
                "val_loss_after_equal_budget": budget_loss,
            }
        )
        logger.info(
            "%s stage %d: %d parameters, val loss %.4f after %d steps",
            name,
            stage,
            model.count_params(),
            curve[-1]["val_loss"],
            step,
        )

    return {
        "parameters": model.count_params(),
        "flops": cumulative_flops,
        "steps": step,
        "val_loss_curve": curve,
        "final_val_loss": curve[-1]["val_loss"],
        "growth_events": growth_events,
        "stages": stage_records,
        "wall_seconds": time.perf_counter() - started,
    }


# === Analysis ===


def flops_to_target(curve, target):
    """Return the FLOPs at which the validation loss first reaches `target`.

    The loss is interpolated linearly in FLOPs between the last evaluation
    above the target and the first one at or below it. Returns None when
    no evaluation reaches the target.
    """
    previous = None
    for point in curve:
        if point["val_loss"] <= target:
            if previous is None or previous["val_loss"] <= target:
                return float(point["flops"])
            drop = previous["val_loss"] - point["val_loss"]
            fraction = (previous["val_loss"] - target) / drop
            return float(
                previous["flops"]
                + fraction * (point["flops"] - previous["flops"])
            )
        previous = point
    return None


def compute_saving(progressive, scratch):
    """Compare the FLOPs of two runs to reach the scratch run's final loss.

    Returns a dict with the target, both FLOP counts and the saving
    `1 - progressive / scratch`. When the progressive run never reaches the
    target, the saving uses its total FLOPs and is an upper bound (kind
    `"upper_bound"`): reaching the target would need more than that.
    """
    target = scratch["final_val_loss"]
    scratch_flops = flops_to_target(scratch["val_loss_curve"], target)
    progressive_flops = flops_to_target(progressive["val_loss_curve"], target)
    reached = progressive_flops is not None
    spent = progressive_flops if reached else float(progressive["flops"])
    return {
        "target_val_loss": target,
        "progressive_reached_target": reached,
        "flops_to_target_progressive": progressive_flops,
        "flops_to_target_scratch": scratch_flops,
        "saving": 1.0 - spent / scratch_flops,
        "kind": "measured" if reached else "upper_bound",
    }


def scaling_law_report(run):
    """Fit the geometric law on all but the last stage and score the last.

    Uses the validation loss after the same number of steps in every stage
    (`settings.stage_steps[0]`), so that the stage losses differ by model
    size and by what the earlier stages taught, not by stage length.
    """
    losses = [stage["val_loss_after_equal_budget"] for stage in run["stages"]]
    stages = list(range(len(losses)))
    result = scaling.holdout_error(stages, losses, num_held_out=1)
    law = result.pop("law")
    result["law"] = {
        "asymptote": law.asymptote,
        "amplitude": law.amplitude,
        "ratio": law.ratio,
        "residual_rms": law.residual_rms,
    }
    result["fit_stages"] = stages[:-1]
    result["fit_losses"] = losses[:-1]
    return result


# === Output ===


RUN_STYLES = {
    "nexusformer_progressive": ("tab:blue", "-"),
    "nexusformer_scratch": ("tab:blue", "--"),
    "tokenformer_progressive": ("tab:orange", "-"),
    "tokenformer_scratch": ("tab:orange", "--"),
    "transformer_scratch": ("tab:green", ":"),
}


def plot_curves(runs, savings, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axis = pyplot.subplots(figsize=(8, 5))
    for name, run in runs.items():
        color, style = RUN_STYLES.get(name, ("black", "-"))
        curve = run["val_loss_curve"]
        axis.plot(
            [point["flops"] for point in curve],
            [point["val_loss"] for point in curve],
            linestyle=style,
            color=color,
            label=name,
        )
        for event in run["growth_events"]:
            axis.scatter(
                [event["flops"], event["flops"]],
                [event["val_loss_before"], event["val_loss_after"]],
                marker="o",
                color=color,
                zorder=3,
            )
    for family, saving in savings.items():
        color = "tab:blue" if family == "nexusformer" else "tab:orange"
        axis.axhline(
            saving["target_val_loss"], color=color, linewidth=0.6, alpha=0.6
        )
    axis.set_xlabel("training FLOPs (analytic)")
    axis.set_ylabel("validation loss (nats per byte)")
    axis.set_title("Validation loss against training compute (dots: growth)")
    axis.grid(alpha=0.3)
    axis.legend()
    # Skip the untrained start so the interesting range is readable.
    trained = [
        point["val_loss"]
        for run in runs.values()
        for point in run["val_loss_curve"][1:]
    ]
    if trained:
        axis.set_ylim(min(trained) - 0.05, min(max(trained), 4.0) + 0.05)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def format_saving(saving):
    if saving["kind"] == "measured":
        return f"{100 * saving['saving']:.1f}%"
    return f"at most {100 * saving['saving']:.1f}% (target not reached)"


def report_markdown(result, plot_path, report_path):
    settings = result["settings"]
    runs = result["runs"]
    lines = [
        "## Progressive scaling against training from scratch",
        "",
        common.environment_markdown(result["environment"]),
        "",
        f"Data: bundled `tinyshakespeare.txt`, byte-level (vocabulary 256), "
        f"first 90% for training, last 10% for validation "
        f"({settings['val_windows']} evenly spaced windows). Every run sees "
        f"the same batches ({settings['batch_size']} x "
        f"{settings['sequence_length']} tokens) in the same order.",
        "",
        f"Optimizer recipe (all runs): AdamW, beta 0.9/0.95, weight decay "
        f"{settings['weight_decay']}, clip norm 1.0, peak learning rate "
        f"{settings['peak_learning_rate']}, cosine decay to "
        f"{settings['final_learning_rate_fraction']} of the peak over the "
        f"run's steps, linear warmup of {settings['warmup_steps']} steps for "
        f"every new optimizer (a grown model gets a fresh AdamW). "
        f"Progressive runs: stages of {list(settings['stage_steps'])} steps; "
        f"scratch runs: {settings['scratch_steps']} steps.",
        "",
        f"Models: hidden size {settings['hidden_dim']}, "
        f"{settings['num_layers']} layers, {settings['num_heads']} heads. "
        f"Nexusformer (M, A) per stage {list(map(list, settings['nexus_stages']))} "
        f"(attention and feed-forward alike), grown with "
        f"`keras_nexus.grow_model`. Tokenformer (attention tokens, "
        f"feed-forward tokens) per stage "
        f"{list(map(list, result['tokenformer_stages']))}, grown by "
        f"appending tokens (new keys zero, new values random). Transformer: "
        f"KerasHub Llama, hidden size {settings['transformer_hidden_dim']}, "
        f"SwiGLU width {result['transformer_intermediate_dim']}.",
        "",
        "Training FLOPs per step = 3 x forward FLOPs (backward = 2 x "
        "forward), counting matrix products only, at 2 FLOPs per "
        "multiply-add, for T tokens per sequence and B sequences:",
        "",
        "- Nexus-Rank layer: `2BT(D_in*M + M*A + A*D_out)`; "
        "Pattention layer with n tokens: `2BT*n*(D_in + D_out)`; "
        "Llama: `2BT*D*(2D + 2D_kv) + 6BT*D*F` per layer.",
        "- Attention scores and weighted values: `4*B*T^2*H*head_dim` per "
        "layer (full T x T, as computed). Output head: `2BT*D*V`.",
        "- Not counted: normalisations, activations, softmax, rotary "
        "embeddings, embedding lookups, optimizer updates, evaluation.",
        "",
        "flops_to_target: FLOPs at the first evaluation whose validation loss "
        "is at or below the target, interpolated linearly from the previous "
        "evaluation. compute_saving = 1 - flops_to_target(progressive) / "
        "flops_to_target(scratch), with the target set to the final "
        "validation loss of the same family's scratch run.",
        "",
    ]

    rows = []
    for name, run in runs.items():
        target = run.get("flops_to_target")
        rows.append(
            [
                name,
                f"{run['parameters']:,}",
                run["steps"],
                common.format_flops(run["flops"]),
                f"{run['final_val_loss']:.4f}",
                f"{math.exp(run['final_val_loss']):.3f}",
                common.format_flops(target) if target is not None
                else "not reached",
                f"{run['wall_seconds']:.0f}",
            ]
        )
    lines.append(
        common.markdown_table(
            [
                "run",
                "parameters (final)",
                "steps",
                "training FLOPs",
                "final val loss",
                "perplexity (per byte)",
                "FLOPs to family target",
                "wall s",
            ],
            rows,
        )
    )
    lines.append("")

    saving_rows = []
    for family, saving in result["compute_saving_detail"].items():
        saving_rows.append(
            [
                family,
                f"{saving['target_val_loss']:.4f}",
                common.format_flops(saving["flops_to_target_scratch"]),
                common.format_flops(saving["flops_to_target_progressive"])
                if saving["progressive_reached_target"]
                else "not reached",
                format_saving(saving),
            ]
        )
    cross = result["nexusformer_vs_tokenformer_progressive"]
    saving_rows.append(
        [
            "Nexusformer progressive vs Tokenformer progressive",
            f"{cross['target_val_loss']:.4f}",
            common.format_flops(cross["flops_to_target_scratch"]),
            common.format_flops(cross["flops_to_target_progressive"])
            if cross["progressive_reached_target"]
            else "not reached",
            format_saving(cross),
        ]
    )
    lines.append(
        common.markdown_table(
            [
                "comparison",
                "target val loss",
                "FLOPs to target (reference)",
                "FLOPs to target (progressive)",
                "compute saving",
            ],
            saving_rows,
        )
    )
    lines.append("")
    lines.append(
        "The last row is the closest analogue of the paper's claim: the "
        "reference is Tokenformer's progressive run, and the target its "
        "final validation loss."
    )
    lines.append("")

    growth_rows = []
    for name, run in runs.items():
        for event in run["growth_events"]:
            growth_rows.append(
                [
                    name,
                    event["step"],
                    f"{event['parameters_before']:,} -> "
                    f"{event['parameters_after']:,}",
                    "not measured"
                    if event["max_abs_diff"] is None
                    else f"{event['max_abs_diff']:.2e}",
                    f"{event['val_loss_before']:.4f} -> "
                    f"{event['val_loss_after']:.4f}",
                ]
            )
    lines.append(
        common.markdown_table(
            [
                "run",
                "growth at step",
                "parameters",
                "max abs logit change",
                "val loss before -> after",
            ],
            growth_rows,
        )
    )
    lines.append("")

    law_rows = []
    for name, law in result["scaling_law"].items():
        law_rows.append(
            [
                name,
                ", ".join(f"{loss:.4f}" for loss in law["fit_losses"]),
                f"{law['law']['asymptote']:.4f} + "
                f"{law['law']['amplitude']:.4f} * "
                f"{law['law']['ratio']:.4f}^k",
                f"{law['predicted'][0]:.4f}",
                f"{law['actual'][0]:.4f}",
                f"{law['absolute_error'][0]:.4f} "
                f"({100 * law['relative_error'][0]:.2f}%)",
            ]
        )
    lines.append(
        "Scaling law (`keras_nexus.scaling`): the validation loss after "
        f"{settings['stage_steps'][0]} steps in stage k is fitted as "
        "`L_k = L_inf + a * r^k` on stages 0-2 and used to predict stage 3. "
        "With three points and three parameters the fit interpolates, so "
        "the prediction error is the only test of the law here."
    )
    lines.append("")
    lines.append(
        common.markdown_table(
            [
                "run",
                "fitted losses (k = 0, 1, 2)",
                "law",
                "predicted k = 3",
                "measured k = 3",
                "error",
            ],
            law_rows,
        )
    )
    lines.append("")
    link = common.relative_link(plot_path, report_path)
    lines.append(f"![Validation loss against training FLOPs]({link})")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_output_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    output_dir, report_path = common.resolve_output_paths(args)
    settings = QUICK_SETTINGS if common.is_quick() else FULL_SETTINGS
    backend = keras.backend.backend()
    keras.config.set_dtype_policy("float32")

    max_steps = max(sum(settings.stage_steps), settings.scratch_steps)
    data = ByteBatches(settings, max_steps)
    progressive_stages = list(range(len(settings.stage_steps)))
    final_stage = progressive_stages[-1]

    runs = {}
    nexus = NexusFamily(settings)
    runs["nexusformer_scratch"] = train_run(
        "nexusformer_scratch",
        nexus,
        [final_stage],
        [settings.scratch_steps],
        data,
        settings,
    )
    runs["nexusformer_progressive"] = train_run(
        "nexusformer_progressive",
        nexus,
        progressive_stages,
        list(settings.stage_steps),
        data,
        settings,
    )
    token = TokenformerFamily(settings)
    runs["tokenformer_scratch"] = train_run(
        "tokenformer_scratch",
        token,
        [final_stage],
        [settings.scratch_steps],
        data,
        settings,
    )
    runs["tokenformer_progressive"] = train_run(
        "tokenformer_progressive",
        token,
        progressive_stages,
        list(settings.stage_steps),
        data,
        settings,
    )
    llama = TransformerFamily(
        settings, runs["nexusformer_scratch"]["parameters"]
    )
    runs["transformer_scratch"] = train_run(
        "transformer_scratch",
        llama,
        [0],
        [settings.scratch_steps],
        data,
        settings,
    )

    savings = {
        family: compute_saving(
            runs[f"{family}_progressive"], runs[f"{family}_scratch"]
        )
        for family in ("nexusformer", "tokenformer")
    }
    for family in ("nexusformer", "tokenformer"):
        target = savings[family]["target_val_loss"]
        for kind in ("progressive", "scratch"):
            run = runs[f"{family}_{kind}"]
            run["flops_to_target"] = flops_to_target(
                run["val_loss_curve"], target
            )
    transformer_run = runs["transformer_scratch"]
    transformer_run["flops_to_target"] = flops_to_target(
        transformer_run["val_loss_curve"], transformer_run["final_val_loss"]
    )
    cross = compute_saving(
        runs["nexusformer_progressive"], runs["tokenformer_progressive"]
    )

    result = {
        "environment": common.environment_record(backend),
        "settings": dataclasses.asdict(settings),
        "tokenformer_stages": token.stages,
        "transformer_intermediate_dim": llama.intermediate_dim,
        "runs": runs,
        "compute_saving": {
            family: saving["saving"] for family, saving in savings.items()
        },
        "compute_saving_detail": savings,
        "nexusformer_vs_tokenformer_progressive": cross,
        "scaling_law": {
            name: scaling_law_report(runs[name])
            for name in ("nexusformer_progressive", "tokenformer_progressive")
        },
    }

    json_path = os.path.join(output_dir, f"{NAME}.json")
    plot_path = os.path.join(output_dir, f"{NAME}.png")
    common.write_json(json_path, result)
    plot_curves(runs, savings, plot_path)
    common.update_report_section(
        report_path, NAME, report_markdown(result, plot_path, report_path)
    )
    logger.info("Wrote %s, %s and %s", json_path, plot_path, report_path)
    return result


if __name__ == "__main__":
    main()
