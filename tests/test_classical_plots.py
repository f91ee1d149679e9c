"""The classical toolkit's figures draw what their tables hold (checked through the artists' gids)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from evsynth.methods.cumulative import bayesian_cumulative, cumulative
from evsynth.methods.influence import baujat
from evsynth.present.classical_plots import baujat_plot, cumulative_forest

from conftest import bcg_log_risk_ratios, reference_file

BCG = pd.read_csv(reference_file("bcg.csv"))
YI, VI = bcg_log_risk_ratios(BCG)


def by_gid(fig, gid):
    return [a for ax in fig.axes for a in ax.findobj() if a.get_gid() == gid]


def test_baujat_plot_places_each_study_at_its_coordinates():
    table = baujat(YI, VI, method="REML", labels=BCG.trial)
    fig = baujat_plot(table)
    points = by_gid(fig, "studies")[0].get_offsets()
    np.testing.assert_allclose(points, table[["x", "y"]].to_numpy())
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert len(labels) == 5 and "4" in labels  # Hart & Sutherland: the largest influence


def test_cumulative_forest_draws_each_step_back_transformed():
    table = cumulative(YI, VI, order=BCG.year, labels=BCG.trial)
    bayes = bayesian_cumulative(YI, np.sqrt(VI), order=BCG.year, labels=BCG.trial)
    fig = cumulative_forest(table, "RR", bayesian=bayes)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    classical = by_gid(fig, "classical")
    assert classical, "classical estimates drawn"
    xs = [line for line in ax.lines if line.get_gid() == "classical" or line.get_marker() == "s"]
    drawn = np.sort(np.concatenate([np.asarray(line.get_xdata(), float) for line in xs if line.get_marker() == "s"]))
    np.testing.assert_allclose(drawn, np.sort(np.exp(table["estimate"])))
    assert len(ax.get_yticklabels()) == len(table)
    assert by_gid(fig, "bayesian")
    with pytest.raises(KeyError):
        cumulative_forest(table.drop(columns="ci_low"))


def test_filled_funnel_shows_observed_and_imputed_studies():
    from evsynth.methods.trimfill import trimfill
    from evsynth.present.classical_plots import filled_funnel

    hs = pd.read_csv(reference_file("hackshaw1998.csv"))
    tf = trimfill(hs.yi, hs.vi)
    fig = filled_funnel(tf, "OR")
    observed = by_gid(fig, "observed")[0].get_offsets()
    filled = by_gid(fig, "filled")[0].get_offsets()
    assert len(observed) == 37 and len(filled) == tf.k0 == 7
    np.testing.assert_allclose(np.log(filled[:, 0]), tf.data.yi[tf.data.filled])
    assert fig.axes[0].get_ylim()[0] > fig.axes[0].get_ylim()[1]  # SE grows downwards
    none = trimfill(hs.yi, hs.vi, side="right")
    assert none.k0 == 0 and not by_gid(filled_funnel(none, "OR"), "filled")
