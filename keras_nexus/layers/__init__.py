"""Keras layers of Nexusformer."""

from keras_nexus.layers.nexus_attention import NexusAttention
from keras_nexus.layers.nexus_rank_dense import NexusRankDense
from keras_nexus.layers.nexusformer_decoder import NexusformerDecoder
from keras_nexus.layers.rms_normalization import NexusRMSNormalization

__all__ = [
    "NexusAttention",
    "NexusRankDense",
    "NexusRMSNormalization",
    "NexusformerDecoder",
]
