"""keras-nexus: Nexusformer layers, models and exact model growth for Keras 3.

Public names are loaded on first use, so that `import keras_nexus` does not
import Keras yet: the command line chooses the Keras backend first.
`keras_nexus.NexusRankDense`, `keras_nexus.grow_model`,
`keras_nexus.layers`, `keras_nexus.models` and the other names below work
as plain attributes.
"""

import importlib

from keras_nexus.version import __version__

_SUBMODULES = (
    "data",
    "flops",
    "growth",
    "layers",
    "models",
    "scaling",
    "training",
)
_ATTRIBUTES = {
    "GrowthReport": "keras_nexus.growth",
    "GrowthVerificationError": "keras_nexus.growth",
    "grow_model": "keras_nexus.growth",
    "NexusAttention": "keras_nexus.layers",
    "NexusRankDense": "keras_nexus.layers",
}

__all__ = ["__version__", *_SUBMODULES, *_ATTRIBUTES]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"keras_nexus.{name}")
    if name in _ATTRIBUTES:
        return getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'keras_nexus' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
