"""Tests of `keras.distribution` support for Nexusformer, on every backend.

On JAX the models run on the eight virtual CPU devices that
tests/conftest.py creates, and each distributed result is compared with the
same model on one device. Keras 3.15.1 implements `keras.distribution` only
for JAX, so on TensorFlow and torch the sharding tests are skipped with the
reason. There the tests cover the layout map object, check that a
distribution scope is ignored, and run each framework's own data
parallelism (`tf.distribute.MirroredStrategy`, torch
`DistributedDataParallel`). Those runs happen in fresh processes, so that
their device setup cannot leak into other tests.

Every test that sets a distribution does so with `distribution.scope()`,
which restores the previous (default: no) distribution on exit.
`_no_distribution_leaks` checks that.
"""

import datetime
import os
import re
import socket
import subprocess
import sys
import tempfile

import keras
import numpy as np
import pytest

import keras_nexus
from keras_nexus.models import NexusformerBackbone
from keras_nexus.models import NexusformerCausalLM
from keras_nexus.models.nexusformer import nexusformer_layout

BACKEND = keras.backend.backend()

NOT_IMPLEMENTED_REASONS = {
    "tensorflow": (
        "keras.distribution does not place or shard variables on "
        "TensorFlow in Keras 3.15.1 (its TensorFlow module is an unfinished "
        "prototype), so DataParallel and ModelParallel scopes train on one "
        "device. TensorFlow users: tf.distribute.MirroredStrategy, tested "
        "in this file."
    ),
    "torch": (
        "keras.distribution has no torch implementation in Keras 3.15.1: "
        "keras.distribution.list_devices raises AttributeError and "
        "DataParallel or ModelParallel scopes are ignored. torch users: the "
        "JAX backend, or torch DistributedDataParallel, tested in this file."
    ),
}

# Divisible by 8 wherever the layout map splits: vocabulary and every
# hidden or expanded width. hidden_dim and the key/value width (2 heads of
# width 4) are not split, so they need not be.
CONFIG = {
    "vocabulary_size": 64,
    "num_layers": 1,
    "num_query_heads": 4,
    "num_key_value_heads": 2,
    "hidden_dim": 16,
    "nexus_hidden_dim": 16,
    "nexus_expanded_dim": 32,
    "ffn_hidden_dim": 32,
    "ffn_expanded_dim": 48,
}

# Expected (axis of the weight -> mesh axis) for each weight kind, written
# out independently of the rules in nexusformer_layout.
EXPECTED_AXES = {
    "token_embedding/embeddings": ("model", None),
    "token_embedding/reverse_embeddings": (None, "model"),
    "hidden_kernel": (None, "model"),
    "expanded_kernel": (None, "model"),
    "output_kernel": ("model", None),
}


def _expected_axes(path):
    for suffix, axes in EXPECTED_AXES.items():
        if path.endswith(suffix):
            return axes
    return None


def _require_jax():
    if BACKEND != "jax":
        pytest.skip(NOT_IMPLEMENTED_REASONS[BACKEND])


def _fake_mesh(shape, axis_names=("batch", "model")):
    # A DeviceMesh only stores device names until a backend uses it, so
    # the layout map can be built on every backend without devices.
    count = int(np.prod(shape))
    devices = np.array([f"cpu:{i}" for i in range(count)]).reshape(shape)
    return keras.distribution.DeviceMesh(shape, axis_names, devices)


def _device_mesh(shape):
    devices = keras.distribution.list_devices()
    assert len(devices) >= int(np.prod(shape)), (
        f"the test needs {int(np.prod(shape))} devices, found {devices}; "
        "tests/conftest.py sets XLA_FLAGS for eight"
    )
    devices = np.array(devices[: int(np.prod(shape))]).reshape(shape)
    return keras.distribution.DeviceMesh(shape, ("batch", "model"), devices)


def _model_parallel(shape=(2, 4)):
    layout_map = NexusformerBackbone.get_layout_map(_device_mesh(shape))
    distribution = keras.distribution.ModelParallel(
        layout_map=layout_map, batch_dim_name="batch"
    )
    return distribution, layout_map


def _data_parallel():
    return keras.distribution.DataParallel(
        devices=keras.distribution.list_devices()[:8]
    )


def _inputs(batch_size=8, length=6, vocabulary_size=64, seed=0):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(1, vocabulary_size, (batch_size, length))
    padding_mask = np.ones((batch_size, length), "int32")
    # Right padding on some rows, so masking takes part in the comparison.
    padding_mask[1, 4:] = 0
    padding_mask[-1, 2:] = 0
    token_ids = np.where(padding_mask == 1, token_ids, 0).astype("int32")
    return {"token_ids": token_ids, "padding_mask": padding_mask}


def _build(kind, config=CONFIG):
    backbone = NexusformerBackbone(**config)
    if kind == "backbone":
        return backbone
    return NexusformerCausalLM(backbone, preprocessor=None)


def _randomize(model, seed=5):
    """Give `model` large random weights, so that outputs are far from zero.

    The default N(0, 0.02) kernels keep logits below 0.3, which would let a
    1e-4 tolerance hide a wrong layout.
    """
    rng = np.random.default_rng(seed)
    weights = []
    for variable in model.weights:
        shape = tuple(variable.shape)
        if len(shape) >= 2:
            weights.append(rng.normal(0.0, 0.5, shape).astype("float32"))
        else:
            weights.append(rng.uniform(0.5, 1.5, shape).astype("float32"))
    model.set_weights(weights)
    return weights


def _compile(model, kind):
    # SGD keeps one step a plain function of the gradient, so a small
    # difference in the all-reduced gradient shows up as is.
    if kind == "backbone":
        loss = "mean_squared_error"
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss=loss)


def _targets(kind, seed=1):
    rng = np.random.default_rng(seed)
    if kind == "backbone":
        return rng.normal(size=(8, 6, CONFIG["hidden_dim"])).astype("float32")
    return rng.integers(0, CONFIG["vocabulary_size"], (8, 6)).astype("int32")


def _one_step(model, kind):
    _compile(model, kind)
    model.fit(
        _inputs(),
        _targets(kind),
        batch_size=8,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def _check_sharded(model, layout_map, model_axis_size):
    """Assert that each weight of rank >= 2 has its layout-map layout."""
    checked = 0
    for variable in model.weights:
        axes = _expected_axes(variable.path)
        if len(variable.shape) < 2:
            assert axes is None, variable.path
            continue
        assert axes is not None, f"no expected layout for {variable.path}"
        assert tuple(layout_map[variable.path].axes) == axes, variable.path

        sharding = variable.value.sharding
        assert tuple(sharding.spec) == axes, variable.path
        split_axis = axes.index("model")
        expected_shard = list(variable.shape)
        expected_shard[split_axis] //= model_axis_size
        shards = variable.value.addressable_shards
        shard_shapes = {tuple(shard.data.shape) for shard in shards}
        assert shard_shapes == {tuple(expected_shard)}, variable.path
        assert len(sharding.device_set) == 8, variable.path
        checked += 1
    return checked


@pytest.fixture(autouse=True)
def _no_distribution_leaks():
    leaked = "a keras.distribution was left set by an earlier test"
    assert keras.distribution.distribution() is None, leaked
    yield
    leaked = "this test left a keras.distribution set"
    assert keras.distribution.distribution() is None, leaked


# --- The layout map itself: no devices needed, every backend. ---


def test_layout_map_covers_every_matrix():
    backbone = NexusformerBackbone(**{**CONFIG, "num_layers": 2})
    layout_map = NexusformerBackbone.get_layout_map(_fake_mesh((2, 4)))

    assert isinstance(layout_map, keras.distribution.LayoutMap)
    matrices = [w for w in backbone.weights if len(w.shape) >= 2]
    assert len(matrices) == 2 + 2 * 15
    for variable in backbone.weights:
        layout = layout_map[variable.path]
        if len(variable.shape) < 2:
            # RMS normalisation scales stay replicated.
            assert layout is None, variable.path
            continue
        assert layout is not None, f"no rule matches {variable.path}"
        assert tuple(layout.axes) == _expected_axes(variable.path)
        assert len(layout.axes) == len(variable.shape), variable.path
        assert layout.device_mesh.shape == (2, 4)


def test_layout_map_rules_and_prefixes():
    layout_map = NexusformerBackbone.get_layout_map(
        _fake_mesh((1, 2), ("data", "tensor")),
        model_parallel_dim_name="tensor",
        data_parallel_dim_name="data",
    )
    nested = "nexusformer_causal_lm/transformer_layer_3/feedforward/"

    assert layout_map[nested + "output_kernel"].axes == ("tensor", None)
    assert layout_map[nested + "hidden_kernel"].axes == (None, "tensor")
    assert layout_map["token_embedding/reverse_embeddings"].axes == (
        None,
        "tensor",
    )
    # Rules match whole path components, not any name that ends alike.
    assert layout_map["my_token_embedding/embeddings"] is None
    assert layout_map["dense/output_kernel"] is None
    assert layout_map["transformer_layer_0/feedforward/kernel"] is None


def test_layout_map_tied_embeddings():
    backbone = NexusformerBackbone(**{**CONFIG, "tie_word_embeddings": True})
    layout_map = NexusformerBackbone.get_layout_map(_fake_mesh((2, 4)))

    paths = [w.path for w in backbone.weights]
    assert "token_embedding/reverse_embeddings" not in paths
    assert layout_map["token_embedding/embeddings"].axes == ("model", None)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"device_mesh": "mesh"}, "must be a `keras.distribution.DeviceMesh`"),
        ({"model_parallel_dim_name": "tensor"}, "model_parallel_dim_name="),
        ({"data_parallel_dim_name": "data"}, "data_parallel_dim_name="),
        ({"data_parallel_dim_name": "model"}, "must name different"),
    ],
)
def test_layout_map_rejects_invalid_arguments(arguments, message):
    arguments = {"device_mesh": _fake_mesh((2, 4)), **arguments}

    with pytest.raises(ValueError, match=message):
        NexusformerBackbone.get_layout_map(**arguments)


def test_check_model_parallel_widths():
    mesh = _fake_mesh((1, 8))
    nexusformer_layout.check_model_parallel_widths(CONFIG, mesh)

    bad = {**CONFIG, "vocabulary_size": 66, "ffn_expanded_dim": 36}
    with pytest.raises(ValueError) as error:
        nexusformer_layout.check_model_parallel_widths(bad, mesh)
    assert "'vocabulary_size': 66" in str(error.value)
    assert "'ffn_expanded_dim': 36" in str(error.value)
    assert "nexus_hidden_dim" not in str(error.value)

    # Head counts and hidden_dim are never split: 2 key/value heads and a
    # hidden_dim of 12 fit a model axis of 8.
    backbone = NexusformerBackbone(
        **{**CONFIG, "hidden_dim": 12, "num_query_heads": 2, "head_dim": 4}
    )
    nexusformer_layout.check_model_parallel_widths(backbone, mesh)

    with pytest.raises(ValueError, match="model_parallel_dim_name='tensor'"):
        nexusformer_layout.check_model_parallel_widths(CONFIG, mesh, "tensor")


# --- JAX: sharded execution compared with one device. ---


def test_model_parallel_matches_one_device():
    _require_jax()
    inputs = _inputs()
    reference = _build("causal_lm")
    _randomize(reference)
    expected_logits = reference.predict(inputs, verbose=0)

    distribution, layout_map = _model_parallel((2, 4))
    with distribution.scope():
        model = _build("causal_lm")
        model.set_weights(reference.get_weights())
        checked = _check_sharded(model, layout_map, model_axis_size=4)
        logits = model.predict(inputs, verbose=0)

    assert checked == 2 + 15
    np.testing.assert_allclose(logits, expected_logits, atol=1e-4, rtol=0)
    # The logits must be far from zero, or the tolerance means nothing.
    assert np.abs(expected_logits).max() > 1.0


def test_model_parallel_gathers_no_weights():
    _require_jax()
    import jax

    # Hidden widths (24, 32) differ from every other width (16, 8, 40, 48,
    # 64), so the last axis of a gathered tensor identifies it.
    config = {**CONFIG, "nexus_hidden_dim": 24, "nexus_expanded_dim": 40}
    distribution, _ = _model_parallel((2, 4))
    with distribution.scope():
        model = _build("causal_lm", config)
        inputs = {
            name: jax.device_put(
                value, distribution.get_data_layout(value.shape).backend_layout
            )
            for name, value in _inputs().items()
        }

        def forward(trainable, non_trainable, inputs):
            return model.stateless_call(trainable, non_trainable, inputs)[0]

        compiled = jax.jit(forward).lower(
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            inputs,
        )
        hlo = compiled.compile().as_text()

    gathered = []
    for line in hlo.splitlines():
        match = re.search(r"\ball-gather(?:-start)?\(", line)
        if match:
            result = line[: match.start()]
            for dims in re.findall(r"\w+\[([\d,]*)\]", result):
                gathered.append(tuple(int(d) for d in dims.split(",") if d))
    # One gather of the activated hidden units per NexusRankDense layer,
    # and nothing else: no weight (rank 2) and no residual stream.
    assert gathered, "no all-gather found; did the HLO format change?"
    for shape in gathered:
        assert len(shape) == 3, shape
        assert shape[-1] in (24, 32), shape


def test_model_axis_larger_than_key_value_heads():
    _require_jax()
    # CONFIG has 2 key/value heads of width 4, against a model axis of 8.
    inputs = _inputs()
    reference = _build("causal_lm")
    _randomize(reference)
    expected = reference.predict(inputs, verbose=0)

    distribution, layout_map = _model_parallel((1, 8))
    with distribution.scope():
        model = _build("causal_lm")
        model.set_weights(reference.get_weights())
        _check_sharded(model, layout_map, model_axis_size=8)
        logits = model.predict(inputs, verbose=0)

    attention = model.backbone.get_layer("transformer_layer_0").self_attention
    key_kernel = attention.key_dense.output_kernel
    # The key projection's output width (2 heads x 4) is not split.
    assert tuple(key_kernel.shape) == (32, 8)
    assert key_kernel.value.sharding.shard_shape((32, 8)) == (4, 8)
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def one_device_steps():
    """Weights before and after one SGD step on one device, by model kind."""
    if BACKEND != "jax":
        return None
    results = {}
    for kind in ("backbone", "causal_lm"):
        keras.utils.set_random_seed(99)
        model = _build(kind)
        initial = model.get_weights()
        results[kind] = (initial, _one_step(model, kind))
    return results


@pytest.mark.parametrize("kind", ["backbone", "causal_lm"])
@pytest.mark.parametrize("strategy", ["data_parallel", "model_parallel"])
def test_one_training_step_matches_one_device(
    strategy, kind, one_device_steps
):
    _require_jax()
    initial, expected = one_device_steps[kind]

    if strategy == "data_parallel":
        distribution, layout_map = _data_parallel(), None
    else:
        distribution, layout_map = _model_parallel((2, 4))
    with distribution.scope():
        model = _build(kind)
        model.set_weights(initial)
        weights = _one_step(model, kind)
        if layout_map is not None:
            # The optimizer step keeps every kernel split.
            _check_sharded(model, layout_map, model_axis_size=4)
        else:
            assert len(model.weights[0].value.sharding.device_set) == 8

    largest_update = max(
        np.abs(after - before).max() for before, after in zip(initial, expected)
    )
    assert largest_update > 1e-3
    for variable, actual, reference in zip(model.weights, weights, expected):
        np.testing.assert_allclose(
            actual, reference, atol=2e-6, rtol=0, err_msg=variable.path
        )


def test_grow_model_under_model_parallel():
    _require_jax()
    inputs = _inputs()

    distribution, layout_map = _model_parallel((2, 4))
    with distribution.scope():
        model = _build("causal_lm")
        _randomize(model)
        expected = model.predict(inputs, verbose=0)
        grown = keras_nexus.grow_model(
            model, nexus_hidden_dim=32, num_layers=2, verify=True
        )
        checked = _check_sharded(grown, layout_map, model_axis_size=4)
        logits = grown.predict(inputs, verbose=0)

    for index in (0, 1):
        block = grown.backbone.get_layer(f"transformer_layer_{index}")
        query = block.self_attention.query_dense
        assert tuple(query.hidden_kernel.shape) == (16, 32)
        assert tuple(query.expanded_kernel.shape) == (32, 32)
    assert checked == 2 + 2 * 15
    assert grown.growth_report.max_abs_diff <= 1e-5
    np.testing.assert_allclose(logits, expected, atol=1e-5, rtol=0)
    assert np.abs(expected).max() > 1.0


# --- TensorFlow and torch: what Keras 3.15.1 does there. ---


@pytest.mark.parametrize("strategy", ["data_parallel", "model_parallel"])
def test_distribution_scope_ignored_off_jax(strategy):
    if BACKEND == "jax":
        pytest.skip("JAX implements keras.distribution; tested above.")
    reference = _build("backbone")
    initial = reference.get_weights()
    expected = _one_step(reference, "backbone")

    # Fake device names: a backend that used the mesh would fail here.
    mesh = _fake_mesh((2, 4))
    if strategy == "data_parallel":
        distribution = keras.distribution.DataParallel(
            devices=mesh.devices.flatten().tolist()
        )
    else:
        distribution = keras.distribution.ModelParallel(
            layout_map=NexusformerBackbone.get_layout_map(mesh),
            batch_dim_name="batch",
        )
    with distribution.scope():
        model = _build("backbone")
        model.set_weights(initial)
        weights = _one_step(model, "backbone")

    for actual, reference_weight in zip(weights, expected):
        np.testing.assert_allclose(actual, reference_weight, atol=1e-6)


def test_list_devices_per_backend():
    if BACKEND == "torch":
        # Keras 3.15.1 has no torch module behind keras.distribution.
        with pytest.raises(AttributeError):
            keras.distribution.list_devices()
        return

    devices = keras.distribution.list_devices()
    assert all(device.startswith("cpu:") for device in devices), devices
    if BACKEND == "jax":
        assert len(devices) == 8, devices


def _start_worker(*arguments):
    """Start this file as a script in a fresh process, with this backend."""
    environment = {**os.environ, "KERAS_BACKEND": BACKEND}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment["PYTHONPATH"] = os.pathsep.join(
        [root, environment.get("PYTHONPATH", "")]
    )
    command = [sys.executable, os.path.abspath(__file__)]
    return subprocess.Popen(
        command + [str(argument) for argument in arguments],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait(process):
    try:
        _, stderr = process.communicate(timeout=WORKER_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        pytest.fail(
            f"worker timed out after {WORKER_TIMEOUT_SECONDS} s. Its "
            f"stderr ends with: {stderr[-4000:]}"
        )
    assert process.returncode == 0, stderr[-4000:]


def _load(path):
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def test_tensorflow_mirrored_strategy_step():
    if BACKEND != "tensorflow":
        pytest.skip(f"tf.distribute needs the TensorFlow backend ({BACKEND}).")

    with tempfile.TemporaryDirectory() as directory:
        output = os.path.join(directory, "mirrored.npz")
        _wait(_start_worker("mirrored", output))
        replicas, *weights = _load(output)

    inputs, labels = _worker_data()
    model = _worker_model()
    before = model.get_weights()
    _compile(model, "causal_lm")
    model.fit(inputs, labels, batch_size=4, shuffle=False, verbose=0)
    expected = model.get_weights()

    assert int(replicas) == 2
    assert max(np.abs(b - e).max() for b, e in zip(before, expected)) > 1e-3
    for actual, reference in zip(weights, expected):
        np.testing.assert_allclose(actual, reference, atol=2e-6, rtol=0)


def test_torch_distributed_data_parallel_step():
    if BACKEND != "torch":
        pytest.skip(f"torch DDP needs the torch backend ({BACKEND}).")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with tempfile.TemporaryDirectory() as directory:
        outputs = [os.path.join(directory, f"rank{i}.npz") for i in (0, 1)]
        ranks = [
            _start_worker("ddp", rank, 2, port, output)
            for rank, output in enumerate(outputs)
        ]
        try:
            for process in ranks:
                _wait(process)
        finally:
            # A rank left waiting for a failed peer would outlive the test.
            for process in ranks:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        (world_size, *weights), (_, *rank1_weights) = map(_load, outputs)

    model = _worker_model()
    before = model.get_weights()
    _ddp_step(model, model, *_worker_data())
    expected = model.get_weights()

    assert int(world_size) == 2
    assert max(np.abs(b - e).max() for b, e in zip(before, expected)) > 1e-3
    for actual, rank1, reference in zip(weights, rank1_weights, expected):
        # Each rank saw half the batch. The all-reduced gradient must give
        # both ranks the full-batch step.
        np.testing.assert_allclose(actual, reference, atol=2e-6, rtol=0)
        np.testing.assert_array_equal(actual, rank1)


# --- Workers: run in fresh processes by the two tests above. ---

# A fresh import of Keras, KerasHub and TensorFlow takes 5 to 30 seconds on
# a loaded CPU machine, and each worker does one.
WORKER_TIMEOUT_SECONDS = 300

WORKER_CONFIG = {
    **CONFIG,
    "vocabulary_size": 32,
    "hidden_dim": 8,
    "num_query_heads": 2,
    "num_key_value_heads": 1,
}


def _worker_model():
    keras.utils.set_random_seed(7)
    return _build("causal_lm", WORKER_CONFIG)


def _worker_data():
    inputs = _inputs(batch_size=4, vocabulary_size=32, seed=3)
    labels = np.random.default_rng(4).integers(0, 32, (4, 6))
    return inputs, labels


def _mirrored_worker(output):
    """Take one SGD step with MirroredStrategy on two logical CPUs."""
    import tensorflow as tf

    # Logical devices can only be configured before TensorFlow starts,
    # which is why this runs in its own process.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = _worker_model()
        _compile(model, "causal_lm")
    inputs, labels = _worker_data()
    model.fit(inputs, labels, batch_size=4, shuffle=False, verbose=0)

    # A mirrored variable contains one copy per replica.
    replicas = len(model.trainable_variables[0].value.values)
    np.savez(output, replicas, *model.get_weights())


def _ddp_step(model, module, inputs, labels):
    """Take one SGD step of `model` through `module` (the model or DDP)."""
    import torch

    variables = [v.value for v in model.trainable_variables]
    optimizer = torch.optim.SGD(variables, lr=1.0)
    logits = module({k: torch.as_tensor(v) for k, v in inputs.items()})
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        torch.as_tensor(labels).reshape(-1),
    )
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def _ddp_worker(rank, world_size, port, output):
    """Take one SGD step as one rank of torch DDP on half of the batch."""
    import torch
    import torch.distributed as dist

    class KerasModule(torch.nn.Module):
        # KerasHub models list no parameters on torch (keras-hub 0.32.0
        # sets `_torch_params` past `nn.Module.__setattr__`), so the
        # variables are handed to DDP here.
        def __init__(self, model):
            super().__init__()
            self.model = model
            self.keras_variables = torch.nn.ParameterList(
                [v.value for v in model.trainable_variables]
            )

        def forward(self, inputs):
            return self.model(inputs)

    rank, world_size = int(rank), int(world_size)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=WORKER_TIMEOUT_SECONDS),
    )
    try:
        model = _worker_model()
        ddp = torch.nn.parallel.DistributedDataParallel(KerasModule(model))
        inputs, labels = _worker_data()
        rows = np.array_split(np.arange(len(labels)), world_size)[rank]
        shard = {key: value[rows] for key, value in inputs.items()}
        _ddp_step(model, ddp, shard, labels[rows])
        np.savez(output, dist.get_world_size(), *model.get_weights())
    finally:
        dist.destroy_process_group()
    # NOTE: with torch 2.13 on CPU, a rank sometimes hangs in interpreter
    # shutdown after the process group is destroyed. Everything is saved
    # by now, so skip the shutdown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    worker = {"mirrored": _mirrored_worker, "ddp": _ddp_worker}[sys.argv[1]]
    worker(*sys.argv[2:])
