"""The model description (evsynth.model.description) on its own: what each constructor builds, written
out by hand from the model equations in the module docstring; `subset` and `without` against the
constructors on the reduced table / the smaller model; default priors, settings, data hash."""

from dataclasses import fields, is_dataclass

import numpy as np
import pandas as pd
import pytest

from evsynth import compute_effects, load_studies
from evsynth.model import description as d
from evsynth.engines.exact import exact_summary

PRIORS = {"mu": "normal(0.1, 0.8)", "tau": "halfnormal(0.4)", "tau_technique": "halfnormal(0.3)",
          "beta": "normal(0, 2)"}


def effect_table(yi, sei, technique=None, censored=None, measure="SMD", **columns) -> pd.DataFrame:
    """A synthetic effect table as compute_effects gives it, every row used."""
    n = len(yi)
    table = pd.DataFrame({
        "study_id": [f"s{i}" for i in range(n)], "technique": technique or ["t"] * n, "comparator": "control",
        "outcome": "o", "unit": "", "design": "effect", "measure": measure, "yi": np.asarray(yi, float),
        "sei": np.asarray(sei, float), "vi": np.square(sei), "used": True, "head_to_head": False, "why_not": "",
        "censored": censored if censored is not None else [False] * n, "sd_scale": np.nan, "synthetic": True,
        **columns})
    table.attrs["measure"] = measure
    return table


def four_techniques() -> pd.DataFrame:
    return effect_table([0.3, 0.5, 0.1, 0.9, 0.4, -0.2, 0.6], [0.2, 0.25, 0.3, 0.2, 0.15, 0.3, 0.22],
                        technique=["b", "a", "b", "c", "a", "d", "c"], x=[1.0, 2.0, 0.5, 3.0, 1.5, 0.0, 2.5])


def network_effects() -> pd.DataFrame:
    """Controlled and head-to-head rows over A, B, C and control; trial T1 has three arms (two rows)."""
    design = [("A", "control", "T1"), ("B", "control", "T1"), ("A", "control", "a2"), ("B", "control", "b2"),
              ("A", "B", "ab1"), ("B", "A", "ba1"), ("C", "control", "c1"), ("C", "A", "ca1")]
    rows = [{"study_id": f"{t}-{c}-{trial}", "citation": "synthetic", "source_level": "synthetic", "design": "effect",
             "technique": t, "comparator": c, "outcome": "synthetic", "yi": 0.1 * k - 0.2, "sei": 0.1 + 0.02 * k,
             "measure": "SMD", "synthetic": True} for k, (t, c, trial) in enumerate(design)]
    effects = compute_effects(load_studies(pd.DataFrame(rows)))
    effects["trial"] = effects["study_id"].str.split("-").str[2]
    return effects


def assert_same_model(a, b, skip=()):
    """Field by field, arrays exactly, nested descriptions (blocks, parts, reported) recursively."""
    if is_dataclass(a):
        assert type(a) is type(b)
        for f in fields(a):
            if f.name not in skip:
                assert_same_model(getattr(a, f.name), getattr(b, f.name), skip), f.name
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert np.array_equal(np.asarray(a, float), np.asarray(b, float)), (a, b)
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), (a, b)
        for x, y in zip(a, b):
            assert_same_model(x, y, skip)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), (a, b)
        for key in a:
            assert_same_model(a[key], b[key], skip)
    else:
        assert a == b


def reduced(effects: pd.DataFrame, keep_ids) -> pd.DataFrame:
    out = effects[effects["study_id"].isin(keep_ids)].reset_index(drop=True)
    out.attrs = dict(effects.attrs)
    return out


# --------------------------------------------------------------------------- constructors by hand


def test_common_and_random_effects_written_out():
    table = effect_table([0.2, -0.1, 0.5], [0.1, 0.2, 0.3], censored=[False, True, False])
    table.attrs |= {"r_prepost": 0.5, "p_bound": 0.05, "other": "not carried"}
    ce = d.common_effect(table, {"mu": "normal(0.1, 0.8)"})
    assert ce.kind == "common_effect" and ce.study_id == ("s0", "s1", "s2")
    assert np.array_equal(ce.yi, [0.2, -0.1, 0.5]) and np.array_equal(ce.sei, [0.1, 0.2, 0.3])
    assert ce.censored.tolist() == [False, True, False] and ce.censored.dtype == bool
    assert np.array_equal(ce.X, np.ones((3, 1)))
    assert_same_model(ce.fixed, (d.FixedBlock("mu", None, ("mu",), "normal(0.1, 0.8)"),))
    assert ce.study_prior is None and ce.taus == [] and ce.parts == () and ce.reported == ()
    assert ce.settings == {"measure": "SMD", "r_prepost": "0.5", "p_bound": "0.05", "outcomes": "o",
                           "data_hash": d.data_hash(["s0", "s1", "s2"], [0.2, -0.1, 0.5], [0.1, 0.2, 0.3],
                                                    [False, True, False]),
                           "model": "common_effect", "prior_mu": "normal(0.1, 0.8)"}
    re = d.random_effects(table, PRIORS | {"beta": "normal(0, 1)"})
    assert re.kind == "random_effects" and re.study_prior == "halfnormal(0.4)"
    assert re.taus == [("tau", "halfnormal(0.4)")]
    assert_same_model(re, ce, skip=("kind", "study_prior", "settings"))
    assert re.settings == ce.settings | {"model": "random_effects", "prior_tau": "halfnormal(0.4)"}


def test_by_technique_written_out():
    table = four_techniques()
    model = d.by_technique(table, PRIORS)
    techniques = ("a", "b", "c", "d")  # sorted
    index = [1, 0, 1, 2, 0, 3, 2]
    assert model.kind == "by_technique" and model.study_prior == "halfnormal(0.4)"
    assert np.array_equal(model.data["technique_idx"], index)
    (part,) = model.parts
    assert_same_model(part, d.RandomPart("tau_technique", "halfnormal(0.3)", "technique", techniques,
                                         np.eye(4)[index]))
    (effect,) = model.reported
    assert_same_model(effect, d.Reported("technique_effect", "technique", techniques, np.ones((4, 1)),
                                         {"tau_technique": np.eye(4)}))
    assert model.taus == [("tau", "halfnormal(0.4)"), ("tau_technique", "halfnormal(0.3)")]
    assert {k: model.settings[k] for k in ("model", "prior_mu", "prior_tau", "prior_tau_technique")} == {
        "model": "by_technique", "prior_mu": "normal(0.1, 0.8)", "prior_tau": "halfnormal(0.4)",
        "prior_tau_technique": "halfnormal(0.3)"}


def test_meta_regression_written_out_with_or_without_the_formula_intercept():
    table = four_techniques()
    model = d.meta_regression(table, "~ x", PRIORS)
    x = table["x"].to_numpy()
    assert np.array_equal(model.X, np.column_stack([np.ones(7), x]))
    assert np.array_equal(model.data["X"], x[:, None])
    assert_same_model(model.fixed, (d.FixedBlock("mu", None, ("mu",), "normal(0.1, 0.8)"),
                                    d.FixedBlock("beta", "moderator", ("x",), "normal(0, 2)")))
    assert model.block_slices() == {"mu": slice(0, 1), "beta": slice(1, 2)}
    means, sds = model.prior_moments()
    assert means.tolist() == [0.1, 0.0] and sds.tolist() == [0.8, 2.0]
    assert {k: model.settings[k] for k in ("model", "mods", "prior_mu", "prior_tau", "prior_beta")} == {
        "model": "meta_regression", "mods": "x", "prior_mu": "normal(0.1, 0.8)", "prior_tau": "halfnormal(0.4)",
        "prior_beta": "normal(0, 2)"}
    assert_same_model(d.meta_regression(table, "~ x - 1", PRIORS), model)  # mu is added either way
    assert_same_model(d.describe("meta_regression", table, PRIORS, mods="~ x"), model)
    with pytest.raises(ValueError, match=r"mods '~ 1' give no moderator column"):
        d.meta_regression(table, "~ 1", PRIORS)


def test_two_moderators_give_two_slopes_with_one_prior():
    table = four_techniques().assign(z=[0.0, 1.0, 1.0, 0.0, 2.0, 1.0, 3.0])
    model = d.meta_regression(table, ["x", "z"], PRIORS | {"beta": "normal(0.5, 3)"})
    assert model.fixed[1].labels == ("x", "z") and model.X.shape == (7, 3)
    assert model.block_slices() == {"mu": slice(0, 1), "beta": slice(1, 3)}
    means, sds = model.prior_moments()
    assert means.tolist() == [0.1, 0.5, 0.5] and sds.tolist() == [0.8, 3.0, 3.0]
    assert model.settings["mods"] == "x, z"


def test_prior_moments_refuse_a_non_normal_prior_on_a_coefficient():
    model = d.common_effect(effect_table([0.1, 0.2], [0.1, 0.1]), {"mu": "student_t(3, 0, 1)"})
    with pytest.raises(ValueError, match=r"prior of mu is student_t\(3, 0, 1\): the Gaussian model takes normal"):
        model.prior_moments()


def test_network_written_out():
    effects = network_effects()
    model = d.network(effects, PRIORS | {"beta": "normal(0, 1)"})
    labels = ("A", "B", "C")
    #          A   B   C      rows: A-c(T1), B-c(T1), A-c, B-c, A-B, B-A, C-c, C-A
    expected = [[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0], [1, -1, 0], [-1, 1, 0], [0, 0, 1], [-1, 0, 1]]
    assert model.kind == "network"
    order = [model.study_id.index(s) for s in effects["study_id"]]
    assert np.array_equal(model.X[order], expected)
    assert_same_model(model.fixed, (d.FixedBlock("technique_effect", "technique", labels, "normal(0.1, 0.8)"),))
    assert model.study_prior == "halfnormal(0.4)" and model.reported == ()
    trial = effects.set_index("study_id")["trial"]
    same = np.array([[trial[a] == trial[b] for b in model.study_id] for a in model.study_id])
    assert np.array_equal(model.study_correlation, np.where(same, 0.5, 0.0) + 0.5 * np.eye(8))
    node = {"control": 0, "A": 1, "B": 2, "C": 3}
    treat, comp = zip(*[s.split("-")[:2] for s in model.study_id])
    assert np.array_equal(model.data["treat_idx"], [node[t] for t in treat])
    assert np.array_equal(model.data["comp_idx"], [node[c] for c in comp])
    assert {k: model.settings[k] for k in ("model", "reference", "prior_mu", "prior_tau", "prepost_as_control")} == {
        "model": "network", "reference": "control", "prior_mu": "normal(0.1, 0.8)", "prior_tau": "halfnormal(0.4)",
        "prepost_as_control": "False"}
    assert_same_model(d.describe("network", effects, PRIORS | {"beta": "normal(0, 1)"}), model)


@pytest.mark.parametrize("split", [("A", "B"), ("B", "A")])
def test_node_split_written_out(split):
    effects = network_effects()
    model = d.network(effects, PRIORS | {"beta": "normal(0, 1)"}, split=split)
    a, b = split
    order = [model.study_id.index(s) for s in effects["study_id"]]
    # the a-b studies (either direction) only on `direct`, with the sign of a vs b; the rest as before
    sign = {("A", "B"): 1.0, ("B", "A"): -1.0}[split]
    expected = [[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, sign], [0, 0, 0, -sign],
                [0, 0, 1, 0], [-1, 0, 1, 0]]
    assert np.array_equal(model.X[order], expected)
    assert [b.name for b in model.fixed] == ["technique_effect", "direct"]
    assert model.fixed[1] == d.FixedBlock("direct", None, ("direct",), "normal(0.1, 0.8)")
    indirect = np.array([[1.0 if t == a else -1.0 if t == b else 0.0 for t in ("A", "B", "C")] + [0.0]])
    (ind, inc) = model.reported
    assert_same_model(ind, d.Reported("indirect", None, ("indirect",), indirect))
    assert_same_model(inc, d.Reported("inconsistency", None, ("inconsistency",), np.array([[0, 0, 0, 1.0]]) - indirect))
    assert model.settings["model"] == f"network split {a} vs {b}"


def test_node_split_against_the_reference_and_a_comparison_that_cannot_be_split():
    effects = network_effects()
    model = d.network(effects, PRIORS | {"beta": "normal(0, 1)"}, split=("C", "control"))
    # control is the reference: indirect = d_C - 0
    assert np.array_equal(model.reported[0].fixed, [[0, 0, 1, 0]])
    model = d.network(effects, PRIORS | {"beta": "normal(0, 1)"}, split=("control", "C"))
    assert np.array_equal(model.reported[0].fixed, [[0, 0, -1, 0]])
    star = effects[effects["comparator"] == "control"].reset_index(drop=True)
    star.attrs = dict(effects.attrs)
    with pytest.raises(ValueError, match=r"comparison 'A' vs 'B' cannot be split: it needs direct studies"):
        d.network(star, split=("A", "B"))


def test_network_with_another_reference():
    effects = network_effects()
    model = d.network(effects, PRIORS | {"beta": "normal(0, 1)"}, reference="A")
    assert model.fixed[0].labels == ("B", "C", "control") and model.settings["reference"] == "A"
    order = [model.study_id.index(s) for s in effects["study_id"]]
    #          B   C  control    rows: A-c(T1), B-c(T1), A-c, B-c, A-B, B-A, C-c, C-A
    expected = [[0, 0, -1], [1, 0, -1], [0, 0, -1], [1, 0, -1], [-1, 0, 0], [1, 0, 0], [0, 1, -1], [0, 1, 0]]
    assert np.array_equal(model.X[order], expected)


def test_multi_arm_correlation():
    assert d.multi_arm_correlation(["a", "b", "c"]) is None
    assert np.array_equal(d.multi_arm_correlation(["a", "b", "a", 1, "1"]),
                          [[1, 0, 0.5, 0, 0], [0, 1, 0, 0, 0], [0.5, 0, 1, 0, 0], [0, 0, 0, 1, 0.5], [0, 0, 0, 0.5, 1]])


def test_censoring_direction():
    table = effect_table([1.2, -0.5, 0.3, -0.4], [0.2] * 4, censored=[True, True, False, False])
    assert d.random_effects(table).censoring_direction().tolist() == [1.0, -1.0, 0.0, 0.0]


def test_describe_each_kind_and_refuse_an_unknown_one():
    table = four_techniques()
    for kind in ("common_effect", "random_effects", "by_technique"):
        assert_same_model(d.describe(kind, table, PRIORS), d.CONSTRUCTORS[kind](table, PRIORS))
    assert d.describe("random_effects", table).settings["prior_tau"] == "halfnormal(0.5)"  # default priors
    split = d.describe("network", network_effects(), {"mu": "normal(0, 1)"}, split=("A", "B"))
    assert split.settings["model"] == "network split A vs B"
    with pytest.raises(ValueError, match=r"model 'metaregression' has no Gaussian description; these do: "
                                         r"\['by_technique', 'common_effect', 'meta_regression', 'multilevel', "
                                         r"'network', 'random_effects'\]"):
        d.describe("metaregression", table)


# --------------------------------------------------------------------------- priors, settings, hash


def test_default_priors_standardized_and_md_in_the_outcome_unit():
    assert d.default_priors(effect_table([0.1], [0.1])) == d.STANDARD_PRIORS == {
        "mu": "normal(0, 1)", "tau": "halfnormal(0.5)", "tau_technique": "halfnormal(0.5)", "beta": "normal(0, 1)"}
    md = effect_table([1.0, 2.0, 3.0, 4.0], [0.5] * 4, measure="MD")
    md["sd_scale"] = [2.0, 12.3456, 10.0, np.nan]  # median of the known SDs: 10
    assert d.default_priors(md) == {"mu": "normal(0, 10)", "tau": "halfnormal(5)", "tau_technique": "halfnormal(5)",
                                    "beta": "normal(0, 10)"}
    md["sd_scale"] = [2.0, 12.3456, np.nan, np.nan]  # median 7.1728: four significant digits
    assert d.default_priors(md)["mu"] == "normal(0, 7.173)" and d.default_priors(md)["tau"] == "halfnormal(3.586)"
    assert d.random_effects(md).settings["prior_mu"] == "normal(0, 7.173)"
    for bad in ([np.nan] * 4, [0.0] * 4):
        md["sd_scale"] = bad
        with pytest.raises(ValueError, match="MD priors need a raw-score SD from at least one study"):
            d.default_priors(md)
        # every prior given: no default needed, no raw-score SD needed
        assert d.random_effects(md, {"mu": "normal(0, 5)", "tau": "halfnormal(2)"}).study_prior == "halfnormal(2)"


def test_resolve_priors():
    table = effect_table([0.1], [0.1])
    assert d.resolve_priors(table, {"tau": "halfcauchy(1)"}) == {"mu": "normal(0, 1)", "tau": "halfcauchy(1)"}
    assert d.resolve_priors(table, None, ("mu",)) == {"mu": "normal(0, 1)"}
    with pytest.raises(ValueError, match=r"priors for \['sigma'\] unknown; this model takes \['mu', 'tau'\]"):
        d.resolve_priors(table, {"sigma": "normal(0, 1)"})


def test_data_hash_identifies_the_data_and_the_weights():
    base = (["a", "b"], [0.1, 0.2], [0.3, 0.4], [False, True])
    h = d.data_hash(*base)
    assert len(h) == 16 and int(h, 16) >= 0
    assert d.data_hash(*base) == h == d.data_hash(*base, None)
    changed = [(["a", "c"], *base[1:]), (base[0], [0.1, 0.21], *base[2:]), (*base[:2], [0.3, 0.41], base[3]),
               (*base[:3], [True, True])]
    hashes = {d.data_hash(*c) for c in changed} | {d.data_hash(*base, [1.0, 2.0]), d.data_hash(*base, [1.0, 3.0])}
    assert len(hashes) == 6 and h not in hashes


def test_data_settings_weights_and_integrated_study_effects():
    table = effect_table([0.1, 0.2, 0.3], [0.1] * 3)
    table["outcome"] = ["pain", "milk", "pain"]
    plain = d.data_settings(table, table)
    assert plain == {"measure": "SMD", "outcomes": "milk, pain",
                     "data_hash": d.data_hash(table["study_id"], table["yi"], table["sei"], table["censored"])}
    weighted = d.data_settings(table, table, np.array([1.0, 2.0, 0.5]), study_effects=False)
    assert weighted == plain | {"data_hash": d.data_hash(table["study_id"], table["yi"], table["sei"],
                                                         table["censored"], np.array([1.0, 2.0, 0.5])),
                                "weights": "s1=2, s2=0.5", "study_effects": "integrated out"}


def test_prepare_drops_unused_rows():
    table = effect_table([0.1, 0.2, 0.3], [0.1] * 3)
    table.loc[1, "used"] = False
    assert d.random_effects(table).study_id == ("s0", "s2")


# --------------------------------------------------------------------------- subset and without


def test_subset_equals_describing_the_reduced_table():
    table = four_techniques()
    keep = np.array([True, True, True, True, True, False, False])  # technique d loses its only study
    for kind, options in (("random_effects", {}), ("by_technique", {}), ("meta_regression", {"mods": "~ x"})):
        full = d.describe(kind, table, PRIORS, **options)
        direct = d.describe(kind, reduced(table, [f"s{i}" for i in range(5)]), PRIORS, **options)
        cut = full.subset(keep)
        assert cut.data == {} and "data_hash" not in cut.settings
        assert {k: v for k, v in cut.settings.items()} == {k: v for k, v in direct.settings.items() if k != "data_hash"}
        assert_same_model(cut, direct, skip=("data", "settings"))
    with pytest.raises(ValueError, match=r"keep has shape \(3,\); the model has 7 rows"):
        full.subset([True] * 3)


def test_subset_of_a_network_drops_nodes_and_the_multi_arm_correlation():
    effects = network_effects()
    priors = PRIORS | {"beta": "normal(0, 1)"}
    full = d.network(effects, priors, split=("A", "B"))
    for drop in (["B-control-T1"],  # the multi-arm trial keeps one row: correlation gone
                 ["C-control-c1", "C-A-ca1"]):  # node C has no study left: its column goes
        keep = ~np.isin(full.study_id, drop)
        ids = [s for s in effects["study_id"] if s not in drop]
        cut = full.subset(keep)
        assert_same_model(cut, d.network(reduced(effects, ids), priors, split=("A", "B")), skip=("data", "settings"))
        assert (cut.study_correlation is None) == (drop == ["B-control-T1"])
        assert cut.fixed[0].labels == (("A", "B") if "C-A-ca1" in drop else ("A", "B", "C"))
    keep = np.isin(full.study_id, ["A-control-T1", "B-control-T1", "A-B-ab1", "A-control-a2"])
    assert np.array_equal(full.subset(keep).study_correlation,
                          d.multi_arm_correlation([s.split("-")[2] for s in full.subset(keep).study_id]))


def test_subset_of_by_technique_drops_the_technique_effect_of_a_technique_without_studies():
    table = four_techniques()
    cut = d.by_technique(table, PRIORS).subset(table["technique"].to_numpy() != "d")
    assert cut.parts[0].labels == ("a", "b", "c") and cut.reported[0].labels == ("a", "b", "c")
    assert np.array_equal(cut.reported[0].random["tau_technique"], np.eye(3))


def test_without_tau_is_the_common_effect_model():
    table = four_techniques()
    null = d.random_effects(table, PRIORS).without("tau")
    assert null.settings["null"] == "tau = 0" and null.study_prior is None and null.taus == []
    assert_same_model(null, d.common_effect(table, PRIORS), skip=("kind", "settings"))
    net = d.network(network_effects(), PRIORS | {"beta": "normal(0, 1)"}).without("tau")
    assert net.study_prior is None and net.study_correlation is None
    summary = exact_summary(null)
    assert summary.loc[("mu", "mu"), "mean"] == pytest.approx(
        exact_summary(d.common_effect(table, PRIORS)).loc[("mu", "mu"), "mean"], rel=1e-12)


def test_without_a_fixed_block_or_the_technique_level():
    table = four_techniques()
    slope_null = d.meta_regression(table, "~ x", PRIORS).without("beta")
    assert slope_null.settings["null"] == "beta = 0"
    assert_same_model(slope_null, d.random_effects(table, PRIORS), skip=("kind", "settings", "data"))
    mu_null = d.by_technique(table, PRIORS).without("mu")
    assert mu_null.X.shape == (7, 0) and mu_null.fixed == () and mu_null.settings["null"] == "mu = 0"
    assert mu_null.reported[0].fixed.shape == (4, 0)
    flat = d.by_technique(table, PRIORS).without("tau_technique")
    assert flat.parts == () and flat.settings["null"] == "tau_technique = 0"
    assert flat.reported[0].random == {} and np.array_equal(flat.reported[0].fixed, np.ones((4, 1)))
    assert_same_model(flat, d.random_effects(table, PRIORS), skip=("kind", "settings", "data", "reported"))
    with pytest.raises(ValueError, match=r"'tau' is not a part of this common_effect model; its parts: mu$"):
        d.common_effect(table, PRIORS).without("tau")
    with pytest.raises(ValueError, match=r"'sigma' is not a part of this by_technique model; its parts: mu, tau, "
                                         r"tau_technique$"):
        d.by_technique(table, PRIORS).without("sigma")
