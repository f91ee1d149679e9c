"""plots.regplot: bubble sizes from the fit's weights, fitted line and bands from the fit's
predictions, the Bayesian band from coefficient draws, back-transformed axes for ratio measures."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from evsynth import plots  # noqa: E402
from evsynth.effects import compute_effects  # noqa: E402
from evsynth.methods.frequentist import meta_regression  # noqa: E402

from test_effects_binary import bcg_counts  # noqa: E402

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture
def bcg():
    ablat = pd.read_csv(DATA / "bcg.csv").ablat.to_numpy()
    return compute_effects(bcg_counts(), measure="RR").assign(ablat=ablat)


def by_gid(fig, gid):
    return [a for a in fig.axes[0].get_children() if a.get_gid() == gid]


def test_bubbles_and_fitted_line(bcg):
    fig = plots.regplot(bcg, "ablat", back_transform=False)
    fit = meta_regression(bcg, ["ablat"])
    (points,) = by_gid(fig, "studies")
    weights = 1 / (bcg.vi + fit.tau2)
    np.testing.assert_allclose(points.get_sizes(), 400 * weights / weights.max())
    np.testing.assert_allclose(points.get_offsets()[:, 1], bcg.yi)
    (line,) = by_gid(fig, "fitted")
    xs, ys = line.get_data()
    b0, b1 = fit.coefficients.estimate
    np.testing.assert_allclose(ys, b0 + b1 * xs)
    assert by_gid(fig, "band:ci") and by_gid(fig, "band:pi_low") and not by_gid(fig, "band:bayes")


def test_ratio_measure_is_back_transformed_on_a_log_axis(bcg):
    fig = plots.regplot(bcg, "ablat")
    assert fig.axes[0].get_yscale() == "log"
    (points,) = by_gid(fig, "studies")
    np.testing.assert_allclose(points.get_offsets()[:, 1], np.exp(bcg.yi))


def test_bayesian_band_from_coefficient_draws(bcg):
    rng = np.random.default_rng(1)
    draws = np.column_stack([rng.normal(0.25, 0.25, 4000), rng.normal(-0.03, 0.007, 4000)])
    fig = plots.regplot(bcg, "ablat", beta_draws=draws, back_transform=False)
    (median,) = by_gid(fig, "bayes:median")
    xs, ys = median.get_data()
    # Median of b0 + b1 x for independent normals is 0.25 - 0.03 x, up to Monte Carlo error.
    np.testing.assert_allclose(ys, 0.25 - 0.03 * xs, atol=0.03)
    assert by_gid(fig, "band:bayes")
    with pytest.raises(ValueError, match="n_draws x 2"):
        plots.regplot(bcg, "ablat", beta_draws=draws[:, :1])


def test_refuses_a_missing_moderator_or_a_multi_moderator_fit(bcg):
    with pytest.raises(ValueError, match="'latitude'"):
        plots.regplot(bcg, "latitude")
    fit = meta_regression(bcg.assign(year=bcg_counts().year.astype(float).to_numpy()), "~ ablat + year")
    with pytest.raises(ValueError, match="one moderator"):
        plots.regplot(bcg, "ablat", fit=fit)
