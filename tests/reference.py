"""Independent float64 numpy references of the Nexusformer equations."""

import math

import numpy as np


def gelu(x):
    """Exact (erf) GELU in float64."""
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def nexus_rank_dense(x, hidden, expanded, output, scale, epsilon=1e-5):
    """Return the three-stage Nexus-Rank mapping of `x`, in float64."""
    x = np.asarray(x, np.float64)
    stages = []
    for kernel in (hidden, expanded):
        h = x @ np.asarray(kernel, np.float64)
        norm = np.sqrt(np.sum(h * h, axis=-1, keepdims=True))
        x = gelu(h / (norm + epsilon) * scale)
        stages.append(x)
    return x @ np.asarray(output, np.float64)
