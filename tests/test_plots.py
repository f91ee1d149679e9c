"""Plot structure (rows, artists, labels, contour geometry), not pixels.

Posteriors are built by hand with arviz.from_dict from distributions whose quantiles are known in
closed form, so the drawn intervals are checked against formulas, not against a fit.
"""

import arviz as az
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from evsynth import compute_effects, load_studies  # noqa: E402
from evsynth import plots  # noqa: E402

from conftest import artists_by_gid as _by_gid  # noqa: E402
from conftest import technique_idata  # noqa: E402
from conftest import synthetic_row as _row  # noqa: E402


def _technique_idata(effects, **kwargs):
    return technique_idata(effects, chains=CHAINS, draws=DRAWS, **kwargs)

Z975 = 1.959964  # standard normal 97.5% quantile
CHAINS, DRAWS = 4, 5000


@pytest.fixture
def effects():
    rows = [
        _row("a1", "neck", 0.40, 0.20),
        _row("a2", "neck", 0.10, 0.30),
        _row("b1", "oxytocin", 0.80, 0.25),
        _row("b2", "oxytocin", 0.55, 0.15),
        _row("b3", "oxytocin", -0.20, 0.35),
        # SE from an exact p-value and from a p bound: different funnel markers
        {"study_id": "c1", "citation": "test row", "source_level": "synthetic", "design": "two_group",
         "technique": "oxytocin", "outcome": "milk volume", "n_treat": 20, "n_ctrl": 20, "mean_treat": 12,
         "mean_ctrl": 10, "p": 0.03, "synthetic": "true"},
        {"study_id": "c2", "citation": "test row", "source_level": "synthetic", "design": "two_group",
         "technique": "neck", "outcome": "milk volume", "n_treat": 15, "n_ctrl": 15, "mean_treat": 14,
         "mean_ctrl": 10, "p_upper": 0.001, "synthetic": "true"},
        # left out of every plot: head-to-head, and unusable
        _row("h2h", "neck", 0.3, 0.2, comparator="oxytocin"),
        _row("bad", "neck", unusable_reason="nothing printed"),
    ]
    return compute_effects(load_studies(pd.DataFrame(rows)), measure="SMD", p_bound="conservative")


# The forest plot: tests/test_forest.py


# ---------------------------------------------------------------- funnel

@pytest.mark.parametrize("contours, z", [((0.90, 0.95, 0.99), (1.645, 1.960, 2.576)), ((0.95,), (1.960,))])
def test_funnel_contour_regions_at_the_right_z(effects, contours, z):
    fig = plots.funnel(effects, contours=contours)
    ax = fig.axes[0]
    x_lim = ax.get_xlim()[1]
    for k, (level, z_in) in enumerate(zip(contours, z)):
        line = _by_gid(fig, f"contour-line:{level:g}=")[0]
        xs, ys = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        assert np.abs(xs[ys > 0]) / ys[ys > 0] == pytest.approx(z_in, abs=1e-3)
        regions = _by_gid(fig, f"contour:{level:g}=")
        assert len(regions) == 2  # one each side of zero
        z_out = z[k + 1] if k + 1 < len(z) else None
        for region in regions:
            v = np.vstack([p.vertices for p in region.get_paths()])
            v = v[v[:, 1] > 1e-9]
            ratio = np.abs(v[:, 0]) / v[:, 1]
            on_inner = np.isclose(ratio, z_in, atol=1e-3)
            on_outer = np.isclose(ratio, z_out, atol=1e-3) if z_out else np.isclose(np.abs(v[:, 0]), x_lim)
            assert (on_inner | on_outer).all() and on_inner.any() and on_outer.any()
            side = np.sign(v[:, 0][np.abs(v[:, 0]) > 1e-12])
            assert len(set(side)) == 1


def test_funnel_points_axes_and_center(effects):
    fig = plots.funnel(effects, center=0.42)
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert lo > hi == 0  # inverted: SE 0 at the top
    groups = {g.get_gid(): len(g.get_xdata()) for g in _by_gid(fig, "studies:")}
    assert groups == {"studies:SE from SD, CI or t": 5, "studies:SE from exact p-value": 1,
                      "studies:SE from p-value bound (p < ...)": 1}
    points = np.concatenate([np.column_stack([g.get_xdata(), g.get_ydata()]) for g in _by_gid(fig, "studies:")])
    used = effects[effects["used"] & ~effects["head_to_head"]]
    assert sorted(map(tuple, points.round(9))) == sorted(map(tuple, used[["yi", "sei"]].to_numpy().round(9)))
    # the axes hold every point and the outermost (99%) contour at the largest SE, symmetric about 0
    x_lo, x_hi = ax.get_xlim()
    assert x_lo == pytest.approx(-x_hi)
    assert x_hi >= max(np.abs(used["yi"]).max(), 2.5758 * used["sei"].max())
    assert lo >= used["sei"].max()
    # a centre far outside the data widens the x axis so its line stays visible
    wide = plots.funnel(effects, center=-3.0)
    assert wide.axes[0].get_xlim()[0] <= -3.0
    (line,) = _by_gid(wide, "center")
    assert "-3.00" in line.get_label()
    assert not _by_gid(plots.funnel(effects), "center")


def test_funnel_point_from_p_value_sits_on_its_contour(effects):
    """A two-group MD SE back-calculated from p = 0.03 puts |yi|/se at t(0.985, 38) = 2.251;
    the SMD's extra g^2 term moves it only slightly. This is why such points carry no
    information about small-study asymmetry (the docstring's warning)."""
    row = effects.set_index("study_id").loc["c1"]
    assert abs(row["yi"]) / row["sei"] == pytest.approx(2.251, rel=0.05)


def test_funnel_rejects_bad_contours(effects):
    with pytest.raises(ValueError, match="contours"):
        plots.funnel(effects, contours=(0.95, 1.2))


# ---------------------------------------------------------------- sensitivity

def _sensitivity_table():
    rows = []
    for k, (scenario, verdict) in enumerate([("base", "PASS"), ("r=0.9", "PASS"), ("censor", "FAIL")]):
        for parameter, shift in (("pooled (mu)", 0.0), ("tau (between studies)", 1.0)):
            rows.append({"scenario": scenario, "tau_prior": "halfnormal(0.5)", "r_prepost": 0.5, "exclude": "",
                         "left_out": "", "parameter": parameter, "mean": 0.3 + k / 10 + shift, "sd": 0.1,
                         "q2.5": 0.1 + k / 10 + shift, "q50": 0.3 + k / 10 + shift, "q97.5": 0.5 + k / 10 + shift,
                         "p_gt_0": 0.99, "verdict": verdict,
                         "problems": "mu: R-hat 1.05 > 1.01" if verdict == "FAIL" else ""})
    return pd.DataFrame(rows)


def test_sensitivity_plot_rows_and_fail_marks():
    table = _sensitivity_table()
    fig = plots.sensitivity_plot(table)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["base", "r=0.9", "censor  [FAIL]"]
    colors = [matplotlib.colors.to_hex(t.get_color()) for t in ax.get_yticklabels()]
    red = matplotlib.colors.to_hex(plots.FAIL_COLOR)
    assert colors[2] == red and red not in colors[:2]
    (line,) = _by_gid(fig, "scenario:r=0.9")
    assert line.get_xdata() == pytest.approx([0.2, 0.6])
    (fail,) = _by_gid(fig, "median:censor")
    assert fail.get_marker() == "X"
    assert any("FAIL" in t.get_text() for t in ax.texts)
    tau = plots.sensitivity_plot(table, parameter="tau (between studies)")
    (line,) = _by_gid(tau, "scenario:base")
    assert line.get_xdata() == pytest.approx([1.1, 1.5])


def test_sensitivity_plot_errors_name_the_problem():
    table = _sensitivity_table()
    with pytest.raises(ValueError, match="available"):
        plots.sensitivity_plot(table, parameter="nope")
    with pytest.raises(ValueError, match="verdict"):
        plots.sensitivity_plot(table.drop(columns="verdict"))


# ---------------------------------------------------------------- other figures

def test_prior_posterior_overlays_the_prior_density(effects):
    fig = plots.prior_posterior(_technique_idata(effects, tau=0.2), "tau")
    (prior,) = _by_gid(fig, "prior")
    x, y = np.asarray(prior.get_xdata()), np.asarray(prior.get_ydata())
    sigma = 0.5  # halfnormal(0.5)
    assert y == pytest.approx(np.sqrt(2 / np.pi) / sigma * np.exp(-x**2 / (2 * sigma**2)), rel=1e-6)
    with pytest.raises(ValueError, match="not in the posterior"):
        plots.prior_posterior(_technique_idata(effects), "sigma")


def test_predictive_check_new_study_interval(effects):
    """technique effect ~ N(c, 0.05), tau = 0.2: a new study's yi ~ N(c, sqrt(0.05^2 + 0.2^2 + se^2))."""
    idata = _technique_idata(effects, tau=0.2, technique={"neck": (0.2, 0.05), "oxytocin": (0.7, 0.05)})
    fig = plots.predictive_check(idata)
    used = effects[effects["used"] & ~effects["head_to_head"]].set_index("study_id")
    for study in ("a1", "b3"):
        (line,) = _by_gid(fig, f"new-study:{study}")
        centre = 0.2 if used.loc[study, "technique"] == "neck" else 0.7
        sd = np.sqrt(0.05**2 + 0.2**2 + used.loc[study, "sei"] ** 2)
        assert line.get_xdata() == pytest.approx([centre - Z975 * sd, centre + Z975 * sd], abs=0.02)
    assert len(_by_gid(fig, "observed:")) == len(used)
    assert not _by_gid(fig, "ppc:")  # no posterior_predictive group yet


# The constructed posterior holds tau and tau_technique constant (known quantiles elsewhere), so
# ArviZ's density estimate says so; a real fit never has a constant parameter.
@pytest.mark.filterwarnings("ignore:Your data appears to have a single value:UserWarning")
def test_arviz_wrappers_one_panel_row_per_parameter(effects):
    # 4 x 1,000 draws: the panels do not depend on the number of draws, and ArviZ's densities and
    # ranks of 4 x 5,000 took 3.1 s of CPU instead of 0.5 s
    idata = technique_idata(effects, chains=CHAINS, draws=1000)
    fig = plots.trace(idata)
    assert len(fig.axes) == 2 * 4  # mu, tau, tau_technique, technique_effect; density + rank
    assert isinstance(fig, matplotlib.figure.Figure)
    fig = plots.rank(idata, var_names=["mu", "tau"])
    assert len([a for a in fig.axes if a.has_data()]) == 2


def test_funnel_labels_stay_inside_the_axes():
    rows = [_row(f"study_{k:02d}_long_name", "neck", yi, 0.1 + 0.05 * k)
            for k, yi in enumerate((-1.2, -0.4, 0.0, 0.5, 1.4, 1.9))]
    effects = compute_effects(load_studies(pd.DataFrame(rows)))
    fig = plots.funnel(effects)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.axes[0].get_window_extent(renderer)
    labels = [a for a in fig.axes[0].texts if str(a.get_gid()).startswith("label:")]
    assert len(labels) == 6
    for label in labels:
        extent = label.get_window_extent(renderer)
        assert box.x0 <= extent.x0 and extent.x1 <= box.x1, label.get_text()


def test_sensitivity_plot_not_fitted_is_not_a_failure():
    table = _sensitivity_table()
    extra = table.iloc[[0]].assign(scenario="drop a1", verdict="FAIL", q2_5=np.nan,
                                   problems="not fitted: 1 usable study left, need 2")
    for q in ("q2.5", "q50", "q97.5", "p_gt_0"):
        extra[q] = np.nan
    fig = plots.sensitivity_plot(pd.concat([table, extra.drop(columns="q2_5")], ignore_index=True))
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] == "drop a1  [not fitted]" and "FAIL" not in labels[-1]
    assert not _by_gid(fig, "scenario:drop a1") and not _by_gid(fig, "median:drop a1")
    assert sum("FAIL" in t.get_text() for t in ax.texts) == 1  # only the real diagnostic failure
