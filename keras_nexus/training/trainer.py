"""Progressive training: train, grow exactly, keep training, repeat."""

import json
import logging
import math
import os
import time

import keras
from keras import ops

from keras_nexus.data import CorpusError
from keras_nexus.data import TextCorpus
from keras_nexus.growth import grow_model
from keras_nexus.models import NexusformerBackbone
from keras_nexus.models import NexusformerCausalLM
from keras_nexus.models import NexusformerCausalLMPreprocessor
from keras_nexus.models import NexusformerTokenizer
from keras_nexus.training import checkpoints
from keras_nexus.training.optimizer_state import optimizer_state
from keras_nexus.training.optimizer_state import restore_optimizer_state
from keras_nexus.training.optimizer_state import transfer_optimizer_state
from keras_nexus.training.plotting import plot_losses
from keras_nexus.training.schedule import VOCABULARY_SIZE
from keras_nexus.training.schedule import Schedule

logger = logging.getLogger(__name__)

# Validation losses right before and right after a growth must agree this
# closely; growth is exact, so a larger jump means a bug.
GROWTH_LOSS_TOLERANCE = 1e-4


class GrowthLossMismatchError(RuntimeError):
    """The validation loss changed across a growth by more than 1e-4."""


class _LossRecorder(keras.callbacks.Callback):
    """Record the mean training loss of every Keras epoch (`log_every`
    steps)."""

    def __init__(self, losses):
        super().__init__()
        self.losses = losses

    def on_epoch_end(self, epoch, logs=None):
        self.losses.append(float(logs["loss"]))


def make_optimizer(schedule):
    """Return the AdamW optimizer of a schedule.

    A linear warm-up to `learning_rate` is followed by one cosine decay
    (to a tenth of the peak) over all remaining steps of all stages. The
    step counter carries across growth, so growth continues the schedule
    rather than restarting it.
    """
    warmup = min(schedule.warmup_steps, schedule.total_steps - 1)
    learning_rate = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(schedule.total_steps - warmup, 1),
        alpha=0.1,
        warmup_target=schedule.learning_rate,
        warmup_steps=max(warmup, 0),
    )
    return keras.optimizers.AdamW(
        learning_rate=learning_rate,
        weight_decay=schedule.weight_decay,
        beta_2=0.95,
        global_clipnorm=1.0,
    )


def compile_for_training(model, optimizer):
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[],
    )


def with_preprocessor(model, sequence_length):
    """Return a CausalLM sharing `model`'s backbone, with a preprocessor."""
    preprocessor = NexusformerCausalLMPreprocessor(
        NexusformerTokenizer(), sequence_length=sequence_length
    )
    return NexusformerCausalLM(model.backbone, preprocessor=preprocessor)


class ProgressiveTrainer:
    """Train a Nexusformer on text in stages, growing it between stages.

    Each stage after the first grows the model with `grow_model` (which
    verifies that the outputs are unchanged), carries the AdamW state over,
    checks that the validation loss is unchanged by the growth, then trains
    with `model.fit`. After every stage a checkpoint is written, so an
    interrupted run resumes from its last completed stage.

    Training runs on a `NexusformerCausalLM` without a preprocessor, fed
    with token-id batches from `keras_nexus.data`. Saved models carry a
    `NexusformerCausalLMPreprocessor`, so `generate()` takes text.

    Args:
        schedule: A `keras_nexus.training.Schedule`.
        output_dir: Directory for checkpoints, metrics and the final model.
        texts: Text files or directories to train on; `None` means the
            bundled Shakespeare corpus.
        carry_optimizer_state: If `True` (the default), Adam moments of old
            weights move into the grown model's optimizer, with zeros for
            new weights. If `False`, every growth starts a fresh optimizer.
            In both cases the step count, and so the learning-rate
            schedule, continues.
        verbose: Keras `fit` verbosity (1 shows progress bars).
        callbacks: Extra Keras callbacks passed to every `fit` call.

    Examples:

    ```python
    from keras_nexus.training import ProgressiveTrainer, default_schedule

    schedule = default_schedule(num_stages=2, steps_per_stage=50)
    metrics = ProgressiveTrainer(schedule, "runs/example").run()
    metrics["stages"][1]["val_loss_after_growth"]
    ```
    """

    def __init__(
        self,
        schedule,
        output_dir,
        texts=None,
        carry_optimizer_state=True,
        verbose=1,
        callbacks=None,
    ):
        self.schedule = schedule
        self.output_dir = output_dir
        self.texts = texts
        self.carry_optimizer_state = carry_optimizer_state
        self.verbose = verbose
        self.callbacks = list(callbacks or [])

    def _log(self, message):
        logger.info(message)
        if self.verbose:
            print(message, flush=True)

    def run(self, resume=False, overwrite=False):
        """Run the schedule and return the metrics dict (as in metrics.json).

        Args:
            resume: Continue the run in `output_dir` after its last
                completed stage, with the schedule stored there.
            overwrite: Replace a non-empty `output_dir`.

        Raises:
            OutputDirectoryError: if `output_dir` cannot be used.
            CorpusError: if a text file cannot be read.
            GrowthLossMismatchError: if a growth changes the validation loss
                by more than 1e-4.
        """
        if resume and overwrite:
            raise checkpoints.OutputDirectoryError(
                "Choose either resume (--resume) or overwrite (--overwrite), "
                "not both."
            )
        if resume:
            checkpoints.prepare_output_directory(
                self.output_dir, resume=True, overwrite=False
            )
            self.schedule = self._stored_schedule()
        schedule = self.schedule

        # Read the text before touching the output directory, so that bad
        # input leaves nothing behind.
        try:
            corpus = TextCorpus.from_paths(
                self.texts,
                sequence_length=schedule.sequence_length,
                validation_fraction=schedule.validation_fraction,
            )
        except CorpusError:
            raise
        except ValueError as error:
            # The text is readable but too short for the schedule.
            raise CorpusError(
                f"{error} (command line: --sequence-length, or more --text)"
            ) from error
        if not resume:
            checkpoints.prepare_output_directory(
                self.output_dir, resume=False, overwrite=overwrite
            )
            checkpoints.write_json_atomic(
                self._path("schedule.json"), self.schedule.to_dict()
            )
        validation = corpus.validation_dataset(
            schedule.sequence_length, schedule.batch_size
        ).take(schedule.eval_batches)
        keras.utils.set_random_seed(schedule.seed)

        done = checkpoints.completed_stages(self.output_dir) if resume else []
        if done:
            model, metrics = self._resume(done[-1])
        else:
            model = self._build_first_model()
            compile_for_training(model, make_optimizer(schedule))
            metrics = {"schedule": schedule.to_dict(), "stages": []}
        start = len(metrics["stages"])
        if start == len(schedule.stages):
            self._log(
                f"The run in {self.output_dir} is already complete "
                f"({start} stages); nothing to resume."
            )
            return metrics

        for index in range(start, len(schedule.stages)):
            stage = schedule.stages[index]
            record = {"index": index}
            if stage.grow:
                model = self._grow(model, stage.grow, index, validation, record)
            self._train_stage(model, corpus, validation, index, record)
            metrics["stages"].append(record)
            self._save_stage(model, index, record, metrics)

        checkpoints.save_final_model(
            self.output_dir, with_preprocessor(model, schedule.sequence_length)
        )
        self._log(f"Final model saved to {self._path('model.keras')}")
        return metrics

    def _path(self, name):
        return os.path.join(self.output_dir, name)

    def _stored_schedule(self):
        with open(self._path("schedule.json"), encoding="utf-8") as file:
            return Schedule.from_dict(json.load(file), source="schedule.json")

    def _build_first_model(self):
        backbone = NexusformerBackbone(
            vocabulary_size=VOCABULARY_SIZE, **self.schedule.model
        )
        return NexusformerCausalLM(backbone)

    def _resume(self, last_stage):
        saved, values, _ = checkpoints.load_stage(self.output_dir, last_stage)
        model = NexusformerCausalLM(saved.backbone)
        optimizer = make_optimizer(self.schedule)
        restore_optimizer_state(optimizer, model, values)
        compile_for_training(model, optimizer)
        with open(self._path("metrics.json"), encoding="utf-8") as file:
            metrics = json.load(file)
        metrics["stages"] = metrics["stages"][: last_stage + 1]
        self._log(
            f"Resuming after stage {last_stage} at step "
            f"{int(ops.convert_to_numpy(optimizer.iterations))}."
        )
        return model, metrics

    def _evaluate(self, model, validation):
        results = model.evaluate(validation, verbose=0, return_dict=True)
        return float(results["loss"])

    def _grow(self, model, grow, index, validation, record):
        before = self._evaluate(model, validation)
        grown = grow_model(model, seed=self.schedule.seed + index, **grow)
        report = grown.growth_report
        optimizer = transfer_optimizer_state(
            model,
            grown,
            report.transfers,
            fresh=not self.carry_optimizer_state,
        )
        compile_for_training(grown, optimizer)
        after = self._evaluate(grown, validation)

        record.update(
            {
                "growth": {k: list(v) for k, v in report.changes.items()},
                "growth_max_abs_diff": report.max_abs_diff,
                "val_loss_before_growth": before,
                "val_loss_after_growth": after,
            }
        )
        self._log(
            f"Stage {index}: {report.summary()}; validation loss "
            f"{before:.6f} -> {after:.6f}"
        )
        if not abs(after - before) <= GROWTH_LOSS_TOLERANCE:
            raise GrowthLossMismatchError(
                f"Growth before stage {index} changed the validation loss "
                f"from {before:.6f} to {after:.6f}, more than "
                f"{GROWTH_LOSS_TOLERANCE}. The checkpoint of stage "
                f"{index - 1} is intact."
            )
        return grown

    def _train_stage(self, model, corpus, validation, index, record):
        schedule = self.schedule
        stage = schedule.stages[index]
        step = int(ops.convert_to_numpy(model.optimizer.iterations))
        tokens_per_step = schedule.batch_size * schedule.sequence_length
        self._log(
            f"Stage {index}: {model.count_params():,} parameters, "
            f"{stage.steps} steps from step {step}"
        )

        # One endless, seeded stream of batches for the whole run; skipping
        # the steps already taken continues it across stages and resumes.
        train = corpus.train_dataset(
            schedule.sequence_length,
            schedule.batch_size,
            seed=schedule.seed,
            repeat=True,
        ).skip(step)
        losses = []
        recorder = _LossRecorder(losses)
        full_epochs, remainder = divmod(stage.steps, schedule.log_every)
        start_time = time.perf_counter()
        if full_epochs:
            model.fit(
                train,
                epochs=full_epochs,
                steps_per_epoch=schedule.log_every,
                verbose=self.verbose,
                callbacks=[recorder] + self.callbacks,
            )
        if remainder:
            # A fresh iterator restarts the stream, so skip what was used.
            model.fit(
                train.skip(full_epochs * schedule.log_every),
                epochs=1,
                steps_per_epoch=remainder,
                verbose=self.verbose,
                callbacks=[recorder] + self.callbacks,
            )
        seconds = time.perf_counter() - start_time
        val_loss = self._evaluate(model, validation)

        chunk_steps = [schedule.log_every] * full_epochs
        chunk_steps += [remainder] if remainder else []
        tokens_at = []
        position = step
        for chunk in chunk_steps:
            position += chunk
            tokens_at.append(position * tokens_per_step)
        record.update(
            {
                "parameters": int(model.count_params()),
                "config": {
                    key: value
                    for key, value in model.backbone.get_config().items()
                    if isinstance(value, (int, float)) and key != "trainable"
                },
                "steps": stage.steps,
                "first_step": step,
                "tokens": stage.steps * tokens_per_step,
                "cumulative_tokens": (step + stage.steps) * tokens_per_step,
                "train_loss": losses,
                "train_loss_tokens": tokens_at,
                "val_loss": val_loss,
                "seconds": round(seconds, 3),
            }
        )
        record.setdefault("growth_max_abs_diff", None)
        perplexity = math.exp(min(val_loss, 50.0))
        self._log(
            f"Stage {index} done: train loss {losses[-1]:.4f}, validation "
            f"loss {val_loss:.4f} (perplexity {perplexity:.2f}), "
            f"{seconds:.1f} s"
        )

    def _save_stage(self, model, index, record, metrics):
        checkpoints.save_stage(
            self.output_dir,
            index,
            with_preprocessor(model, self.schedule.sequence_length),
            optimizer_state(model.optimizer),
            record,
        )
        checkpoints.write_json_atomic(self._path("metrics.json"), metrics)
        plot_losses(metrics, self._path("loss.png"))
