"""Tests of the text corpus readers and the tf.data training pipeline."""

import logging
import os
import pathlib

import keras
import numpy as np
import pytest

import keras_nexus
from keras_nexus.data import CorpusError
from keras_nexus.data import TextCorpus
from keras_nexus.data import count_windows
from keras_nexus.data import default_corpus_path
from keras_nexus.data import encode_text
from keras_nexus.data import make_dataset
from keras_nexus.data import read_texts
from keras_nexus.data import split_tokens

TINY_SHAKESPEARE_BYTES = 1_115_394


def _write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def _reference_windows(tokens, sequence_length, stride):
    """Every full window of `sequence_length + 1` tokens, in text order."""
    windows = []
    start = 0
    while start + sequence_length + 1 <= len(tokens):
        windows.append(tokens[start : start + sequence_length + 1])
        start += stride
    return np.array(windows, dtype=np.int32).reshape(-1, sequence_length + 1)


def _collect(dataset, num_batches=None):
    """Stack the batches of a dataset into numpy arrays."""
    if num_batches is not None:
        dataset = dataset.take(num_batches)
    token_ids, padding_masks, labels = [], [], []
    for x, y in dataset.as_numpy_iterator():
        token_ids.append(x["token_ids"])
        padding_masks.append(x["padding_mask"])
        labels.append(y)
    return token_ids, padding_masks, labels


# --- The bundled corpus -----------------------------------------------------


def test_default_corpus_has_expected_size():
    path = default_corpus_path()

    assert isinstance(path, pathlib.Path)
    assert path.name == "tinyshakespeare.txt"
    assert path.stat().st_size == TINY_SHAKESPEARE_BYTES

    text = read_texts(path)
    assert len(text.encode("utf-8")) == TINY_SHAKESPEARE_BYTES
    assert text.startswith("First Citizen:\n")
    assert text == path.read_text(encoding="utf-8")


# --- read_texts on valid input ----------------------------------------------


def test_read_texts_single_file_keeps_text(tmp_path):
    content = "Ünïcødé — 日本 🎭\r\nsecond line\n"
    path = _write(tmp_path / "one.txt", content)

    assert read_texts(path) == content
    assert read_texts(str(path)) == content


def test_read_texts_joins_files_in_given_order(tmp_path):
    first = _write(tmp_path / "z.txt", "zeta")
    second = _write(tmp_path / "a.txt", "alpha\n")

    assert read_texts([first, second]) == "zeta\nalpha\n"
    assert read_texts([second, first]) == "alpha\n\nzeta"


def test_read_texts_directory_sorted_recursive(tmp_path, caplog):
    corpus = tmp_path / "corpus"
    _write(corpus / "b.txt", "bravo")
    _write(corpus / "a.txt", "alpha")
    _write(corpus / "sub" / "deeper" / "c.txt", "charlie")
    _write(corpus / "sub" / "a.txt", "sub alpha")
    _write(corpus / "notes.md", "not a text file")
    _write(corpus / "data.bin", b"\x00\x01\x02")
    _write(corpus / "empty.txt", "")

    with caplog.at_level(logging.WARNING, logger="keras_nexus.data.corpus"):
        text = read_texts(corpus)

    assert text == "alpha\nbravo\nsub alpha\ncharlie"
    assert "empty.txt" in caplog.text


def test_read_texts_mixes_files_and_directories(tmp_path):
    _write(tmp_path / "dir" / "x.txt", "from directory")
    single = _write(tmp_path / "single.txt", "single file")

    assert read_texts([single, tmp_path / "dir"]) == (
        "single file\nfrom directory"
    )


def test_read_texts_strips_byte_order_mark(tmp_path):
    path = _write(tmp_path / "bom.txt", b"\xef\xbb\xbfhello")

    assert read_texts(path) == "hello"


# --- read_texts on bad input ------------------------------------------------


def _bad_input_cases(tmp_path):
    """(path given to read_texts, path the message must name, words)."""
    cases = {}

    missing = tmp_path / "missing.txt"
    cases["missing"] = (missing, missing, "not found")

    empty = _write(tmp_path / "empty.txt", "")
    cases["empty file"] = (empty, empty, "empty")

    bom_only = _write(tmp_path / "bom_only.txt", b"\xef\xbb\xbf")
    cases["byte order mark only"] = (bom_only, bom_only, "empty")

    no_text = tmp_path / "no_text"
    _write(no_text / "readme.md", "markdown only")
    cases["directory without txt"] = (no_text, no_text, "No .txt files")

    no_files = tmp_path / "no_files"
    no_files.mkdir()
    cases["empty directory"] = (no_files, no_files, "No .txt files")

    all_empty = tmp_path / "all_empty"
    _write(all_empty / "a.txt", "")
    _write(all_empty / "sub" / "b.txt", "")
    cases["directory of empty files"] = (all_empty, all_empty, "empty")

    nul = _write(tmp_path / "nul.txt", b"abc\x00def")
    cases["NUL byte"] = (nul, nul, "byte offset 3")

    binary_in_directory = tmp_path / "mixed"
    _write(binary_in_directory / "a.txt", "fine")
    bad = _write(binary_in_directory / "b.txt", b"\x89PNG\r\n\x1a\n\x00\x00")
    cases["NUL byte in directory"] = (binary_in_directory, bad, "offset 8")

    latin1 = _write(tmp_path / "latin1.txt", "café au lait".encode("latin-1"))
    cases["latin-1"] = (latin1, latin1, "byte offset 3")

    invalid = _write(tmp_path / "invalid.txt", b"hello \xff world")
    cases["invalid byte"] = (invalid, invalid, "byte offset 6")

    truncated = _write(tmp_path / "truncated.txt", b"abc\xe2\x82")
    cases["truncated sequence"] = (truncated, truncated, "byte offset 3")

    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    cases["fifo"] = (fifo, fifo, "neither a regular file nor a directory")

    return cases


def test_read_texts_bad_inputs_raise_corpus_error(tmp_path):
    for name, (path, named_path, words) in _bad_input_cases(tmp_path).items():
        with pytest.raises(CorpusError) as info:
            read_texts(path)
        message = str(info.value)

        assert isinstance(info.value, ValueError), name
        assert f"'{named_path}'" in message, name
        assert words in message, name
        assert "\n" not in message, name


def test_read_texts_mentions_fix_for_encoding(tmp_path):
    path = _write(tmp_path / "latin1.txt", "naïve".encode("latin-1"))

    with pytest.raises(CorpusError, match="0xef") as info:
        read_texts(path)
    assert "Convert the file to UTF-8" in str(info.value)


def test_read_texts_unreadable_file(tmp_path, monkeypatch):
    path = _write(tmp_path / "secret.txt", "hidden")
    path.chmod(0)

    # The superuser can read a mode-000 file, so there the test makes
    # reading fail the way the operating system does for other users.
    if os.access(path, os.R_OK):
        original_read_bytes = pathlib.Path.read_bytes

        def read_bytes(self):
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return original_read_bytes(self)

        monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)

    try:
        with pytest.raises(CorpusError) as info:
            read_texts([tmp_path / "secret.txt"])
        message = str(info.value)
        assert f"'{path}'" in message
        assert "permission denied" in message
        assert "chmod" in message
    finally:
        path.chmod(0o644)


def test_read_texts_no_paths():
    with pytest.raises(CorpusError, match="No corpus paths"):
        read_texts([])


# --- encode_text --------------------------------------------------------------


def test_encode_text_matches_tokenizer():
    tokenizer = keras_nexus.models.NexusformerTokenizer()
    shakespeare = read_texts(default_corpus_path())[:20_000]
    texts = [
        "Ünïcødé — 日本 🎭 with\ttabs\r\nand control bytes \x02\x03\x7f",
        shakespeare,
        "a",
    ]

    for text in texts:
        ids = encode_text(text)
        expected = np.asarray(tokenizer(text))

        assert ids.dtype == np.int32
        assert ids.ndim == 1
        np.testing.assert_array_equal(ids, expected)
        np.testing.assert_array_equal(
            ids, np.array(list(text.encode("utf-8")), dtype=np.int32)
        )


def test_encode_text_empty_and_wrong_type():
    assert encode_text("").shape == (0,)

    with pytest.raises(TypeError, match="must be a str"):
        encode_text(b"bytes")


# --- split_tokens -------------------------------------------------------------


def test_split_takes_validation_from_end():
    tokens = np.arange(1000, dtype=np.int32)

    train, validation = split_tokens(tokens, 0.1, sequence_length=64)

    np.testing.assert_array_equal(train, np.arange(900))
    np.testing.assert_array_equal(validation, np.arange(900, 1000))


def test_split_rounds_validation_down():
    tokens = np.arange(1005)

    train, validation = split_tokens(tokens, 0.25, sequence_length=10)

    assert len(validation) == 251
    assert len(train) == 754
    np.testing.assert_array_equal(np.concatenate([train, validation]), tokens)


def test_split_zero_fraction_gives_empty_validation():
    train, validation = split_tokens(np.arange(50), 0.0, sequence_length=49)

    assert len(train) == 50
    assert len(validation) == 0


@pytest.mark.parametrize(
    "fraction, sequence_length", [(0.1, 64), (0.5, 10), (0.9, 64), (0.0, 30)]
)
def test_split_too_short_names_needed_size(fraction, sequence_length):
    with pytest.raises(ValueError, match="Provide at least") as info:
        split_tokens(np.arange(20), fraction, sequence_length=sequence_length)
    needed = int(str(info.value).split("Provide at least ")[1].split()[0])

    # The stated size is the exact minimum: it splits, one token less fails.
    train, validation = split_tokens(
        np.arange(needed), fraction, sequence_length=sequence_length
    )
    assert len(train) >= sequence_length + 1
    if fraction > 0:
        assert len(validation) >= sequence_length + 1
    with pytest.raises(ValueError, match="Too little text"):
        split_tokens(
            np.arange(needed - 1), fraction, sequence_length=sequence_length
        )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"validation_fraction": -0.1}, "validation_fraction"),
        ({"validation_fraction": True}, "validation_fraction"),
        ({"sequence_length": 0}, "sequence_length"),
        ({"sequence_length": 2.5}, "sequence_length"),
    ],
)
def test_split_invalid_arguments(kwargs, name):
    arguments = {"validation_fraction": 0.1, "sequence_length": 8}
    arguments.update(kwargs)

    with pytest.raises(ValueError, match=name):
        split_tokens(np.arange(1000), **arguments)


# --- count_windows ------------------------------------------------------------


def test_count_windows_matches_enumeration():
    for num_tokens in range(0, 40):
        for sequence_length in (1, 2, 5, 9):
            for stride in (None, 1, 3, 7, 12):
                expected = len(
                    _reference_windows(
                        np.arange(num_tokens),
                        sequence_length,
                        stride or sequence_length,
                    )
                )

                assert (
                    count_windows(num_tokens, sequence_length, stride)
                    == expected
                ), (num_tokens, sequence_length, stride)


def test_count_windows_invalid_arguments():
    with pytest.raises(ValueError, match="num_tokens"):
        count_windows(-1, 4)
    with pytest.raises(ValueError, match="sequence_length"):
        count_windows(10, 0)
    with pytest.raises(ValueError, match="stride"):
        count_windows(10, 4, stride=0)


# --- make_dataset -------------------------------------------------------------


@pytest.mark.parametrize("stride", [None, 3, 8, 11])
def test_dataset_unshuffled_matches_reference(stride):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 256, size=203).astype(np.int32)
    sequence_length, batch_size = 8, 4

    dataset = make_dataset(
        tokens, sequence_length, batch_size, shuffle=False, stride=stride
    )
    token_ids, padding_masks, labels = _collect(dataset)

    windows = _reference_windows(tokens, sequence_length, stride or 8)
    num_batches = len(windows) // batch_size
    assert len(token_ids) == num_batches
    assert int(dataset.cardinality()) == num_batches
    batched_windows = windows[: num_batches * batch_size]
    np.testing.assert_array_equal(
        np.concatenate(token_ids), batched_windows[:, :-1]
    )
    np.testing.assert_array_equal(
        np.concatenate(labels), batched_windows[:, 1:]
    )
    for mask in padding_masks:
        np.testing.assert_array_equal(mask, np.ones((batch_size, 8)))


def test_dataset_labels_are_next_tokens():
    text = "To be, or not to be, that is the question. " * 20
    tokens = encode_text(text)

    dataset = make_dataset(tokens, 16, 4, seed=3)
    token_ids, _, labels = _collect(dataset)

    for inputs, targets in zip(token_ids, labels):
        np.testing.assert_array_equal(targets[:, :-1], inputs[:, 1:])
        # The last label is the token that follows the window in the text.
        for row_inputs, row_targets in zip(inputs, targets):
            start = text.encode("utf-8").find(bytes(row_inputs.tolist()))
            assert start >= 0
            assert row_targets[-1] == tokens[start + 16]


def test_dataset_shapes_and_dtypes_are_static():
    dataset = make_dataset(np.arange(500) % 256, 12, 5, seed=0)
    x_spec, y_spec = dataset.element_spec

    assert set(x_spec) == {"token_ids", "padding_mask"}
    for spec in (x_spec["token_ids"], x_spec["padding_mask"], y_spec):
        assert spec.shape.as_list() == [5, 12]
        assert spec.dtype.name == "int32"


def test_dataset_shuffle_is_permutation_of_windows():
    # Token id = position, so the first input token names each window.
    tokens = np.arange(1003, dtype=np.int32)
    sequence_length, batch_size = 10, 7

    token_ids, _, labels = _collect(
        make_dataset(tokens, sequence_length, batch_size, seed=11)
    )
    starts = np.concatenate(token_ids)[:, 0]

    num_windows = count_windows(len(tokens), sequence_length)
    assert len(starts) == (num_windows // batch_size) * batch_size
    assert len(np.unique(starts)) == len(starts)
    assert np.all(starts % sequence_length == 0)
    assert np.all(starts <= (num_windows - 1) * sequence_length)
    assert not np.all(np.diff(starts) > 0)
    for inputs, targets in zip(token_ids, labels):
        np.testing.assert_array_equal(
            inputs, inputs[:, :1] + np.arange(sequence_length)
        )
        np.testing.assert_array_equal(targets, inputs + 1)


def test_dataset_order_is_deterministic_with_seed():
    tokens = np.arange(2000, dtype=np.int32)

    def first_tokens(seed):
        keras.utils.set_random_seed(1234)
        token_ids, _, _ = _collect(make_dataset(tokens, 9, 4, seed=seed))
        return np.concatenate(token_ids)[:, 0]

    np.testing.assert_array_equal(first_tokens(5), first_tokens(5))
    assert not np.array_equal(first_tokens(5), first_tokens(6))


def test_dataset_repeat_reshuffles_each_pass():
    tokens = np.arange(97, dtype=np.int32)
    sequence_length, batch_size = 8, 4
    num_windows = count_windows(len(tokens), sequence_length)
    assert num_windows == 12

    dataset = make_dataset(
        tokens, sequence_length, batch_size, seed=2, repeat=True
    )
    token_ids, _, _ = _collect(dataset, num_batches=3 * num_windows // 4)
    starts = np.concatenate(token_ids)[:, 0].reshape(3, num_windows)

    for one_pass in starts:
        np.testing.assert_array_equal(
            np.sort(one_pass), np.arange(num_windows) * sequence_length
        )
    assert not np.array_equal(starts[0], starts[1])
    assert not np.array_equal(starts[1], starts[2])


def test_dataset_too_few_tokens_names_needed_size():
    sequence_length, batch_size, stride = 10, 4, 6
    needed = (batch_size - 1) * stride + sequence_length + 1

    with pytest.raises(ValueError, match=f"at least {needed} tokens"):
        make_dataset(
            np.zeros(needed - 1, "int32"),
            sequence_length,
            batch_size,
            stride=stride,
        )
    dataset = make_dataset(
        np.zeros(needed, "int32"), sequence_length, batch_size, stride=stride
    )
    assert len(_collect(dataset)[0]) == 1


@pytest.mark.parametrize(
    "tokens, kwargs, name",
    [
        (np.zeros((4, 50), "int32"), {}, "1-D"),
        (np.linspace(0, 1, 100), {}, "integer"),
        (np.full(100, -1), {}, "between 0"),
        (np.zeros(100, "int32"), {"sequence_length": 0}, "sequence_length"),
        (np.zeros(100, "int32"), {"batch_size": 0}, "batch_size"),
        (np.zeros(100, "int32"), {"stride": 0}, "stride"),
        (np.zeros(100, "int32"), {"seed": 1.5}, "seed"),
    ],
)
def test_dataset_invalid_arguments(tokens, kwargs, name):
    arguments = {"sequence_length": 4, "batch_size": 2}
    arguments.update(kwargs)

    with pytest.raises(ValueError, match=name):
        make_dataset(tokens, **arguments)


# --- TextCorpus ---------------------------------------------------------------


def test_text_corpus_from_paths(tmp_path):
    text = "".join(f"line {i}: some words here\n" for i in range(200))
    path = _write(tmp_path / "corpus.txt", text)

    corpus = TextCorpus.from_paths(
        [path], sequence_length=16, validation_fraction=0.2
    )

    tokens = encode_text(text)
    num_validation = int(len(tokens) * 0.2)
    assert corpus.num_validation_tokens == num_validation
    assert corpus.num_train_tokens == len(tokens) - num_validation
    np.testing.assert_array_equal(
        corpus.validation_tokens, tokens[-num_validation:]
    )

    validation = _collect(corpus.validation_dataset(16, 8))[0]
    expected = _reference_windows(corpus.validation_tokens, 16, 16)
    np.testing.assert_array_equal(
        np.concatenate(validation), expected[: len(validation) * 8, :-1]
    )
    train = corpus.train_dataset(16, 8, seed=0)
    assert train.element_spec[1].shape.as_list() == [8, 16]


def test_text_corpus_defaults_to_bundled_corpus():
    corpus = TextCorpus.from_paths(sequence_length=64)

    assert corpus.num_train_tokens + corpus.num_validation_tokens == (
        TINY_SHAKESPEARE_BYTES
    )
    assert corpus.num_validation_tokens == TINY_SHAKESPEARE_BYTES // 10


def test_text_corpus_without_validation_rejects_dataset():
    corpus = TextCorpus(np.arange(100), np.zeros(0, "int32"))

    with pytest.raises(ValueError, match="no validation tokens"):
        corpus.validation_dataset(8, 2)


# --- Training with model.fit ------------------------------------------------


def test_fit_on_dataset_gives_finite_loss():
    backbone = keras_nexus.models.NexusformerBackbone(
        vocabulary_size=256,
        num_layers=1,
        num_query_heads=2,
        num_key_value_heads=1,
        hidden_dim=16,
        ffn_expanded_dim=48,
    )
    causal_lm = keras_nexus.models.NexusformerCausalLM(
        backbone, preprocessor=None
    )
    causal_lm.compile(optimizer=keras.optimizers.Adam(1e-2))
    corpus = TextCorpus.from_paths(
        [default_corpus_path()], sequence_length=16
    )
    train = corpus.train_dataset(16, 4, seed=0, repeat=True)

    history = causal_lm.fit(train, steps_per_epoch=4, epochs=2, verbose=0)

    losses = history.history["loss"]
    assert len(losses) == 2
    assert np.all(np.isfinite(losses))
    # An untrained model's loss on 256 classes starts near ln(256) = 5.55.
    assert 0 < losses[0] < 7
    # Evaluation would compile a second step function, which costs more
    # time than the check is worth: the validation batches have the same
    # structure as the training batches that fit just consumed.
    validation = corpus.validation_dataset(16, 4)
    assert validation.element_spec == train.element_spec
