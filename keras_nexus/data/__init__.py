"""Text corpora and `tf.data` pipelines for training on byte-level tokens.

The usual path from text files to `model.fit`:

```python
from keras_nexus.data import TextCorpus

corpus = TextCorpus.from_paths(sequence_length=128)  # bundled corpus
train = corpus.train_dataset(sequence_length=128, batch_size=32, seed=0)
validation = corpus.validation_dataset(sequence_length=128, batch_size=32)
```

The same steps one by one: `read_texts`, `encode_text`, `split_tokens` and
`make_dataset`.
"""

from keras_nexus.data.corpus import CorpusError
from keras_nexus.data.corpus import TextCorpus
from keras_nexus.data.corpus import default_corpus_path
from keras_nexus.data.corpus import encode_text
from keras_nexus.data.corpus import read_texts
from keras_nexus.data.corpus import split_tokens
from keras_nexus.data.dataset import count_windows
from keras_nexus.data.dataset import make_dataset

__all__ = [
    "CorpusError",
    "TextCorpus",
    "count_windows",
    "default_corpus_path",
    "encode_text",
    "make_dataset",
    "read_texts",
    "split_tokens",
]
