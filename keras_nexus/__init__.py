"""keras-nexus: Nexusformer layers, models and exact model growth for Keras 3."""

from keras_nexus import layers
from keras_nexus import models
from keras_nexus.growth import GrowthReport
from keras_nexus.growth import GrowthVerificationError
from keras_nexus.growth import grow_model
from keras_nexus.layers import NexusAttention
from keras_nexus.layers import NexusRankDense
from keras_nexus.version import __version__

__all__ = [
    "GrowthReport",
    "GrowthVerificationError",
    "NexusAttention",
    "NexusRankDense",
    "__version__",
    "grow_model",
    "layers",
    "models",
]
