"""Tests of the geometric scaling-law fit on synthetic losses."""

import math

import numpy as np
import pytest

from keras_nexus.scaling import GeometricScalingLaw
from keras_nexus.scaling import fit_geometric_law
from keras_nexus.scaling import holdout_error
from keras_nexus.scaling import predict_loss


@pytest.mark.parametrize(
    "asymptote, amplitude, ratio",
    [(2.0, 1.5, 0.5), (1.2, 0.3, 0.9), (3.3, 4.0, 0.05), (0.7, -0.4, 0.6)],
)
def test_recovers_exact_parameters(asymptote, amplitude, ratio):
    stages = np.arange(6)
    losses = asymptote + amplitude * ratio**stages

    law = fit_geometric_law(stages, losses)

    assert law.ratio == pytest.approx(ratio, abs=1e-6)
    assert law.asymptote == pytest.approx(asymptote, abs=1e-6)
    assert law.amplitude == pytest.approx(amplitude, abs=1e-6)
    assert law.residual_rms < 1e-8


def test_three_points_match_closed_form():
    losses = [3.1, 2.6, 2.35]
    # With three points the law interpolates: r = (L2 - L1) / (L1 - L0).
    ratio = (2.35 - 2.6) / (2.6 - 3.1)
    amplitude = (2.6 - 3.1) / (ratio - 1.0)
    asymptote = 3.1 - amplitude

    law = fit_geometric_law([0, 1, 2], losses)

    assert law.ratio == pytest.approx(ratio, abs=1e-7)
    assert law.amplitude == pytest.approx(amplitude, abs=1e-6)
    assert law.asymptote == pytest.approx(asymptote, abs=1e-6)
    assert law.predict(3) == pytest.approx(
        asymptote + amplitude * ratio**3, abs=1e-6
    )


def test_shifted_and_fractional_stages():
    # Stages as log2 of parameter counts: 2**18 ... 2**21.5 parameters.
    stages = np.array([18.0, 19.0, 20.5, 21.5])
    losses = 1.9 + 0.8 * 0.7**stages

    law = fit_geometric_law(stages, losses)

    np.testing.assert_allclose(law.predict(stages), losses, atol=1e-9)
    assert law.ratio == pytest.approx(0.7, abs=1e-6)
    assert law.amplitude == pytest.approx(0.8, rel=1e-4)


def test_noisy_losses_stay_close():
    rng = np.random.default_rng(0)
    stages = np.arange(8)
    clean = 2.5 + 1.0 * 0.6**stages
    noisy = clean + rng.normal(scale=1e-3, size=stages.shape)

    law = fit_geometric_law(stages, noisy)

    assert law.ratio == pytest.approx(0.6, abs=0.02)
    assert law.asymptote == pytest.approx(2.5, abs=0.01)
    assert law.residual_rms < 2e-3


def test_fit_minimises_squared_error():
    rng = np.random.default_rng(1)
    stages = np.arange(5)
    losses = 2.0 + 0.9 * 0.5**stages + rng.normal(scale=0.02, size=5)

    law = fit_geometric_law(stages, losses)
    best = np.sum((law.predict(stages) - losses) ** 2)

    # No nearby ratio, with its own least-squares L_inf and a, does better.
    for ratio in (law.ratio - 1e-3, law.ratio + 1e-3):
        design = np.stack([np.ones(5), ratio**stages], axis=1)
        coefficients = np.linalg.lstsq(design, losses, rcond=None)[0]
        error = np.sum((design @ coefficients - losses) ** 2)
        assert error >= best - 1e-12


def test_predict_scalar_and_array():
    law = GeometricScalingLaw(asymptote=1.0, amplitude=2.0, ratio=0.5)

    assert law.predict(2) == pytest.approx(1.5)
    assert isinstance(law.predict(2), float)
    np.testing.assert_allclose(
        predict_loss(law, [0, 1, 3]), [3.0, 2.0, 1.25], rtol=1e-12
    )


def test_holdout_error_scores_last_stage():
    stages = [0, 1, 2, 3]
    losses = [3.0, 2.5, 2.25, 2.2]

    result = holdout_error(stages, losses)

    # The first three stages give r = 0.5, L_inf = 2, so stage 3 is 2.125.
    assert result["predicted"][0] == pytest.approx(2.125, abs=1e-6)
    assert result["absolute_error"][0] == pytest.approx(0.075, abs=1e-6)
    assert result["relative_error"][0] == pytest.approx(
        0.075 / 2.2, abs=1e-6
    )
    assert result["law"].ratio == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize(
    "stages, losses, match",
    [
        ([0, 1], [2.0, 1.0], "three stages"),
        ([0, 1, 2], [2.0, 1.0], "same length"),
        ([0, 0, 1], [2.0, 1.5, 1.0], "distinct"),
        ([0, 1, 2], [2.0, math.nan, 1.0], "finite"),
        ([[0, 1, 2]], [[2.0, 1.5, 1.0]], "one-dimensional"),
    ],
)
def test_invalid_inputs_raise(stages, losses, match):
    with pytest.raises(ValueError, match=match):
        fit_geometric_law(stages, losses)


def test_holdout_needs_three_fit_stages():
    with pytest.raises(ValueError, match="three stages must remain"):
        holdout_error([0, 1, 2], [3.0, 2.0, 1.5])
    with pytest.raises(ValueError, match="num_held_out"):
        holdout_error([0, 1, 2, 3], [3.0, 2.0, 1.5, 1.2], num_held_out=0)
