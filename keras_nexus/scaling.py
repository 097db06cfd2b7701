"""A geometric scaling law for the losses of a progressively grown model.

When a model is grown in stages of geometrically increasing size, the loss
reached at the end of stage k is modelled as

    L_k = L_inf + a * r**k,    0 < r < 1

where `L_inf` is the loss the growth sequence converges to, `a` the gap at
stage 0 and `r` the fraction of the remaining gap that survives each growth
step. `k` need not be an integer: passing `log(N_k / N_0) / log(g)` for
parameter counts N_k and a growth factor g fits the same law against model
size.

The fit uses variable projection: for a fixed `r` the law is linear in
`L_inf` and `a`, so those two come from ordinary least squares and only
`r` is searched, first on a grid and then by golden-section refinement.
The result minimises the sum of squared residuals over the allowed `r`.
Only numpy is needed.
"""

import dataclasses
import math

import numpy as np

# The open interval (0, 1) for r, kept away from its ends where the law
# degenerates into a constant (r -> 0 beyond stage 0, or r -> 1).
MIN_RATIO = 1e-6
MAX_RATIO = 1.0 - 1e-6
GRID_SIZE = 2001
GOLDEN_ITERATIONS = 200


@dataclasses.dataclass(frozen=True)
class GeometricScalingLaw:
    """The fitted law `L_k = asymptote + amplitude * ratio**k`.

    Attributes:
        asymptote: `L_inf`, the limit of the loss as k grows.
        amplitude: `a`, the loss above the asymptote at k = 0.
        ratio: `r` in (0, 1), the factor by which the gap shrinks per stage.
        residual_rms: Root-mean-square residual of the fit on its data.
    """

    asymptote: float
    amplitude: float
    ratio: float
    residual_rms: float = 0.0

    def predict(self, stages):
        """Return the predicted loss at each stage (a scalar or an array)."""
        stages = np.asarray(stages, dtype=np.float64)
        predicted = self.asymptote + self.amplitude * np.power(
            self.ratio, stages
        )
        if predicted.ndim == 0:
            return float(predicted)
        return predicted


def _validate(stages, losses):
    stages = np.asarray(stages, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    if stages.ndim != 1 or losses.ndim != 1:
        raise ValueError(
            "`stages` and `losses` must be one-dimensional. Received shapes "
            f"stages.shape={stages.shape}, losses.shape={losses.shape}"
        )
    if stages.shape != losses.shape:
        raise ValueError(
            "`stages` and `losses` must have the same length. Received "
            f"len(stages)={len(stages)}, len(losses)={len(losses)}"
        )
    if len(stages) < 3:
        raise ValueError(
            "A geometric law has three parameters, so at least three "
            f"stages are needed. Received {len(stages)} stage(s)."
        )
    if not (np.all(np.isfinite(stages)) and np.all(np.isfinite(losses))):
        raise ValueError(
            "`stages` and `losses` must be finite. Received "
            f"stages={stages.tolist()}, losses={losses.tolist()}"
        )
    if len(np.unique(stages)) < 3:
        raise ValueError(
            "At least three distinct stages are needed to fit the ratio. "
            f"Received stages={stages.tolist()}"
        )
    return stages, losses


def _solve_linear(stages, losses, ratio):
    """Return `(asymptote, amplitude, squared_error)` for a fixed ratio."""
    design = np.stack([np.ones_like(stages), np.power(ratio, stages)], axis=1)
    coefficients, _, _, _ = np.linalg.lstsq(design, losses, rcond=None)
    residuals = design @ coefficients - losses
    return coefficients[0], coefficients[1], float(residuals @ residuals)


def fit_geometric_law(stages, losses):
    """Fit `L_k = L_inf + a * r**k` to losses by least squares.

    Args:
        stages: 1-D array of stage coordinates k (at least three distinct
            values). Shifting every stage by a constant rescales `a` only.
        losses: 1-D array of losses, one per stage.

    Returns:
        A `GeometricScalingLaw`. `predict(k)` evaluates it at any stage.

    Raises:
        ValueError: if the inputs have different lengths, fewer than three
            distinct stages, or non-finite values.

    Example:

    ```python
    from keras_nexus.scaling import fit_geometric_law

    law = fit_geometric_law([0, 1, 2], [3.0, 2.5, 2.25])
    law.ratio          # 0.5
    law.predict(3)     # 2.125
    ```
    """
    stages, losses = _validate(stages, losses)
    # Measuring stages from the first one keeps r**k in a well-scaled range.
    origin = float(np.min(stages))
    shifted = stages - origin

    def squared_error(ratio):
        return _solve_linear(shifted, losses, ratio)[2]

    grid = np.linspace(MIN_RATIO, MAX_RATIO, GRID_SIZE)
    errors = np.array([squared_error(ratio) for ratio in grid])
    best = int(np.argmin(errors))
    low = grid[max(best - 1, 0)]
    high = grid[min(best + 1, GRID_SIZE - 1)]

    # Golden-section search on the bracket around the best grid point.
    inverse_golden = (math.sqrt(5.0) - 1.0) / 2.0
    left = high - inverse_golden * (high - low)
    right = low + inverse_golden * (high - low)
    left_error, right_error = squared_error(left), squared_error(right)
    for _ in range(GOLDEN_ITERATIONS):
        if high - low < 1e-15:
            break
        if left_error <= right_error:
            high, right, right_error = right, left, left_error
            left = high - inverse_golden * (high - low)
            left_error = squared_error(left)
        else:
            low, left, left_error = left, right, right_error
            right = low + inverse_golden * (high - low)
            right_error = squared_error(right)
    ratio = 0.5 * (low + high)
    if errors[best] < squared_error(ratio):
        ratio = grid[best]

    asymptote, amplitude, error = _solve_linear(shifted, losses, ratio)
    # Undo the shift: a * r**(k - origin) = (a * r**-origin) * r**k.
    amplitude = amplitude * ratio ** (-origin)
    return GeometricScalingLaw(
        asymptote=float(asymptote),
        amplitude=float(amplitude),
        ratio=float(ratio),
        residual_rms=math.sqrt(error / len(losses)),
    )


def predict_loss(law, stages):
    """Return `law.predict(stages)`; a function form for pipelines."""
    return law.predict(stages)


def holdout_error(stages, losses, num_held_out=1):
    """Fit on all but the last stages and score the prediction of the rest.

    Args:
        stages: 1-D stage coordinates, in increasing order.
        losses: Loss at each stage.
        num_held_out: How many final stages to hold out. At least three
            stages must remain for the fit.

    Returns:
        A dict with the fitted `law`, the held-out `stages`, `actual` and
        `predicted` losses, and the `absolute_error` and `relative_error`
        (absolute error over the actual loss) of each prediction.
    """
    stages = np.asarray(stages, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    if not isinstance(num_held_out, int) or num_held_out < 1:
        raise ValueError(
            "`num_held_out` must be a positive integer. Received: "
            f"num_held_out={num_held_out!r}"
        )
    if len(stages) - num_held_out < 3:
        raise ValueError(
            "At least three stages must remain for the fit after holding "
            f"out {num_held_out}. Received {len(stages)} stages."
        )
    law = fit_geometric_law(stages[:-num_held_out], losses[:-num_held_out])
    held_stages = stages[-num_held_out:]
    actual = losses[-num_held_out:]
    predicted = np.atleast_1d(law.predict(held_stages))
    absolute_error = np.abs(predicted - actual)
    return {
        "law": law,
        "stages": held_stages.tolist(),
        "actual": actual.tolist(),
        "predicted": predicted.tolist(),
        "absolute_error": absolute_error.tolist(),
        "relative_error": (absolute_error / np.abs(actual)).tolist(),
    }
