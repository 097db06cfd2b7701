"""Shared pytest setup: eight virtual CPU devices for JAX, quiet logs."""

import os

# Must be set before JAX is imported: the distribution tests need a mesh
# of eight devices, and single-device tests simply use the first one.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def reset_keras_state():
    """Give every test a float32 policy and a fixed seed."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")
