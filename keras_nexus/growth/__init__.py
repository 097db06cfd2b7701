"""Exact growth of Nexusformer models."""

from keras_nexus.growth.grow import grow_model
from keras_nexus.growth.report import GrowthReport
from keras_nexus.growth.report import GrowthVerificationError
from keras_nexus.growth.transfer import AxisMap
from keras_nexus.growth.transfer import WeightTransfer

__all__ = [
    "AxisMap",
    "GrowthReport",
    "GrowthVerificationError",
    "WeightTransfer",
    "grow_model",
]
