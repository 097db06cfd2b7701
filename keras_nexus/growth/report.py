"""The report of a growth, and the error raised when it is not exact."""

import dataclasses


class GrowthVerificationError(RuntimeError):
    """The grown model's outputs differ from the original's beyond `atol`.

    Attributes:
        max_abs_diff: the largest absolute difference on the probe batch.
        atol: the tolerance that was exceeded.
    """

    def __init__(self, max_abs_diff, atol):
        self.max_abs_diff = max_abs_diff
        self.atol = atol
        super().__init__(
            f"The grown model is not equivalent to the original: the max "
            f"absolute output difference on the probe batch is "
            f"{max_abs_diff:.3e}, above atol={atol:.1e}. The original model "
            "is unchanged. If this model uses very large activations, pass "
            "a larger `atol`; otherwise report this as a bug."
        )


@dataclasses.dataclass
class GrowthReport:
    """Summary of one `grow_model` call, attached as `model.growth_report`.

    Attributes:
        changes: dict from config key to `(old value, new value)` for every
            value that changed.
        max_abs_diff: largest absolute difference between the outputs of the
            original and the grown model on the probe batch, in float32
            compute; `None` when `verify=False`.
        atol: tolerance the difference was checked against.
        old_parameters: parameter count before growth.
        new_parameters: parameter count after growth.
        transfers: dict from each grown weight's path to its
            `WeightTransfer`, which records where every entry came from. The
            training loop uses it to carry optimizer state across growth.
    """

    changes: dict
    max_abs_diff: float
    atol: float
    old_parameters: int
    new_parameters: int
    transfers: dict = dataclasses.field(default_factory=dict, repr=False)

    def summary(self):
        """Return a one-line description for logs."""
        changes = ", ".join(
            f"{key} {old} -> {new}" for key, (old, new) in self.changes.items()
        )
        diff = (
            "not verified"
            if self.max_abs_diff is None
            else f"max |diff| {self.max_abs_diff:.2e} (atol {self.atol:.0e})"
        )
        return (
            f"grew {changes}; parameters {self.old_parameters:,} -> "
            f"{self.new_parameters:,}; {diff}"
        )
