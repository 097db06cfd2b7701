"""The dtype in which normalisations and softmax run."""


def statistics_dtype(compute_dtype):
    """Return float64 for float64 compute, float32 for every other dtype.

    Sums of squares and softmax overflow or lose precision in float16 and
    bfloat16, so they run in float32 under mixed precision. A float64 model
    keeps float64 throughout.
    """
    return "float64" if compute_dtype == "float64" else "float32"
