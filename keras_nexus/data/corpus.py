"""Plain-text corpora: reading files, byte-level encoding and splitting.

Token ids are UTF-8 byte values, the ids of
`keras_nexus.models.NexusformerTokenizer`, so encoding a corpus needs no
tokenizer model and runs at NumPy speed.
"""

import dataclasses
import importlib.resources
import logging
import math
import numbers
import os
import pathlib

import numpy as np

from keras_nexus.data.dataset import make_dataset

logger = logging.getLogger(__name__)

DEFAULT_CORPUS_FILENAME = "tinyshakespeare.txt"

_UTF8_BOM = "\ufeff"


class CorpusError(ValueError):
    """A corpus path that cannot be read as UTF-8 text.

    The message is one line that names the path and the fix.
    """


def default_corpus_path():
    """Return the path of the bundled tiny Shakespeare corpus.

    The corpus is 1,115,394 bytes of Shakespeare's plays (public domain),
    shipped with the package so that training works offline. Its origin is
    described in `SOURCE.md` next to it.

    Returns:
        A `pathlib.Path` to `tinyshakespeare.txt`.

    Examples:

    ```python
    from keras_nexus.data import default_corpus_path

    default_corpus_path().stat().st_size  # 1115394
    ```
    """
    # NOTE: this is a real file for regular and editable installs. A package
    # imported from a zip archive has no such path and is not supported.
    resource = importlib.resources.files("keras_nexus.data")
    return pathlib.Path(str(resource.joinpath(DEFAULT_CORPUS_FILENAME)))


def _read_bytes(path):
    try:
        return path.read_bytes()
    except PermissionError as error:
        raise CorpusError(
            f"Cannot read corpus file '{path}': permission denied. Give the "
            "current user read access (for example `chmod a+r`) or pass "
            "another file."
        ) from error
    except OSError as error:
        reason = error.strerror or str(error)
        raise CorpusError(
            f"Failed to read corpus file '{path}': {reason}. Check that the "
            "file is a readable UTF-8 text file."
        ) from error


def _decode_utf8(path, data):
    # NUL is the padding token (id 0), and text files do not contain it.
    nul_offset = data.find(b"\x00")
    if nul_offset >= 0:
        raise CorpusError(
            f"Corpus file '{path}' looks binary: it contains a NUL byte at "
            f"byte offset {nul_offset}. Pass UTF-8 text files only."
        )

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CorpusError(
            f"Corpus file '{path}' is not valid UTF-8: byte "
            f"0x{data[error.start]:02x} at byte offset {error.start} "
            f"({error.reason}). Convert the file to UTF-8, for example with "
            "`iconv -f latin1 -t utf-8`."
        ) from error

    # A byte order mark is a marker of the file encoding, not text.
    if text.startswith(_UTF8_BOM):
        text = text[len(_UTF8_BOM) :]
    return text


def _read_file(path):
    text = _decode_utf8(path, _read_bytes(path))
    if not text:
        raise CorpusError(
            f"Corpus file is empty: '{path}'. Add text to it or leave it out "
            "of the corpus paths."
        )
    return text


def _read_directory(directory):
    files = sorted(path for path in directory.rglob("*.txt") if path.is_file())
    if not files:
        raise CorpusError(
            f"No .txt files found in corpus directory '{directory}'. Put "
            "UTF-8 text files with the .txt extension in it (subdirectories "
            "are searched too), or pass the files themselves."
        )

    texts = []
    for path in files:
        text = _decode_utf8(path, _read_bytes(path))
        if text:
            texts.append(text)
        else:
            logger.warning("Skipping empty corpus file '%s'.", path)
    if not texts:
        raise CorpusError(
            f"All {len(files)} .txt files in corpus directory '{directory}' "
            "are empty. Add text to them or pass another directory."
        )
    return texts


def read_texts(paths):
    """Read UTF-8 text files and directories into one string.

    A directory contributes every `*.txt` file inside it and inside its
    subdirectories, in sorted path order. Empty files inside a directory
    are skipped with a logged warning. The texts of all files are joined
    with a newline, in the order of `paths`. A leading UTF-8 byte order mark
    is removed from each file. Line endings are kept as they are.

    Args:
        paths: A path (`str` or `os.PathLike`) or a list of paths, each a
            UTF-8 text file or a directory.

    Returns:
        The joined text, a `str`.

    Raises:
        CorpusError: A `ValueError` raised when

            - a path does not exist, or is neither a file nor a directory,
            - a file is empty,
            - a directory contains no `.txt` file, or only empty ones,
            - a file cannot be read (for example, permission denied),
            - a file contains a NUL byte or is not valid UTF-8. The message
              gives the byte offset of the first bad byte.

    Examples:

    ```python
    from keras_nexus.data import default_corpus_path, read_texts

    text = read_texts(default_corpus_path())
    text[:9]  # "First Cit"
    ```
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [pathlib.Path(path) for path in paths]
    if not paths:
        raise CorpusError(
            "No corpus paths given. Pass at least one UTF-8 text file or a "
            "directory of .txt files."
        )

    texts = []
    for path in paths:
        if path.is_dir():
            texts.extend(_read_directory(path))
        elif path.is_file():
            texts.append(_read_file(path))
        elif path.exists():
            raise CorpusError(
                f"Corpus path is neither a regular file nor a directory: "
                f"'{path}'. Pass a UTF-8 text file or a directory of .txt "
                "files."
            )
        else:
            raise CorpusError(
                f"Corpus path not found: '{path}'. Check the path, or pass an "
                "existing UTF-8 text file or a directory of .txt files."
            )

    text = "\n".join(texts)
    logger.info(
        "Read %d corpus texts (%d characters) from %d paths.",
        len(texts),
        len(text),
        len(paths),
    )
    return text


def encode_text(text):
    """Encode text into byte-level token ids.

    The ids are the UTF-8 bytes of `text`, which are exactly the ids that
    `keras_nexus.models.NexusformerTokenizer` returns, without start or end
    tokens. Encoding is one NumPy buffer conversion, fast enough for
    corpora of hundreds of megabytes.

    Args:
        text: A `str`.

    Returns:
        A 1-D NumPy int32 array with one id (0 to 255) per UTF-8 byte.

    Raises:
        TypeError: If `text` is not a `str`.

    Examples:

    ```python
    from keras_nexus.data import encode_text

    encode_text("Hé!")  # array([ 72, 195, 169,  33], dtype=int32)
    ```
    """
    if not isinstance(text, str):
        raise TypeError(
            f"`text` must be a str. Received an object of type "
            f"{type(text).__name__}. Decode bytes with `.decode('utf-8')` "
            "first."
        )
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)


def _validation_size(num_tokens, validation_fraction):
    return int(num_tokens * validation_fraction)


def _split_is_valid(num_tokens, validation_fraction, window_length):
    num_validation = _validation_size(num_tokens, validation_fraction)
    if num_tokens - num_validation < window_length:
        return False
    return validation_fraction == 0 or num_validation >= window_length


def _min_tokens_for_split(validation_fraction, window_length):
    # Start at or below the analytic bound and step up, so that the result
    # uses the same rounding as the split itself. Both part sizes grow
    # monotonically with num_tokens, so the first valid size is the minimum.
    estimate = (window_length - 1) / (1 - validation_fraction)
    if validation_fraction > 0:
        estimate = max(estimate, window_length / validation_fraction)
    num_tokens = max(window_length, math.floor(estimate) - 2)
    while not _split_is_valid(num_tokens, validation_fraction, window_length):
        num_tokens += 1
    return num_tokens


def split_tokens(tokens, validation_fraction=0.1, *, sequence_length):
    """Split token ids into a training part and a validation part.

    The validation part is the last `int(len(tokens) * validation_fraction)`
    tokens, so it is text the model never trains on (a random split of
    overlapping windows would leak training text into validation). The
    training part is everything before it.

    Args:
        tokens: 1-D array of token ids, for example from `encode_text`.
        validation_fraction: Fraction of the tokens to hold out, from 0
            (inclusive) to 1 (exclusive). With 0 the validation part is
            empty.
        sequence_length: Number of input tokens per training example. Each
            part must hold at least one window of `sequence_length + 1`
            tokens (the validation part only if `validation_fraction > 0`).

    Returns:
        `(train_tokens, validation_tokens)`, two 1-D slices of `tokens` as
        NumPy arrays.

    Raises:
        ValueError: If an argument is invalid, or if a part is shorter than
            one window. The message gives the number of tokens (bytes of
            text) needed.

    Examples:

    ```python
    import numpy as np
    from keras_nexus.data import split_tokens

    train, validation = split_tokens(
        np.arange(1000), validation_fraction=0.1, sequence_length=64
    )
    len(train), len(validation)  # (900, 100)
    validation[0]  # 900
    ```
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(
            "`tokens` must be a 1-D array of token ids. Received an array "
            f"of shape {tokens.shape}."
        )
    if (
        isinstance(validation_fraction, bool)
        or not isinstance(validation_fraction, numbers.Real)
        or not 0 <= validation_fraction < 1
    ):
        raise ValueError(
            "`validation_fraction` must be a number in [0, 1). Received: "
            f"validation_fraction={validation_fraction!r}"
        )
    if (
        isinstance(sequence_length, bool)
        or not isinstance(sequence_length, numbers.Integral)
        or sequence_length < 1
    ):
        raise ValueError(
            "`sequence_length` must be a positive integer. Received: "
            f"sequence_length={sequence_length!r}"
        )

    num_tokens = len(tokens)
    num_validation = _validation_size(num_tokens, validation_fraction)
    window_length = sequence_length + 1
    if not _split_is_valid(num_tokens, validation_fraction, window_length):
        needed = _min_tokens_for_split(validation_fraction, window_length)
        raise ValueError(
            f"Too little text to split: received {num_tokens} tokens, and "
            f"validation_fraction={validation_fraction} leaves "
            f"{num_tokens - num_validation} training and {num_validation} "
            "validation tokens, but each part needs at least one window of "
            f"sequence_length + 1 = {window_length} tokens. Provide at least "
            f"{needed} tokens (bytes of text), or reduce `sequence_length`."
        )

    split_index = num_tokens - num_validation
    return tokens[:split_index], tokens[split_index:]


@dataclasses.dataclass(frozen=True, eq=False)
class TextCorpus:
    """Training and validation token ids of one corpus, with their datasets.

    Build it with `TextCorpus.from_paths`, or directly from two token
    arrays. The datasets come from `keras_nexus.data.make_dataset`.

    Attributes:
        train_tokens: 1-D int array of training token ids.
        validation_tokens: 1-D int array of validation token ids, taken
            from the end of the text. It is empty when the corpus was split
            with `validation_fraction=0`.

    Examples:

    ```python
    from keras_nexus.data import TextCorpus

    corpus = TextCorpus.from_paths(sequence_length=128)
    corpus.num_train_tokens  # 1003855
    train = corpus.train_dataset(sequence_length=128, batch_size=32, seed=0)
    validation = corpus.validation_dataset(sequence_length=128, batch_size=32)
    ```
    """

    train_tokens: np.ndarray
    validation_tokens: np.ndarray

    @classmethod
    def from_paths(
        cls, paths=None, *, sequence_length, validation_fraction=0.1
    ):
        """Read, encode and split a corpus.

        Args:
            paths: Paths for `read_texts`. `None` means the bundled corpus
                (`default_corpus_path()`).
            sequence_length: Input tokens per example. The split is checked
                to hold at least one window of `sequence_length + 1` tokens
                in each part.
            validation_fraction: Fraction of the tokens held out from the
                end of the text, as in `split_tokens`.

        Returns:
            A `TextCorpus`.

        Raises:
            CorpusError: If a path cannot be read as UTF-8 text.
            ValueError: If the text is too short for the split.
        """
        if paths is None:
            paths = default_corpus_path()
        tokens = encode_text(read_texts(paths))
        train_tokens, validation_tokens = split_tokens(
            tokens,
            validation_fraction,
            sequence_length=sequence_length,
        )
        return cls(train_tokens, validation_tokens)

    @property
    def num_train_tokens(self):
        """Number of training tokens."""
        return len(self.train_tokens)

    @property
    def num_validation_tokens(self):
        """Number of validation tokens."""
        return len(self.validation_tokens)

    def train_dataset(
        self,
        sequence_length,
        batch_size,
        shuffle=True,
        seed=None,
        repeat=False,
        stride=None,
    ):
        """Build the training dataset (shuffled by default) with `make_dataset`.

        The arguments are those of `make_dataset`.
        """
        return make_dataset(
            self.train_tokens,
            sequence_length,
            batch_size,
            shuffle=shuffle,
            seed=seed,
            repeat=repeat,
            stride=stride,
        )

    def validation_dataset(self, sequence_length, batch_size, stride=None):
        """Build the validation dataset, unshuffled and not repeated.

        Args are those of `make_dataset`. Raises `ValueError` if the corpus
        has no validation tokens.
        """
        if not self.num_validation_tokens:
            raise ValueError(
                "This corpus has no validation tokens. Build it with a "
                "`validation_fraction` above 0 to get a validation dataset."
            )
        return make_dataset(
            self.validation_tokens,
            sequence_length,
            batch_size,
            shuffle=False,
            stride=stride,
        )
