"""Smoke tests of the benchmark scripts and checks of their baselines.

Each script runs once in quick mode (`KERAS_NEXUS_QUICK=1`, tiny models)
in a subprocess on the current Keras backend, writing into a temporary
directory so that the committed results stay untouched.
"""

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from benchmarks import progressive_scaling
from benchmarks.baselines import tokenformer
from benchmarks.baselines import transformer
from tests.reference import gelu

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED_REPORT = os.path.join(REPOSITORY, "benchmarks", "RESULTS.md")


def _run_quick(script, output_dir, *extra):
    environment = dict(
        os.environ,
        KERAS_NEXUS_QUICK="1",
        KERAS_BACKEND=keras.backend.backend(),
    )
    command = [
        sys.executable,
        os.path.join(REPOSITORY, "benchmarks", script),
        "--output-dir",
        str(output_dir),
        *extra,
    ]
    report_mtime = (
        os.path.getmtime(COMMITTED_REPORT)
        if os.path.exists(COMMITTED_REPORT)
        else None
    )
    completed = subprocess.run(
        command,
        env=environment,
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    if report_mtime is not None:
        assert os.path.getmtime(COMMITTED_REPORT) == report_mtime
    name = script.removesuffix(".py")
    with open(output_dir / f"{name}.json", encoding="utf-8") as file:
        result = json.load(file)
    assert (output_dir / f"{name}.png").stat().st_size > 0
    report = (output_dir / "RESULTS.md").read_text(encoding="utf-8")
    assert f"<!-- BEGIN {name} -->" in report
    assert f"({name}.png)" in report
    return result


def _assert_finite_number(value, where):
    assert isinstance(value, (int, float)), f"{where} is {value!r}"
    assert not isinstance(value, bool), f"{where} is a boolean"
    assert math.isfinite(value), f"{where} is {value!r}"


def test_progressive_scaling_quick(tmp_path):
    result = _run_quick("progressive_scaling.py", tmp_path)

    expected_runs = {
        "nexusformer_progressive",
        "nexusformer_scratch",
        "tokenformer_progressive",
        "tokenformer_scratch",
        "transformer_scratch",
    }
    assert set(result["runs"]) == expected_runs
    for name, run in result["runs"].items():
        for key in ("parameters", "flops", "final_val_loss"):
            _assert_finite_number(run[key], f"{name}.{key}")
        assert run["flops"] > 0
        assert len(run["val_loss_curve"]) >= 2
        for point in run["val_loss_curve"]:
            _assert_finite_number(point["val_loss"], f"{name} curve loss")
            _assert_finite_number(point["flops"], f"{name} curve flops")
        flops = [point["flops"] for point in run["val_loss_curve"]]
        assert flops == sorted(flops)
        assert flops[-1] == run["flops"]
        if name.endswith("scratch"):
            _assert_finite_number(
                run["flops_to_target"], f"{name}.flops_to_target"
            )
        elif run["flops_to_target"] is not None:
            _assert_finite_number(
                run["flops_to_target"], f"{name}.flops_to_target"
            )
    assert set(result["compute_saving"]) == {"nexusformer", "tokenformer"}
    for family, saving in result["compute_saving"].items():
        _assert_finite_number(saving, f"compute_saving.{family}")
        assert saving <= 1.0

    nexus = result["runs"]["nexusformer_progressive"]
    assert len(nexus["growth_events"]) == 3
    for event in nexus["growth_events"]:
        assert event["parameters_after"] > event["parameters_before"]
        # Nexusformer growth keeps the function: the loss does not move.
        assert event["val_loss_after"] == pytest.approx(
            event["val_loss_before"], abs=1e-4
        )
    for name, law in result["scaling_law"].items():
        _assert_finite_number(law["predicted"][0], f"{name} prediction")
        _assert_finite_number(law["absolute_error"][0], f"{name} error")


def test_throughput_quick(tmp_path):
    backend = keras.backend.backend()
    result = _run_quick("throughput.py", tmp_path, "--backend", backend)

    _assert_finite_number(result["matmul_peak_flops"], "matmul_peak_flops")
    assert set(result["backends"]) == {backend}
    record = result["backends"][backend]
    for key in (
        "tokens_per_second",
        "model_flops_utilization",
        "llama_tokens_per_second",
    ):
        _assert_finite_number(record[key], key)
        assert record[key] > 0
    profile = record["nexus_rank_dense_profile"]
    for variant in ("nexus_rank_dense", "matmuls_only", "no_normalization"):
        _assert_finite_number(
            profile[variant]["seconds_per_step_median"], variant
        )


def test_grow_cost_quick(tmp_path):
    result = _run_quick("grow_cost.py", tmp_path)

    assert len(result["sizes"]) >= 3
    parameters = [record["parameters"] for record in result["sizes"]]
    assert parameters == sorted(parameters)
    for record in result["sizes"]:
        for operation in ("grow", "save", "load"):
            _assert_finite_number(
                record[operation]["seconds"], f"{operation} seconds"
            )
        assert record["grow"]["parameters_after"] > record["parameters"]
        assert record["save"]["file_mb"] > 0


# === Baselines and analysis helpers, checked without training ===


def test_pattention_matches_float64_reference():
    layer = tokenformer.Pattention(
        5,
        num_param_tokens=7,
        key_initializer=keras.initializers.RandomNormal(stddev=0.5),
        value_initializer=keras.initializers.RandomNormal(stddev=0.5),
    )
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")

    outputs = ops.convert_to_numpy(layer(x))

    keys = ops.convert_to_numpy(layer.key_tokens).astype(np.float64)
    values = ops.convert_to_numpy(layer.value_tokens).astype(np.float64)
    scores = x.astype(np.float64) @ keys.T
    norms = np.sqrt(np.sum(scores**2, axis=-1, keepdims=True))
    expected = gelu(scores / norms * math.sqrt(7)) @ values
    np.testing.assert_allclose(outputs, expected, atol=1e-5, rtol=0)


def test_tokenformer_growth_zero_keys_random_values():
    model = tokenformer.build_tokenformer_lm(
        vocabulary_size=17,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        attention_param_tokens=3,
        ffn_param_tokens=6,
        seed=1,
    )

    grown, max_abs_diff = tokenformer.grow_tokenformer(
        model, 5, 9, seed=2, verify=False
    )

    old = {weight.path: weight for weight in model.weights}
    for weight in grown.weights:
        value = ops.convert_to_numpy(weight)
        previous = ops.convert_to_numpy(old[weight.path])
        count = previous.shape[0]
        np.testing.assert_array_equal(value[:count], previous)
        if weight.path.endswith("key_tokens"):
            np.testing.assert_array_equal(value[count:], 0.0)
        if weight.path.endswith("value_tokens"):
            assert np.all(np.any(value[count:] != 0.0, axis=-1))
    assert max_abs_diff is None
    assert grown.tokenformer_config["attention_param_tokens"] == 5
    assert grown.tokenformer_config["ffn_param_tokens"] == 9


def test_baseline_flop_counters_match_hand_count():
    config = {
        "vocabulary_size": 11,
        "num_layers": 2,
        "num_heads": 2,
        "hidden_dim": 4,
        "attention_param_tokens": 3,
        "ffn_param_tokens": 5,
    }
    # Per layer: 4 * 2*6*3*(4+4) + 2*6*5*(4+4) + 2*(2*2*3*3*4) = 1152 + 480
    # + 288; head 2*6*4*11 = 528. Two sequences of three tokens.
    forward = tokenformer.tokenformer_forward_flops(config, 3, batch_size=2)
    assert forward == 2 * (1152 + 480 + 288) + 528
    assert tokenformer.tokenformer_training_flops(config, 3, 2) == 3 * forward

    llama = {
        "vocabulary_size": 11,
        "num_layers": 1,
        "num_heads": 2,
        "num_key_value_heads": 1,
        "hidden_dim": 4,
        "intermediate_dim": 6,
    }
    # 2*3*(2*4*4 + 2*4*2) + 3*2*3*4*6 + 2*(2*1*3*3*4) + 2*3*4*11
    expected = 2 * 3 * (32 + 16) + 432 + 144 + 264
    assert transformer.llama_forward_flops(llama, 3) == expected
    assert transformer.llama_parameter_count(llama) == (
        2 * 16 + 2 * 8 + 3 * 24 + 2 * 4 + 2 * 11 * 4 + 4
    )


def test_flops_to_target_interpolates():
    curve = [
        {"flops": 0, "val_loss": 5.0},
        {"flops": 10, "val_loss": 3.0},
        {"flops": 20, "val_loss": 2.0},
    ]

    assert progressive_scaling.flops_to_target(curve, 2.5) == 15.0
    assert progressive_scaling.flops_to_target(curve, 3.0) == 10.0
    assert progressive_scaling.flops_to_target(curve, 5.5) == 0.0
    assert progressive_scaling.flops_to_target(curve, 1.9) is None


def test_compute_saving_bounds_unreached_target():
    scratch = {
        "final_val_loss": 2.0,
        "flops": 100,
        "val_loss_curve": [
            {"flops": 0, "val_loss": 5.0},
            {"flops": 100, "val_loss": 2.0},
        ],
    }
    reached = {
        "flops": 80,
        "val_loss_curve": [
            {"flops": 0, "val_loss": 5.0},
            {"flops": 40, "val_loss": 3.0},
            {"flops": 60, "val_loss": 1.0},
        ],
    }
    unreached = {
        "flops": 70,
        "val_loss_curve": [
            {"flops": 0, "val_loss": 5.0},
            {"flops": 70, "val_loss": 2.5},
        ],
    }

    measured = progressive_scaling.compute_saving(reached, scratch)
    bound = progressive_scaling.compute_saving(unreached, scratch)

    assert measured["flops_to_target_progressive"] == 50.0
    assert measured["saving"] == pytest.approx(0.5)
    assert measured["kind"] == "measured"
    assert bound["saving"] == pytest.approx(0.3)
    assert bound["kind"] == "upper_bound"
    assert bound["progressive_reached_target"] is False
