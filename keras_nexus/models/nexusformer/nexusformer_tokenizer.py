"""A byte-level tokenizer with start, end and padding tokens."""

import keras
from keras_hub.tokenizers import ByteTokenizer

from keras_nexus.models.nexusformer.nexusformer_backbone import (
    NexusformerBackbone,
)

# ASCII's own control codes: NUL pads, STX starts a text, ETX ends it. Plain
# text does not contain them, so every printable byte keeps its own id.
PAD_TOKEN = "\x00"
START_TOKEN = "\x02"
END_TOKEN = "\x03"


@keras.saving.register_keras_serializable(package="keras_nexus")
class NexusformerTokenizer(ByteTokenizer):
    """Byte-level tokenizer for Nexusformer: each UTF-8 byte is one token.

    Token ids are the byte values 0 to 255, so the vocabulary has 256
    entries and no training or download is needed. Three ASCII control
    bytes double as special tokens: NUL (id 0) pads, STX (id 2) starts a
    sequence and ETX (id 3) ends it. A text that contains these bytes is
    still tokenized, but they are removed when generated text is
    detokenized.

    Trade-offs of working on bytes: it works offline on any language and
    never meets an unknown token, and the embedding table stays tiny. The
    price is longer sequences (one token per byte rather than about four
    bytes per subword token), so a fixed context window covers less text
    and the model spends capacity on spelling.

    Args:
        lowercase: Whether to lowercase text before tokenizing. Defaults to
            `False`, unlike `keras_hub.tokenizers.ByteTokenizer`.
        **kwargs: Other `keras_hub.tokenizers.ByteTokenizer` arguments.

    Examples:

    ```python
    from keras_nexus.models import NexusformerTokenizer

    tokenizer = NexusformerTokenizer()
    tokenizer("Hi!")  # array([72, 105, 33], dtype=int32)
    tokenizer.detokenize([72, 105, 33])  # "Hi!"
    ```
    """

    backbone_cls = NexusformerBackbone

    def __init__(self, lowercase=False, **kwargs):
        self._add_special_token(PAD_TOKEN, "pad_token")
        self._add_special_token(START_TOKEN, "start_token")
        self._add_special_token(END_TOKEN, "end_token")
        super().__init__(lowercase=lowercase, **kwargs)

    # The vocabulary is the 256 byte values, so a preset contains no
    # vocabulary file. The base class expects asset files, and these two
    # methods keep `save_to_preset` and `from_preset` working without them.
    def save_assets(self, dir_path):
        pass

    def load_preset_assets(self, preset):
        pass
