"""The network verbs against independent values (issue 28): metafor's common-effect network and
every node split of a four-node network with three loops (tests/data/reference/network_metafor.{R,json}),
closed forms for tau's row, numpy on known draws for the sampled path, and the drawing read back from
the axes (positions, widths, labels and colours of what network_plot puts on them).

With a vague prior on the effects (normal(0, 1000)) and the between-study SD held at ~0
(halfnormal(1e-5)), the exact posterior of every effect is normal with metafor's estimate as mean
and its SE as sd; tau's posterior is its prior (the data cannot see a tau of 1e-5 beside SEs of 0.15)."""

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from scipy import stats  # noqa: E402

from evsynth.data.studies import load_studies  # noqa: E402
from evsynth.effects import compute_effects  # noqa: E402
from evsynth.methods import network as nm  # noqa: E402

from conftest import ROOT  # noqa: E402

REFERENCE = json.loads((ROOT / "tests" / "data" / "reference" / "network_metafor.json").read_text())
PRIORS = {"mu": "normal(0, 1000)", "tau": "halfnormal(0.00001)"}
Z = stats.norm.ppf(0.975)


def effects_of(rows, outcome="o") -> pd.DataFrame:
    return compute_effects(load_studies(pd.DataFrame(
        [{"study_id": r["study_id"], "citation": "synthetic", "source_level": "synthetic", "design": "effect",
          "technique": r["treat"], "comparator": r["comp"], "outcome": outcome, "yi": r["yi"], "sei": r["sei"],
          "measure": "SMD", "synthetic": True} for r in rows])))


@pytest.fixture(scope="module")
def effects():
    return effects_of(REFERENCE["data"])


# ---- the exact engine against metafor --------------------------------------------------------


def test_network_fit_and_summary_equal_metafor_s_common_effect_network(effects):
    tree = nm.network_fit(effects, PRIORS, draws=300, chains=3, seed=11)
    summary = nm.network_summary(tree)
    ref = REFERENCE["network"]
    labels = [f"{t} vs control" for t in ref["technique"]]
    assert list(summary.index) == labels + ["tau (between studies)"]
    assert list(summary.columns) == ["mean", "q2.5", "q50", "q97.5", "P(>0)"]
    b, se = np.array(ref["estimate"]), np.array(ref["se"])
    got = summary.loc[labels]
    np.testing.assert_allclose(got["mean"].to_numpy(float), b, atol=1e-6)
    np.testing.assert_allclose(got["q50"].to_numpy(float), b, atol=1e-6)
    np.testing.assert_allclose(got["q2.5"].to_numpy(float), b - Z * se, atol=1e-5)
    np.testing.assert_allclose(got["q97.5"].to_numpy(float), b + Z * se, atol=1e-5)
    np.testing.assert_allclose(got["P(>0)"].to_numpy(float), stats.norm.cdf(b / se), atol=1e-6)
    # tau's posterior is its half-normal(1e-5) prior: mean s sqrt(2/pi), quantiles s Phi^-1((1 + p) / 2)
    s = 1e-5
    tau = summary.loc["tau (between studies)"]
    assert tau["mean"] == pytest.approx(s * np.sqrt(2 / np.pi), rel=1e-3)
    for col, p in (("q2.5", 0.025), ("q50", 0.5), ("q97.5", 0.975)):
        assert tau[col] == pytest.approx(s * stats.norm.ppf((1 + p) / 2), rel=1e-3), col
    assert np.isnan(tau["P(>0)"])
    # the draws: chains x draws as asked, seeded, the summary's reference from the fit's attrs
    assert tree.posterior["technique_effect"].shape == (3, 300, 3)
    assert tree.attrs["reference"] == "control"
    again = nm.network_fit(effects, PRIORS, draws=300, chains=3, seed=11)
    other = nm.network_fit(effects, PRIORS, draws=300, chains=3, seed=12)
    draws = tree.posterior["technique_effect"].to_numpy()
    np.testing.assert_array_equal(again.posterior["technique_effect"].to_numpy(), draws)
    assert not np.array_equal(other.posterior["technique_effect"].to_numpy(), draws)
    # independent draws from N(b, se^2): their means within 4 standard errors of 900 draws
    assert np.all(np.abs(draws.reshape(-1, 3).mean(0) - b) < 4 * se / np.sqrt(900))


def test_network_fit_passes_its_model_options_to_the_description(effects):
    """priors, reference and prepost_as_control reach the model; sampler options the exact engine
    has no use for (tune, sampler) are dropped, not refused."""
    from evsynth.engines.exact import fit_exact
    from evsynth.model.description import network as describe

    tree = nm.network_fit(effects, PRIORS, reference="A", engine="exact", draws=200, chains=2, seed=3,
                          tune=50, sampler="pymc")
    direct = fit_exact(describe(effects, PRIORS, "A"), draws=200, chains=2, seed=3)
    for name in ("technique_effect", "tau"):
        np.testing.assert_array_equal(tree.posterior[name].to_numpy(), direct.posterior[name].to_numpy())
    assert list(tree.posterior["technique"].to_numpy()) == ["B", "C", "control"]
    summary = nm.network_summary(tree)
    assert list(summary.index) == ["B vs A", "C vs A", "control vs A", "tau (between studies)"]
    # control vs A is minus A vs control (metafor's d_A)
    ref = REFERENCE["network"]
    assert summary.loc["control vs A", "mean"] == pytest.approx(-ref["estimate"][0], abs=1e-6)
    # defaults: seed 2026 (fit_exact's), 1000 draws x 4 chains
    default = nm.network_fit(effects, PRIORS)
    np.testing.assert_array_equal(default.posterior["tau"].to_numpy(),
                                  fit_exact(describe(effects, PRIORS)).posterior["tau"].to_numpy())
    # a pre/post row enters only when asked, as versus the reference
    rows = REFERENCE["data"] + [{"study_id": "pp", "treat": "C", "comp": "baseline", "yi": 0.9, "sei": 0.2}]
    with_prepost = effects_of(rows)
    plain = nm.network_fit(with_prepost, PRIORS, draws=100, chains=2)
    asked = nm.network_fit(with_prepost, PRIORS, prepost_as_control=True, draws=100, chains=2)
    assert plain.posterior.sizes["study"] == 9 and asked.posterior.sizes["study"] == 10
    np.testing.assert_allclose(nm.network_summary(plain).loc["C vs control", "mean"], ref["estimate"][2], atol=1e-6)
    assert nm.network_summary(asked).loc["C vs control", "mean"] > ref["estimate"][2] + 0.05
    with pytest.raises(ValueError, match=r"^engine 'NUTS' unknown; choose auto, exact or pymc$"):
        nm.network_fit(effects, PRIORS, engine="NUTS")


QUAD = json.loads((ROOT / "tests" / "data" / "reference" / "network_quad.json").read_text())


def test_network_and_splits_with_heterogeneity_equal_scipy_quad(effects):
    """With a real tau prior the posteriors are tau-mixtures of normals (skewed: mean and median of
    the indirect estimate differ by 1e-3 and 3e-5, 10 times the tolerance): summaries and split
    figures against scipy quad written from the model equations (tests/data/reference/network_quad.py)."""
    priors = QUAD["priors"]
    summary = nm.network_summary(nm.network_fit(effects, priors, draws=100, chains=2))
    cols = ["mean", "q2.5", "q50", "q97.5", "P(>0)"]
    for t in ("A", "B", "C"):
        np.testing.assert_allclose(summary.loc[f"{t} vs control", cols].to_numpy(float),
                                   [QUAD["network"][t][c] for c in cols], atol=1e-6, err_msg=t)
    np.testing.assert_allclose(summary.loc["tau (between studies)", cols[:4]].to_numpy(float),
                               [QUAD["network"]["tau"][c] for c in cols[:4]], atol=1e-5)
    table = nm.node_split(effects, priors, split=[("A", "B"), ("C", "control")]).set_index("comparison")
    for name, ref in QUAD["splits"].items():
        row = table.loc[name]
        assert abs(ref["indirect"]["mean"] - ref["indirect"]["q50"]) > 1e-5  # medians (not means) tell apart
        for col, value in (("direct", ref["direct"]["q50"]), ("indirect", ref["indirect"]["q50"]),
                           ("inconsistency", ref["inconsistency"]["q50"]), ("q2.5", ref["inconsistency"]["q2.5"]),
                           ("q97.5", ref["inconsistency"]["q97.5"])):
            assert row[col] == pytest.approx(value, abs=1e-6), (name, col)
        p_above = ref["inconsistency"]["P(>0)"]
        assert row["p_value"] == pytest.approx(2 * min(p_above, 1 - p_above), abs=1e-6), name
        assert not row["flagged"]


@pytest.mark.parametrize("name", list(REFERENCE["splits"]))
def test_every_node_split_equals_metafor_s_split_model(effects, name):
    ref = REFERENCE["splits"][name]
    table = nm.node_split(effects, PRIORS)
    assert table["comparison"].tolist() == ["A vs B", "A vs C", "A vs control", "B vs C", "B vs control",
                                            "C vs control"]
    row = table.set_index("comparison").loc[name]
    assert row["direct_studies"] == ref["direct_studies"]
    assert row["direct"] == pytest.approx(ref["direct"], abs=1e-5)
    assert row["indirect"] == pytest.approx(ref["indirect"], abs=1e-5)
    assert row["inconsistency"] == pytest.approx(ref["inconsistency"], abs=1e-5)
    assert row["q2.5"] == pytest.approx(ref["inconsistency"] - Z * ref["se"], abs=1e-5)
    assert row["q97.5"] == pytest.approx(ref["inconsistency"] + Z * ref["se"], abs=1e-5)
    assert row["p_value"] == pytest.approx(ref["p_value"], abs=1e-5)
    assert row["flagged"] == (ref["p_value"] < 0.05)
    assert row["diagnostics_ok"] == True  # noqa: E712 (NaN, from a misspelt key, would be truthy under bool())
    assert row["engine"] == "exact"


def test_node_split_defaults_reference_and_prepost(effects):
    """reference 'control' and prepost_as_control False by default; both passed on when given."""
    a = nm.node_split(effects, PRIORS, split=[("A", "B")])
    b = nm.node_split(effects, PRIORS, reference="control", prepost_as_control=False, split=[("A", "B")])
    pd.testing.assert_frame_equal(a, b)
    rows = REFERENCE["data"] + [{"study_id": "pp", "treat": "B", "comp": "baseline", "yi": 2.0, "sei": 0.1}]
    more = effects_of(rows)
    pd.testing.assert_frame_equal(nm.node_split(more, PRIORS, split=[("A", "B")]), a)
    asked = nm.node_split(more, PRIORS, split=[("B", "control")], prepost_as_control=True).iloc[0]
    assert asked["direct_studies"] == 3  # the pre/post row is a B-vs-control study now
    # with A as the reference the A-control edge is 'control vs A' (the reference last)
    by_a = nm.node_split(effects, PRIORS, reference="A")
    assert "control vs A" in by_a["comparison"].tolist()
    row = by_a.set_index("comparison").loc["control vs A"]
    ref = REFERENCE["splits"]["A vs control"]
    assert row["inconsistency"] == pytest.approx(-ref["inconsistency"], abs=1e-5)
    assert row["p_value"] == pytest.approx(ref["p_value"], abs=1e-5)


def test_node_split_refuses_a_comparison_without_a_loop_on_either_engine(effects):
    star = effects_of([r for r in REFERENCE["data"] if r["comp"] == "control"])
    for engine in ("exact", "pymc"):
        with pytest.raises(ValueError, match=r"^comparison 'A' vs 'control' cannot be split"):
            nm.node_split(star, PRIORS, split=[("A", "control")], engine=engine)
    # a loop edge given by name is split as in the full table
    given = nm.node_split(effects, PRIORS, split=[("B", "C")])
    every = nm.node_split(effects, PRIORS).set_index("comparison").loc[["B vs C"]].reset_index()
    pd.testing.assert_frame_equal(given, every)


@pytest.mark.parametrize("lo, hi, flagged", [(0.0, 0.4, False), (-0.4, 0.0, False), (1e-12, 0.4, True),
                                             (-0.4, -1e-12, True), (-0.1, 0.1, False)])
def test_flagged_at_an_interval_edge_exactly_zero(monkeypatch, effects, lo, hi, flagged):
    """An interval that ends exactly at 0 includes it (not flagged); one beyond it by 1e-12 is flagged."""
    monkeypatch.setattr(nm, "_split_exact", lambda e, model, split: {
        "direct": 0.1, "indirect": 0.0, "inconsistency": 0.1, "q2.5": lo, "q97.5": hi, "p_value": 0.5,
        "diagnostics_ok": True})
    row = nm.node_split(effects, PRIORS, split=[("A", "B")]).iloc[0]
    assert bool(row["flagged"]) is flagged


# ---- the sampled path: its arithmetic on known draws -----------------------------------------


def _tree(posterior: dict, attrs: dict | None = None, coords: dict | None = None) -> xr.DataTree:
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset(posterior, coords=coords)})
    tree.attrs = dict(attrs or {})
    return tree


def test_split_pymc_reads_the_draws_and_passes_model_and_options(monkeypatch, effects):
    """_split_pymc's figures from the sampled draws, against numpy: medians of direct and indirect,
    the difference's median and 2.5/97.5% quantiles, p = 2 min(P(d > 0), P(d < 0)); the split model
    and the sampler options reach fit; diagnostics_ok is diagnose's verdict."""
    import evsynth.engines.fit as engine_fit
    import evsynth.methods.diagnostics as diagnostics

    rng = np.random.default_rng(5)
    direct = rng.normal(0.3, 0.2, (2, 50))
    indirect = rng.normal(0.1, 0.3, (2, 50))
    diff = direct - indirect
    diff[0, :3] = 0.0  # ties at 0 count on neither side
    calls = []

    def fake_fit(model, **options):
        calls.append((model, options))
        return _tree({"direct": (("chain", "draw"), direct), "indirect": (("chain", "draw"), indirect),
                      "inconsistency": (("chain", "draw"), diff)})

    verdict = {"ok": False}
    monkeypatch.setattr(engine_fit, "fit", fake_fit)

    def fake_diagnose(idata):  # the verdict on the fit just sampled
        assert set(idata["posterior"].data_vars) == {"direct", "indirect", "inconsistency"}
        return type("D", (), {"ok": verdict["ok"]})()

    monkeypatch.setattr(diagnostics, "diagnose", fake_diagnose)
    row = nm.node_split(effects, PRIORS, split=[("A", "B")], engine="pymc", draws=50, chains=2, seed=9).iloc[0]
    flat = diff.ravel()
    assert row["direct"] == pytest.approx(np.median(direct), abs=1e-15)
    assert row["indirect"] == pytest.approx(np.median(indirect), abs=1e-15)
    assert row["inconsistency"] == pytest.approx(np.median(flat), abs=1e-15)
    assert row["q2.5"] == pytest.approx(np.quantile(flat, 0.025), abs=1e-15)
    assert row["q97.5"] == pytest.approx(np.quantile(flat, 0.975), abs=1e-15)
    expected_p = 2 * min(np.sum(flat > 0), np.sum(flat < 0)) / flat.size
    assert expected_p != 2 * min(np.sum(flat >= 0), np.sum(flat <= 0)) / flat.size  # the ties matter here
    assert row["p_value"] == pytest.approx(expected_p, abs=1e-15)
    assert row["flagged"] == (not row["q2.5"] <= 0 <= row["q97.5"])
    assert row["engine"] == "pymc" and bool(row["diagnostics_ok"]) is False
    model, options = calls[0]
    assert options == {"draws": 50, "chains": 2, "seed": 9}
    assert sorted(v.name for v in model.free_RVs) == ["direct", "tau", "technique_effect", "z"]
    assert list(model.coords["technique"]) == ["A", "B", "C"]
    verdict["ok"] = True
    calls.clear()
    row = nm.node_split(effects, PRIORS, reference="B", split=[("A", "C")], engine="pymc").iloc[0]
    assert bool(row["diagnostics_ok"]) is True and calls[0][1] == {}
    assert list(calls[0][0].coords["technique"]) == ["A", "C", "control"]
    # the other side: P(d < 0) the smaller share
    direct, indirect, diff = -direct, -indirect, -diff  # fake_fit reads these names when called
    row = nm.node_split(effects, PRIORS, split=[("A", "B")], engine="pymc").iloc[0]
    assert row["p_value"] == pytest.approx(expected_p, abs=1e-15)


def test_network_fit_pymc_builds_the_model_and_passes_every_option(monkeypatch, effects):
    import evsynth.engines.fit as engine_fit

    calls = []
    monkeypatch.setattr(engine_fit, "fit", lambda model, **options: calls.append((model, options)) or "fitted")
    assert nm.network_fit(effects, PRIORS, reference="B", engine="pymc", draws=7, tune=5, chains=1,
                          sampler="pymc", seed=4) == "fitted"
    model, options = calls[0]
    assert options == {"draws": 7, "tune": 5, "chains": 1, "sampler": "pymc", "seed": 4}
    assert list(model.coords["technique"]) == ["A", "C", "control"]
    assert sorted(v.name for v in model.free_RVs) == ["tau", "technique_effect", "z"]
    rows = REFERENCE["data"] + [{"study_id": "pp", "treat": "C", "comp": "baseline", "yi": 0.9, "sei": 0.2}]
    nm.network_fit(effects_of(rows), PRIORS, prepost_as_control=True, engine="pymc")
    assert len(calls[1][0].coords["study"]) == 10 and calls[1][1] == {}
    nm.network_fit(effects_of(rows), PRIORS, engine="pymc")
    assert len(calls[2][0].coords["study"]) == 9
    # the prior reaches the PyMC model: tau's prior scale is 1e-5 (its log-density at tau = 1e-5)
    import pymc as pm

    tau = model["tau"]
    logp = pm.logp(tau, 1e-5).eval()
    assert float(logp) == pytest.approx(stats.halfnorm(scale=1e-5).logpdf(1e-5), rel=1e-9)
    # auto and exact both mean the exact engine; anything else is refused
    for engine in ("auto", "exact"):
        assert nm.network_fit(effects, PRIORS, engine=engine, draws=100, chains=2).attrs["engine"] == "exact"
    assert len(calls) == 3


def test_network_summary_from_draws_equals_numpy():
    rng = np.random.default_rng(3)
    effect = rng.normal(0.2, 0.3, (2, 40, 2))
    effect[0, :5, 1] = 0.0  # zeros are not above 0
    tau = np.abs(rng.normal(0, 0.2, (2, 40)))
    variables = {"technique_effect": (("chain", "draw", "technique"), effect), "tau": (("chain", "draw"), tau)}
    tree = _tree(variables, {"reference": "usual care"}, {"technique": ["X", "Y"]})
    summary = nm.network_summary(tree)
    assert list(summary.index) == ["X vs usual care", "Y vs usual care", "tau (between studies)"]
    assert list(summary.columns) == ["mean", "q2.5", "q50", "q97.5", "P(>0)"]
    for k, label in enumerate(["X vs usual care", "Y vs usual care"]):
        x = effect[:, :, k].ravel()
        expected = [x.mean(), *np.quantile(x, [0.025, 0.5, 0.975]), np.mean(x > 0)]
        np.testing.assert_allclose(summary.loc[label].to_numpy(float), expected, rtol=1e-14, atol=1e-15)
    t = tau.ravel()
    np.testing.assert_allclose(summary.loc["tau (between studies)"].to_numpy(float)[:4],
                               [t.mean(), *np.quantile(t, [0.025, 0.5, 0.975])], rtol=1e-14)
    assert np.isnan(summary.loc["tau (between studies)", "P(>0)"])
    # no reference in attrs: the rows say 'vs reference'
    bare = _tree(variables, coords={"technique": ["X", "Y"]})
    assert list(nm.network_summary(bare).index)[:2] == ["X vs reference", "Y vs reference"]
    # a fit object without DataTree children (posterior and attrs only) is read from its draws
    from types import SimpleNamespace

    plain = SimpleNamespace(attrs={"reference": "usual care"}, posterior=tree["posterior"].to_dataset())
    pd.testing.assert_frame_equal(nm.network_summary(plain), summary)


def test_network_summary_of_an_exact_fit_reads_its_exact_rows_only(effects):
    """The exact summaries (not the draws), each technique row and tau, nothing else of the group."""
    from evsynth.engines.exact import exact_summary
    from evsynth.model.description import network as describe

    tree = nm.network_fit(effects, PRIORS, draws=100, chains=2)
    exact = exact_summary(describe(effects, PRIORS))
    summary = nm.network_summary(tree)
    for t in ("A", "B", "C"):
        row = exact.loc[("technique_effect", t)]
        np.testing.assert_array_equal(summary.loc[f"{t} vs control"].to_numpy(float),
                                      row[["mean", "q2.5", "q50", "q97.5", "P(>0)"]].to_numpy(float))
    row = exact.xs("tau", level="variable").iloc[0]
    np.testing.assert_array_equal(summary.loc["tau (between studies)"].to_numpy(float)[:4],
                                  row[["mean", "q2.5", "q50", "q97.5"]].to_numpy(float))
    assert len(summary) == 4
    # a row of another variable in the group (a study's theta, a split's inconsistency) is not shown
    group = tree["exact_summary"].to_dataset()
    extra = group.isel(quantity=[0]).assign_coords(quantity=["theta[s1]"], variable=("quantity", ["theta"]),
                                                   label=("quantity", ["s1"]))
    tree["exact_summary"] = xr.concat([group, extra], "quantity")
    pd.testing.assert_frame_equal(nm.network_summary(tree), summary)
    # without the reference in attrs
    tree.attrs = {k: v for k, v in tree.attrs.items() if k != "reference"}
    assert list(nm.network_summary(tree).index)[:3] == ["A vs reference", "B vs reference", "C vs reference"]


# ---- the drawing: what is on the axes ---------------------------------------------------------


def test_network_plot_draws_every_edge_node_and_label_where_it_says():
    import matplotlib.pyplot as plt

    rows = REFERENCE["data"] + [{"study_id": "s10", "treat": "C", "comp": "usual care", "yi": 0.3, "sei": 0.2}]
    fig = nm.network_plot(effects_of(rows))
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and fig.get_size_inches().tolist() == [6.0, 6.0]
    # nodes on the unit circle, the reference on top, the rest clockwise in alphabetical order
    nodes = ["control", "A", "B", "C"]
    angle = {n: np.pi / 2 - 2 * np.pi * k / 4 for k, n in enumerate(nodes)}
    xy = {n: np.array([np.cos(a), np.sin(a)]) for n, a in angle.items()}
    # edges: one line per comparison, width EDGE_WIDTH per study, between the two nodes
    studies = {("A", "B"): 2, ("A", "C"): 1, ("A", "control"): 2, ("B", "C"): 1, ("B", "control"): 2,
               ("C", "control"): 2}
    lines = {line.get_gid(): line for line in ax.lines}
    assert set(lines) == {f"edge:{a}|{b}" for a, b in studies}
    for (a, b), k in studies.items():
        line = lines[f"edge:{a}|{b}"]
        np.testing.assert_allclose(np.column_stack(line.get_data()), np.array([xy[a], xy[b]]), atol=1e-12)
        assert line.get_linewidth() == k * nm.EDGE_WIDTH == 2.5 * k
        assert matplotlib.colors.same_color(line.get_color(), "tab:blue")
        assert line.get_alpha() == 0.6 and line.get_solid_capstyle() == "round" and line.get_zorder() == 1
    # edge labels: the number of studies at each edge's midpoint, in a white circle edged blue, above
    texts = ax.texts
    counts = [t for t in texts if not isinstance(t, matplotlib.text.Annotation)]
    assert len(counts) == len(studies)
    for ((a, b), k), text in zip(studies.items(), counts):  # drawn in the edges' order
        np.testing.assert_allclose(text.get_position(), (xy[a] + xy[b]) / 2, atol=1e-12)
        assert text.get_text() == str(k) and text.get_fontsize() == 8 and text.get_zorder() == 3
        assert (text.get_ha(), text.get_va()) == ("center", "center")
        patch = text.get_bbox_patch()
        assert type(patch.get_boxstyle()).__name__ == "Circle"
        assert matplotlib.colors.same_color(patch.get_facecolor(), "white")
        assert matplotlib.colors.same_color(patch.get_edgecolor(), "tab:blue")
    # nodes: one marker each, black for the reference, orange otherwise, between edges and labels
    assert len(ax.collections) == 4
    for n, coll in zip(nodes, ax.collections):
        np.testing.assert_allclose(coll.get_offsets(), [xy[n]], atol=1e-12)
        assert coll.get_sizes().tolist() == [300] and coll.get_zorder() == 2
        assert matplotlib.colors.same_color(coll.get_facecolor()[0], "black" if n == "control" else "tab:orange")
    # node names: above a node in the upper half, below one in the lower half (14 points), the reference bold
    names = [t for t in texts if isinstance(t, matplotlib.text.Annotation)]
    assert [t.get_text() for t in names] == nodes
    for n, t in zip(nodes, names):
        np.testing.assert_allclose(t.xy, xy[n], atol=1e-12)
        assert t.xyann == (0, 14 if xy[n][1] >= 0 else -14) and t.anncoords == "offset points"
        assert (t.get_ha(), t.get_va(), t.get_fontsize()) == ("center", "center", 9)
        assert t.get_fontweight() == ("bold" if n == "control" else "normal")
    # B sits at the bottom (y = -1): its name goes below; A at y = 0 (to the right) above
    assert names[2].xyann == (0, -14) and names[1].xyann == (0, 14)
    assert ax.get_xlim() == (-1.6, 1.6) and ax.get_ylim() == (-1.4, 1.4)
    assert ax.get_aspect() == 1.0 and not ax.axison
    assert ax.get_title() == "Network of comparisons (o); edge label = number of studies"
    assert ax.title.get_fontsize() == 9
    plt.close(fig)


def test_network_plot_on_given_axes_with_options_and_refusal():
    import matplotlib.pyplot as plt

    rows = [{"study_id": "p1", "treat": "B", "comp": "baseline", "yi": 0.5, "sei": 0.2},
            {"study_id": "a1", "treat": "A", "comp": "control", "yi": 0.4, "sei": 0.2}]
    effects = effects_of(rows, outcome="milk volume")
    fig, ax = plt.subplots(figsize=(3, 2))
    assert nm.network_plot(effects, ax=ax) is fig and len(fig.axes) == 1
    assert {line.get_gid() for line in ax.lines} == {"edge:A|control"}  # the pre/post row left out
    assert ax.get_title() == "Network of comparisons (milk volume); edge label = number of studies"
    plt.close(fig)
    fig = nm.network_plot(effects, prepost_as_control=True)
    assert {line.get_gid() for line in fig.axes[0].lines} == {"edge:A|control", "edge:B|control"}
    plt.close(fig)
    fig = nm.network_plot(effects, reference="A")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts if isinstance(t, matplotlib.text.Annotation)] == ["A", "control"]
    assert {line.get_gid() for line in ax.lines} == {"edge:control|A"}
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [[0.0, 1.0]], atol=1e-12)  # A on top
    plt.close(fig)
    # a table of pooled outcomes: every outcome named in the title
    two = pd.concat([effects_of(rows[1:], outcome="prolactin"), effects_of(
        [{"study_id": "a2", "treat": "A", "comp": "control", "yi": 0.3, "sei": 0.2}], outcome="milk volume")],
        ignore_index=True)
    fig = nm.network_plot(two)
    assert fig.axes[0].get_title() == "Network of comparisons (milk volume, prolactin); edge label = number of studies"
    assert [t.get_text() for t in fig.axes[0].texts if not isinstance(t, matplotlib.text.Annotation)] == ["2"]
    plt.close(fig)
    only_prepost = effects_of(rows[:1])
    with pytest.raises(ValueError, match=r"^no usable comparisons to draw$"):
        nm.network_plot(only_prepost)
