"""Preprocessing for the Nexusformer causal language model."""

import keras
from keras_hub.models import CausalLMPreprocessor

from keras_nexus.models.nexusformer.nexusformer_backbone import (
    NexusformerBackbone,
)
from keras_nexus.models.nexusformer.nexusformer_tokenizer import (
    NexusformerTokenizer,
)


@keras.saving.register_keras_serializable(package="keras_nexus")
class NexusformerCausalLMPreprocessor(CausalLMPreprocessor):
    """Turn strings into Nexusformer training and generation inputs.

    Called on strings it tokenizes, adds the start and end tokens, pads or
    truncates to `sequence_length` and returns `(x, y, sample_weight)`: `x`
    is a dict with `"token_ids"` and `"padding_mask"`, `y` is the token ids
    shifted left by one, and `sample_weight` is zero on padding.
    `generate_preprocess()` and `generate_postprocess()` serve
    `NexusformerCausalLM.generate()`.

    Args:
        tokenizer: A `NexusformerTokenizer`.
        sequence_length: Length of the packed inputs, in tokens (bytes).
        add_start_token: Whether to prepend the start token.
        add_end_token: Whether to append the end token.

    Examples:

    ```python
    from keras_nexus.models import NexusformerCausalLMPreprocessor
    from keras_nexus.models import NexusformerTokenizer

    preprocessor = NexusformerCausalLMPreprocessor(
        NexusformerTokenizer(), sequence_length=8
    )
    x, y, sample_weight = preprocessor(["Hello", "Hi"])
    x["token_ids"].shape  # (2, 8)
    ```
    """

    backbone_cls = NexusformerBackbone
    tokenizer_cls = NexusformerTokenizer
