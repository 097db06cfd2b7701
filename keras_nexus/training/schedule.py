"""Progressive training schedules: a base model and stages with growth."""

import dataclasses
import json

from keras_nexus.growth_axes import BACKBONE_AXES

# Backbone arguments a schedule may set for the first stage. The
# vocabulary is fixed by the byte-level tokenizer.
MODEL_KEYS = (
    "num_layers",
    "num_query_heads",
    "num_key_value_heads",
    "hidden_dim",
    "head_dim",
    "nexus_hidden_dim",
    "nexus_expanded_dim",
    "ffn_hidden_dim",
    "ffn_expanded_dim",
    "rope_max_wavelength",
    "layer_norm_epsilon",
    "dropout",
)
VOCABULARY_SIZE = 256

# The default first stage: about 0.5M parameters, a few seconds per 100
# steps on a 2-core CPU at the default sequence length and batch size.
DEFAULT_MODEL = {
    "num_layers": 2,
    "num_query_heads": 4,
    "num_key_value_heads": 2,
    "hidden_dim": 64,
    "nexus_hidden_dim": 96,
    "nexus_expanded_dim": 128,
    "ffn_hidden_dim": 128,
    "ffn_expanded_dim": 256,
}


class ScheduleError(ValueError):
    """A schedule file or schedule argument is invalid."""


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage: optional growth first, then `steps` optimizer steps.

    Attributes:
        steps: optimizer steps trained in this stage.
        grow: `grow_model` axes and their new values, applied before the
            stage trains. Empty for the first stage.
    """

    steps: int
    grow: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Everything that defines a progressive training run.

    Attributes:
        model: `NexusformerBackbone` arguments of the first stage.
        stages: list of `Stage`; every stage after the first grows.
        sequence_length: tokens (bytes) per training example.
        batch_size: examples per optimizer step.
        learning_rate: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps at the start of the run. The
            cosine decay that follows spans all stages, so growth does not
            restart it.
        validation_fraction: share of the text held out, from its end.
        eval_batches: validation batches per evaluation (at most the whole
            validation split).
        log_every: steps per recorded training-loss point (one Keras
            "epoch" with its own progress bar).
        seed: seed of weights, growth and data order.
    """

    model: dict
    stages: list
    sequence_length: int = 128
    batch_size: int = 16
    learning_rate: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    validation_fraction: float = 0.1
    eval_batches: int = 8
    log_every: int = 10
    seed: int = 0

    @property
    def total_steps(self):
        return sum(stage.steps for stage in self.stages)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data, source="schedule"):
        """Build a schedule from a dict, raising `ScheduleError` if invalid."""
        if not isinstance(data, dict):
            raise ScheduleError(
                f"{source}: expected a JSON object, got {type(data).__name__}."
            )
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ScheduleError(
                f"{source}: unknown keys {sorted(unknown)}; valid keys are "
                f"{sorted(known)}."
            )
        if "stages" not in data:
            raise ScheduleError(f"{source}: missing the 'stages' list.")
        model = dict(DEFAULT_MODEL)
        model.update(data.get("model") or {})
        stages = [
            _parse_stage(stage, index, source)
            for index, stage in enumerate(_as_list(data["stages"], source))
        ]
        options = {k: v for k, v in data.items() if k not in ("model", "stages")}
        schedule = cls(model=model, stages=stages, **options)
        schedule.validate(source)
        return schedule

    def validate(self, source="schedule"):
        """Raise `ScheduleError` naming the first invalid value."""
        unknown = set(self.model) - set(MODEL_KEYS)
        if unknown:
            raise ScheduleError(
                f"{source}: unknown model keys {sorted(unknown)}; valid keys "
                f"are {list(MODEL_KEYS)}."
            )
        for name in (
            "sequence_length",
            "batch_size",
            "eval_batches",
            "log_every",
        ):
            _check_int(source, name, getattr(self, name), minimum=1)
        _check_int(source, "warmup_steps", self.warmup_steps, minimum=0)
        _check_int(source, "seed", self.seed, minimum=0)
        for name in ("validation_fraction", "learning_rate", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ScheduleError(
                    f"{source}: {name} must be a number. Received: {value!r}"
                )
        if not 0.0 < self.validation_fraction < 1.0:
            raise ScheduleError(
                f"{source}: validation_fraction must be in (0, 1). Received: "
                f"{self.validation_fraction!r}"
            )
        if not self.weight_decay >= 0:
            raise ScheduleError(
                f"{source}: weight_decay must be >= 0. Received: "
                f"{self.weight_decay!r}"
            )
        if not self.learning_rate > 0:
            raise ScheduleError(
                f"{source}: learning_rate must be positive. Received: "
                f"{self.learning_rate!r}"
            )
        if not self.stages:
            raise ScheduleError(f"{source}: 'stages' must not be empty.")
        if self.stages[0].grow:
            raise ScheduleError(
                f"{source}: stage 0 trains the base model and cannot grow; "
                "put the growth in stage 1."
            )
        current = dict(self.model)
        for index, stage in enumerate(self.stages[1:], start=1):
            if not stage.grow:
                raise ScheduleError(
                    f"{source}: stage {index} has no 'grow' entry; every "
                    "stage after the first grows the model."
                )
            for axis, value in stage.grow.items():
                # Caught here, not after the earlier stages have trained.
                if current.get(axis) is not None and value < current[axis]:
                    raise ScheduleError(
                        f"{source}: stages[{index}].grow.{axis}={value} "
                        f"would shrink the model, whose {axis} is "
                        f"{current[axis]} by then. Growth needs a value >= "
                        f"{current[axis]}."
                    )
            current.update(stage.grow)


def _as_list(value, source):
    if not isinstance(value, list):
        raise ScheduleError(
            f"{source}: 'stages' must be a list. Received: {value!r}"
        )
    return value


def _check_int(source, name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ScheduleError(
            f"{source}: {name} must be an integer >= {minimum}. Received: "
            f"{value!r}"
        )


def _parse_stage(stage, index, source):
    if not isinstance(stage, dict):
        raise ScheduleError(
            f"{source}: stage {index} must be an object with 'steps' and "
            f"optionally 'grow'. Received: {stage!r}"
        )
    unknown = set(stage) - {"steps", "grow"}
    if unknown:
        raise ScheduleError(
            f"{source}: stage {index} has unknown keys {sorted(unknown)}."
        )
    _check_int(source, f"stages[{index}].steps", stage.get("steps"), 1)
    grow = stage.get("grow") or {}
    if not isinstance(grow, dict):
        raise ScheduleError(
            f"{source}: stages[{index}].grow must be an object of axis: "
            f"value pairs. Received: {grow!r}"
        )
    for axis, value in grow.items():
        if axis not in BACKBONE_AXES:
            raise ScheduleError(
                f"{source}: stages[{index}].grow has unknown axis {axis!r}; "
                f"valid axes are {list(BACKBONE_AXES)}."
            )
        _check_int(source, f"stages[{index}].grow.{axis}", value, 1)
    return Stage(steps=stage["steps"], grow=dict(grow))


def load_schedule(path):
    """Read a JSON schedule file.

    The file contains an object with a `stages` list and optionally `model`
    (backbone arguments of the first stage, merged over `DEFAULT_MODEL`) and
    any other `Schedule` field, for example:

    ```json
    {
      "model": {"num_layers": 2, "hidden_dim": 64},
      "sequence_length": 128,
      "stages": [
        {"steps": 200},
        {"steps": 200, "grow": {"num_layers": 3, "nexus_hidden_dim": 144}}
      ]
    }
    ```

    Raises:
        ScheduleError: if the file is missing, is not valid JSON, or contains
            an invalid schedule.
    """
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except FileNotFoundError:
        raise ScheduleError(f"Schedule file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ScheduleError(f"Cannot read schedule file {path}: {error}")
    except json.JSONDecodeError as error:
        raise ScheduleError(
            f"Schedule file {path} is not valid JSON: {error}"
        ) from None
    return Schedule.from_dict(data, source=str(path))


def default_schedule(num_stages=2, steps_per_stage=200, **options):
    """Return the default schedule: grow the two Nexus-Rank axes each stage.

    Each growth multiplies the attention and feed-forward hidden and
    expanded widths (M and A) by 1.5, the axes Nexusformer grows along, and
    adds one decoder block.

    Args:
        num_stages: number of stages, the first one without growth.
        steps_per_stage: optimizer steps in every stage.
        **options: other `Schedule` fields (for example `sequence_length`).
    """
    _check_int("--stages", "stages", num_stages, 1)
    _check_int("--steps-per-stage", "steps_per_stage", steps_per_stage, 1)
    model = dict(DEFAULT_MODEL)
    stages = [Stage(steps=steps_per_stage)]
    current = dict(model)
    for _ in range(num_stages - 1):
        grow = {}
        for axis in (
            "nexus_hidden_dim",
            "nexus_expanded_dim",
            "ffn_hidden_dim",
            "ffn_expanded_dim",
        ):
            grow[axis] = int(current[axis] * 1.5)
        grow["num_layers"] = current["num_layers"] + 1
        current.update(grow)
        stages.append(Stage(steps=steps_per_stage, grow=grow))
    schedule = Schedule(model=model, stages=stages, **options)
    schedule.validate("default schedule")
    return schedule
