"""Tests of progressive training: schedules, optimizer state, resume."""

import json
import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_nexus import grow_model
from keras_nexus.models import NexusformerBackbone
from keras_nexus.models import NexusformerCausalLM
from keras_nexus.training import ProgressiveTrainer
from keras_nexus.training import Schedule
from keras_nexus.training import ScheduleError
from keras_nexus.training import default_schedule
from keras_nexus.training import load_schedule
from keras_nexus.training import transfer_optimizer_state
from keras_nexus.training.checkpoints import completed_stages
from keras_nexus.training.checkpoints import load_stage

TINY_MODEL = {
    "num_layers": 1,
    "num_query_heads": 2,
    "num_key_value_heads": 1,
    "hidden_dim": 16,
    "nexus_hidden_dim": 24,
    "nexus_expanded_dim": 32,
    "ffn_hidden_dim": 24,
    "ffn_expanded_dim": 32,
}


def tiny_schedule(**overrides):
    data = {
        "model": TINY_MODEL,
        "sequence_length": 16,
        "batch_size": 4,
        "learning_rate": 1e-2,
        "warmup_steps": 2,
        "eval_batches": 2,
        "log_every": 3,
        "stages": [
            {"steps": 6},
            {"steps": 6, "grow": {"num_layers": 2, "nexus_hidden_dim": 32}},
        ],
    }
    data.update(overrides)
    return Schedule.from_dict(data)


def write_text(directory, repeats=60):
    lines = [
        "It is a truth universally acknowledged, that a single man in "
        "possession of a good fortune, must be in want of a wife.",
        "However little known the feelings or views of such a man may be "
        "on his first entering a neighbourhood, this truth is so well fixed.",
    ]
    path = os.path.join(directory, "novel.txt")
    with open(path, "w", encoding="utf-8") as file:
        file.write("\n".join(lines * repeats))
    return path


def test_schedule_file_round_trip(tmp_path):
    schedule = tiny_schedule()
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(schedule.to_dict()))

    loaded = load_schedule(str(path))

    assert loaded == schedule
    assert loaded.total_steps == 12


@pytest.mark.parametrize(
    "change, pattern",
    [
        ({"stages": []}, "must not be empty"),
        ({"stages": [{"steps": 0}]}, "steps must be an integer >= 1"),
        ({"stages": [{"steps": 2, "grow": {"num_layers": 2}}]}, "stage 0"),
        ({"stages": [{"steps": 2}, {"steps": 2}]}, "no 'grow' entry"),
        (
            {"stages": [{"steps": 2}, {"steps": 2, "grow": {"depth": 3}}]},
            "unknown axis 'depth'",
        ),
        ({"learning_rate": -1.0}, "learning_rate must be positive"),
        ({"learning_rate": "fast"}, "learning_rate must be a number"),
        ({"batch_size": 0}, "batch_size must be an integer"),
        ({"model": {"width": 3}}, "unknown model keys"),
        ({"epochs": 3}, "unknown keys"),
        (
            {"stages": [{"steps": 2}, {"steps": 2, "grow": {"hidden_dim": 8}}]},
            "would shrink",
        ),
    ],
)
def test_invalid_schedules_rejected(change, pattern):
    data = tiny_schedule().to_dict()
    data.update(change)

    with pytest.raises(ScheduleError, match=pattern):
        Schedule.from_dict(data)


def test_schedule_file_errors(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")

    with pytest.raises(ScheduleError, match="not valid JSON"):
        load_schedule(str(broken))
    with pytest.raises(ScheduleError, match="not found"):
        load_schedule(str(tmp_path / "missing.json"))


def test_default_schedule_grows_nexus_axes():
    schedule = default_schedule(num_stages=3, steps_per_stage=10)

    assert [stage.steps for stage in schedule.stages] == [10, 10, 10]
    assert schedule.stages[1].grow["nexus_hidden_dim"] == 144
    assert schedule.stages[2].grow["nexus_hidden_dim"] == 216
    assert schedule.stages[2].grow["num_layers"] == 4


def _trained_model(steps=3):
    backbone = NexusformerBackbone(vocabulary_size=64, **TINY_MODEL)
    model = NexusformerCausalLM(backbone)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(0, 64, (4, 8)).astype("int32"),
        "padding_mask": np.ones((4, 8), "int32"),
    }
    y = rng.integers(0, 64, (4, 8)).astype("int32")
    model.fit(x, y, batch_size=4, epochs=steps, verbose=0)
    return model


def test_optimizer_moments_follow_their_weights():
    model = _trained_model()
    grown = grow_model(model, nexus_hidden_dim=30, hidden_dim=20, num_layers=2)
    optimizer = transfer_optimizer_state(
        model, grown, grown.growth_report.transfers
    )

    old = model.optimizer
    assert int(ops.convert_to_numpy(optimizer.iterations)) == 3
    old_vars = {v.path: v for v in model.trainable_variables}
    new_vars = {v.path: v for v in grown.trainable_variables}

    # The hidden kernel of an old block: old rows and columns keep their
    # moments, new ones start at zero.
    path = "transformer_layer_0/self_attention/query/hidden_kernel"
    for slot in ("_momentums", "_velocities"):
        old_moment = ops.convert_to_numpy(
            getattr(old, slot)[old._get_variable_index(old_vars[path])]
        )
        new_moment = ops.convert_to_numpy(
            getattr(optimizer, slot)[
                optimizer._get_variable_index(new_vars[path])
            ]
        )
        np.testing.assert_array_equal(new_moment[:16, :24], old_moment)
        np.testing.assert_array_equal(new_moment[16:, :], 0.0)
        np.testing.assert_array_equal(new_moment[:, 24:], 0.0)
        assert np.any(old_moment != 0)

    # RMS gains are scaled by s = sqrt(16 / 20) on growth, so the first
    # moment is divided by s and the second by s ** 2.
    path = "sequence_output_layernorm/scale"
    scale = np.sqrt(16 / 20)
    for slot, power in (("_momentums", 1), ("_velocities", 2)):
        old_moment = ops.convert_to_numpy(
            getattr(old, slot)[old._get_variable_index(old_vars[path])]
        )
        new_moment = ops.convert_to_numpy(
            getattr(optimizer, slot)[
                optimizer._get_variable_index(new_vars[path])
            ]
        )
        np.testing.assert_allclose(
            new_moment[:16], old_moment / scale**power, rtol=1e-6
        )


def test_fresh_optimizer_keeps_only_the_step_count():
    model = _trained_model()
    grown = grow_model(model, num_layers=2)

    optimizer = transfer_optimizer_state(
        model, grown, grown.growth_report.transfers, fresh=True
    )

    assert int(ops.convert_to_numpy(optimizer.iterations)) == 3
    for moment in optimizer._momentums + optimizer._velocities:
        np.testing.assert_array_equal(ops.convert_to_numpy(moment), 0.0)


def test_progressive_run_records_exact_growth(tmp_path):
    text = write_text(str(tmp_path))
    output = str(tmp_path / "run")

    metrics = ProgressiveTrainer(
        tiny_schedule(), output, texts=[text], verbose=0
    ).run()

    first, second = metrics["stages"]
    assert second["parameters"] > first["parameters"]
    assert abs(
        second["val_loss_after_growth"] - second["val_loss_before_growth"]
    ) <= 1e-4
    assert second["val_loss_before_growth"] == pytest.approx(first["val_loss"])
    assert second["growth_max_abs_diff"] <= 1e-5
    assert len(first["train_loss"]) == 2
    assert second["first_step"] == 6
    assert second["cumulative_tokens"] == 12 * 4 * 16
    assert metrics["stages"][1]["val_loss"] < 5.5  # ln(256) at the start
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["stages"] == json.loads(json.dumps(metrics["stages"]))
    assert (tmp_path / "run" / "loss.png").stat().st_size > 0
    assert completed_stages(output) == [0, 1]


class _InterruptAtStage(keras.callbacks.Callback):
    """Raise KeyboardInterrupt in the first batch of stage `stage`."""

    def __init__(self, first_step):
        super().__init__()
        self.first_step = first_step

    def on_train_batch_begin(self, batch, logs=None):
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        if step >= self.first_step:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_from_last_stage(tmp_path):
    text = write_text(str(tmp_path))
    output = str(tmp_path / "run")
    schedule = tiny_schedule()

    with pytest.raises(KeyboardInterrupt):
        ProgressiveTrainer(
            schedule,
            output,
            texts=[text],
            verbose=0,
            callbacks=[_InterruptAtStage(first_step=7)],
        ).run()
    saved_metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    model, optimizer_values, stage = load_stage(output, 0)

    assert completed_stages(output) == [0]
    assert len(saved_metrics["stages"]) == 1
    assert stage["index"] == 0
    assert int(optimizer_values[0]) == 6  # the iteration counter
    assert model.preprocessor is not None

    metrics = ProgressiveTrainer(schedule, output, texts=[text], verbose=0).run(
        resume=True
    )

    assert len(metrics["stages"]) == 2
    assert metrics["stages"][0] == saved_metrics["stages"][0]
    assert metrics["stages"][1]["first_step"] == 6
    assert completed_stages(output) == [0, 1]
    assert os.path.exists(os.path.join(output, "model.keras"))


def test_resume_of_complete_run_changes_nothing(tmp_path):
    text = write_text(str(tmp_path))
    output = str(tmp_path / "run")
    trainer = ProgressiveTrainer(tiny_schedule(), output, texts=[text], verbose=0)
    first = trainer.run()
    model_file = os.path.join(output, "model.keras")
    modified = os.path.getmtime(model_file)

    again = ProgressiveTrainer(
        tiny_schedule(), output, texts=[text], verbose=0
    ).run(resume=True)

    assert again["stages"] == json.loads(json.dumps(first["stages"]))
    assert os.path.getmtime(model_file) == modified
    assert oct(os.stat(os.path.join(output, "metrics.json")).st_mode)[-3:] == "644"
