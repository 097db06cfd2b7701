"""The Nexusformer model family, in the layout of KerasHub."""

from keras_nexus.models.nexusformer.nexusformer_backbone import (
    NexusformerBackbone,
)
from keras_nexus.models.nexusformer.nexusformer_causal_lm import (
    NexusformerCausalLM,
)
from keras_nexus.models.nexusformer.nexusformer_causal_lm_preprocessor import (
    NexusformerCausalLMPreprocessor,
)
from keras_nexus.models.nexusformer.nexusformer_tokenizer import (
    NexusformerTokenizer,
)

__all__ = [
    "NexusformerBackbone",
    "NexusformerCausalLM",
    "NexusformerCausalLMPreprocessor",
    "NexusformerTokenizer",
]
