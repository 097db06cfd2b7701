"""Next-token training batches cut from a stream of token ids, as `tf.data`.

`tf.data` is the input format that `model.fit` accepts on all three Keras
backends (JAX, PyTorch and TensorFlow), so the same pipeline serves every
backend. TensorFlow is imported only when a dataset is built.
"""

import logging
import numbers

import numpy as np

logger = logging.getLogger(__name__)


def _check_positive_int(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < 1
    ):
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )


def _resolve_stride(sequence_length, stride):
    if stride is None:
        return sequence_length
    _check_positive_int("stride", stride)
    return int(stride)


def count_windows(num_tokens, sequence_length, stride=None):
    """Count the training windows that fit in `num_tokens` tokens.

    A window is `sequence_length + 1` consecutive tokens: the first
    `sequence_length` are the model input and the last `sequence_length`
    are the labels. Window `k` starts at token `k * stride`, and only
    windows that end inside the text count.

    Args:
        num_tokens: Number of tokens in the text (a non-negative integer).
        sequence_length: Number of input tokens per window.
        stride: Distance in tokens between the starts of two consecutive
            windows. `None` means `sequence_length`, which gives
            non-overlapping inputs. Consecutive windows then share one
            token (the last label of a window is the first input of the
            next), so each token after the first is a label at most once.
            Tokens after the last full window are not used.

    Returns:
        The number of windows, an `int` (0 when the text is shorter than
        one window).

    Raises:
        ValueError: If an argument is not a valid integer.

    Examples:

    ```python
    from keras_nexus.data import count_windows

    count_windows(1000, sequence_length=99)  # 10
    count_windows(1000, sequence_length=99, stride=50)  # 19
    count_windows(99, sequence_length=99)  # 0
    ```
    """
    if (
        isinstance(num_tokens, bool)
        or not isinstance(num_tokens, numbers.Integral)
        or num_tokens < 0
    ):
        raise ValueError(
            "`num_tokens` must be a non-negative integer. "
            f"Received: num_tokens={num_tokens!r}"
        )
    _check_positive_int("sequence_length", sequence_length)
    stride = _resolve_stride(sequence_length, stride)

    window_length = sequence_length + 1
    if num_tokens < window_length:
        return 0
    return (int(num_tokens) - window_length) // stride + 1


def _as_token_array(tokens):
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(
            "`tokens` must be a 1-D array of token ids. Received an array "
            f"of shape {tokens.shape}. Flatten it, or pass the output of "
            "`keras_nexus.data.encode_text`."
        )
    if tokens.size and not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(
            "`tokens` must contain integer token ids. Received dtype "
            f"{tokens.dtype}. Pass the output of "
            "`keras_nexus.data.encode_text`."
        )
    if tokens.size and (
        tokens.min() < 0 or tokens.max() > np.iinfo(np.int32).max
    ):
        raise ValueError(
            "`tokens` must contain token ids between 0 and 2**31 - 1. "
            f"Received values from {tokens.min()} to {tokens.max()}."
        )
    return tokens.astype(np.int32, copy=False)


def _import_tensorflow():
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            "`keras_nexus.data.make_dataset` builds a `tf.data.Dataset` and "
            "needs TensorFlow, which is not installed. Install it with "
            "`pip install tensorflow-cpu` (any Keras backend can train on "
            "the result)."
        ) from error
    return tf


def make_dataset(
    tokens,
    sequence_length,
    batch_size,
    shuffle=True,
    seed=None,
    repeat=False,
    stride=None,
):
    """Build a `tf.data.Dataset` of next-token batches for `model.fit`.

    The text is cut into windows of `sequence_length + 1` tokens (see
    `count_windows`). Each window gives one example: its first
    `sequence_length` tokens are the input and its last `sequence_length`
    tokens the labels, so the label at position `t` is the token that
    follows input position `t`. Every row is real text, so the padding mask
    is all ones and no sample weights are needed.

    The pipeline runs in TensorFlow graph code: only window start offsets
    are shuffled and batched, and one `tf.gather` per batch cuts the windows
    from the token array. No Python code runs per step. Batches keep a
    static shape because the last incomplete batch of each pass is dropped.

    The dataset is read as `(x, y)` by `model.fit`, with

    - `x = {"token_ids": int32 (batch_size, sequence_length),
      "padding_mask": int32 (batch_size, sequence_length)}` and
    - `y = int32 (batch_size, sequence_length)`.

    This is the input of `keras_nexus.models.NexusformerCausalLM` built with
    `preprocessor=None`.

    Args:
        tokens: 1-D array of integer token ids, for example the output of
            `keras_nexus.data.encode_text`. It is copied into the dataset
            as int32.
        sequence_length: Number of input tokens per example.
        batch_size: Number of examples per batch.
        shuffle: Whether to shuffle the windows. The shuffle buffer contains
            every window start offset (one int64 per window), so the
            order is a uniform permutation, and each pass over the data
            (each `model.fit` epoch, or each repetition with
            `repeat=True`) gets a new permutation.
        seed: Integer seed of the shuffle, or `None`. Two datasets built
            with the same `seed`, under the same TensorFlow global seed,
            yield the same sequence of orders. `keras.utils.set_random_seed`
            sets that global seed on every Keras backend.
        repeat: Whether to repeat the data forever. Repetition comes
            before batching, so batches run across pass boundaries and no
            window is dropped. `model.fit` then needs `steps_per_epoch`.
        stride: Distance in tokens between the starts of consecutive
            windows. `None` means `sequence_length` (non-overlapping inputs);
            a smaller stride gives overlapping windows and more examples.

    Returns:
        A `tf.data.Dataset` of `(x, y)` pairs, prefetched. Without
        `repeat`, one pass yields
        `count_windows(len(tokens), sequence_length, stride) // batch_size`
        batches.

    Raises:
        ValueError: If an argument is invalid, or if `tokens` is too short
            for one full batch (the message gives the number of tokens
            needed).
        ImportError: If TensorFlow is not installed.

    Examples:

    ```python
    import keras
    import keras_nexus
    from keras_nexus.data import encode_text, make_dataset

    tokens = encode_text("To be, or not to be, that is the question. " * 50)
    dataset = make_dataset(tokens, sequence_length=32, batch_size=8, seed=0)
    x, y = next(iter(dataset))
    x["token_ids"].shape  # (8, 32)

    backbone = keras_nexus.models.NexusformerBackbone(
        vocabulary_size=256,
        num_layers=1,
        num_query_heads=2,
        num_key_value_heads=1,
        hidden_dim=16,
    )
    causal_lm = keras_nexus.models.NexusformerCausalLM(backbone)
    causal_lm.compile(optimizer=keras.optimizers.AdamW(1e-3))
    causal_lm.fit(dataset, epochs=1)
    ```
    """
    tokens = _as_token_array(tokens)
    _check_positive_int("sequence_length", sequence_length)
    _check_positive_int("batch_size", batch_size)
    stride = _resolve_stride(sequence_length, stride)
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
    ):
        raise ValueError(
            f"`seed` must be an integer or None. Received: seed={seed!r}"
        )
    if seed is not None:
        seed = int(seed)

    num_windows = count_windows(len(tokens), sequence_length, stride)
    if num_windows < batch_size:
        # The last window of a full batch starts at (batch_size - 1) * stride.
        needed = (batch_size - 1) * stride + sequence_length + 1
        raise ValueError(
            f"Too few tokens for one batch: received {len(tokens)} tokens, "
            f"which give {num_windows} windows of sequence_length + 1 = "
            f"{sequence_length + 1} tokens at stride {stride}, but "
            f"batch_size={batch_size} needs {batch_size} windows, that is "
            f"at least {needed} tokens. Provide more text, or reduce "
            "`batch_size` or `sequence_length`."
        )

    tf = _import_tensorflow()
    token_array = tf.constant(tokens, dtype=tf.int32)
    # (1, sequence_length + 1): offsets of the tokens inside one window.
    window_offsets = tf.range(sequence_length + 1, dtype=tf.int64)[None, :]

    def cut_windows(window_indices):
        # (batch_size,) window indices -> (batch_size, sequence_length + 1)
        # token positions.
        positions = window_indices[:, None] * stride + window_offsets
        windows = tf.gather(token_array, positions)
        token_ids = windows[:, :-1]
        labels = windows[:, 1:]
        inputs = {
            "token_ids": token_ids,
            "padding_mask": tf.ones_like(token_ids),
        }
        return inputs, labels

    dataset = tf.data.Dataset.range(num_windows)
    if shuffle:
        dataset = dataset.shuffle(
            num_windows, seed=seed, reshuffle_each_iteration=True
        )
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.map(cut_windows, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)

    logger.debug(
        "Built a dataset of %d windows (sequence_length=%d, stride=%d, "
        "batch_size=%d) from %d tokens.",
        num_windows,
        sequence_length,
        stride,
        batch_size,
        len(tokens),
    )
    return dataset
