"""Network meta-analysis: recovery of known technique effects on simulated networks (synthetic,
fixed seeds), agreement with the closed-form generalized-least-squares estimate, node-splitting on a
simulated loop with and without an injected inconsistency, structure checks and the network plot."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from evsynth.engines.builders import BUILDERS  # noqa: E402
from evsynth.effects import compute_effects  # noqa: E402
from evsynth.engines.fit import fit  # noqa: E402
from evsynth.methods.network import (  # noqa: E402
    EDGE_WIDTH, network, network_plot, network_summary, network_table, node_split, splittable_comparisons,
)
from evsynth.data.studies import load_studies  # noqa: E402

from conftest import ROOT  # noqa: E402

FIT = dict(draws=400, tune=400, chains=2, seed=7, sampler="pymc")


def simulate_network(seed: int, design, truth: dict, tau: float, se_range=(0.1, 0.2), shift=None) -> pd.DataFrame:
    """Effect rows y = d[treat] - d[comp] + N(0, tau) + N(0, se) (synthetic). `shift` adds a fixed
    amount to one comparison's studies: an inconsistency between direct and indirect evidence."""
    rng = np.random.default_rng(seed)
    rows = []
    for treat, comp, k in design:
        for j in range(k):
            se = rng.uniform(*se_range)
            extra = shift[1] if shift and (treat, comp) == shift[0] else 0.0
            y = truth[treat] - truth.get(comp, 0.0) + extra + rng.normal(0, tau) + rng.normal(0, se)
            rows.append({"study_id": f"{treat}-{comp}-{j}", "citation": "synthetic", "source_level": "synthetic",
                         "design": "effect", "technique": treat, "comparator": comp, "outcome": "synthetic",
                         "yi": y, "sei": se, "measure": "SMD", "synthetic": True})
    return compute_effects(load_studies(pd.DataFrame(rows)))


def gls(table: pd.DataFrame, techniques: list[str], tau: float) -> np.ndarray:
    """Closed-form random-effects NMA estimate for a given tau: (X'WX)^-1 X'W y."""
    x = np.zeros((len(table), len(techniques)))
    for i, (t, c) in enumerate(zip(table["treat_node"], table["comp_node"])):
        if t in techniques:
            x[i, techniques.index(t)] += 1
        if c in techniques:
            x[i, techniques.index(c)] -= 1
    w = np.diag(1 / (table["sei"].to_numpy() ** 2 + tau**2))
    return np.linalg.solve(x.T @ w @ x, x.T @ w @ table["yi"].to_numpy())


@pytest.mark.slow  # MCMC (a statistical check)
def test_network_recovers_technique_effects_from_controlled_and_head_to_head_rows():
    truth = {"A": 0.5, "B": 0.9, "C": 0.2, "D": 1.2}
    # D is compared only head to head with A: its effect versus control comes through A.
    design = [("A", "control", 4), ("B", "control", 3), ("C", "usual care", 3), ("A", "B", 2),
              ("B", "C", 2), ("D", "A", 3)]
    effects = simulate_network(3, design, truth, tau=0.1)
    assert "network" in BUILDERS
    idata = fit(network(effects), **FIT)
    post = idata.posterior["technique_effect"]
    assert list(post["technique"].to_numpy()) == ["A", "B", "C", "D"]
    mean, sd = post.mean(("chain", "draw")), post.std(("chain", "draw"))
    for t, value in truth.items():
        assert abs(float(mean.sel(technique=t)) - value) < 3 * float(sd.sel(technique=t)), t
    # Same answer as the closed form at the fitted tau (the priors are weak next to these data).
    tau_hat = float(idata.posterior["tau"].median())
    expected = gls(network_table(effects), list(truth), tau_hat)
    np.testing.assert_allclose(mean.to_numpy(), expected, atol=0.05)
    summary = network_summary(idata)
    assert list(summary.index) == ["A vs control", "B vs control", "C vs control", "D vs control",
                                   "tau (between studies)"]


def bucher(table: pd.DataFrame, a: str, b: str) -> tuple[float, float]:
    """Closed-form loop inconsistency (Bucher et al. 1997) on a control-a-b triangle, common effect:
    direct a-b minus (a-control - b-control), inverse-variance means; returns (difference, SE)."""
    def pooled(t, c):
        rows = table[(table["treat_node"] == t) & (table["comp_node"] == c)]
        w = 1 / rows["sei"] ** 2
        return (w * rows["yi"]).sum() / w.sum(), 1 / w.sum()

    (direct, v1), (ac, v2), (bc, v3) = pooled(a, b), pooled(a, "control"), pooled(b, "control")
    return direct - (ac - bc), np.sqrt(v1 + v2 + v3)


VAGUE = {"mu": "normal(0, 1000)", "tau": "halfnormal(0.00001)"}  # the closed form's model: Bucher is exact


@pytest.mark.slow  # MCMC (a statistical check)
def test_node_split_flags_an_injected_inconsistency_and_not_a_consistent_loop(monkeypatch):
    """The PyMC path against the Bucher closed form: with a vague prior on the effects and tau held at
    ~0, the inconsistency's posterior is N(Bucher difference, its SE^2), so the sampled median,
    interval and p-value 2 min(P(d > 0), P(d < 0)) must match the closed form within their Monte
    Carlo error (from the draws' ESS)."""
    import arviz_stats
    from scipy import stats

    from evsynth.engines import fit as engine_fit

    truth = {"A": 0.4, "B": 0.8}
    design = [("A", "control", 3), ("B", "control", 3), ("A", "B", 3)]
    # Same draws twice; in the second the A-B studies are shifted by 0.8 (direct != indirect).
    consistent = simulate_network(1, design, truth, tau=0.05)
    broken = simulate_network(1, design, truth, tau=0.05, shift=(("A", "B"), 0.8))
    assert splittable_comparisons(network_table(broken)) == [("A", "B"), ("A", "control"), ("B", "control")]
    sampled = []
    original = engine_fit.fit

    def keep(model, **options):  # node_split's fit, its draws kept for the Monte Carlo errors
        idata = original(model, **options)
        sampled.append(idata.posterior["inconsistency"].to_numpy())
        return idata

    monkeypatch.setattr(engine_fit, "fit", keep)
    n = FIT["draws"] * FIT["chains"]
    results = {}
    for name, effects in (("consistent", consistent), ("broken", broken)):
        row = node_split(effects, VAGUE, split=[("A", "B")], engine="pymc", **FIT).iloc[0]
        draws = sampled.pop()
        assert row["direct_studies"] == 3 and row["engine"] == "pymc" and draws.shape == (2, 400)
        diff, se = bucher(network_table(effects), "A", "B")
        p_closed = 2 * stats.norm.sf(abs(diff) / se)
        ess = float(arviz_stats.ess(draws, method="bulk"))
        assert ess > 200, ess
        assert abs(row["inconsistency"] - diff) < 4 * 1.2533 * se / np.sqrt(ess), name  # the median's MCSE
        for col, z in (("q2.5", -1.959964), ("q97.5", 1.959964)):  # a 2.5% quantile's MCSE: ~2.7 sd / sqrt(ess)
            assert abs(row[col] - (diff + z * se)) < 4 * 2.7 * se / np.sqrt(ess), (name, col)
        # p against the closed form: within 4 Monte Carlo SEs, and at most 1 / n apart when it is ~0
        q = min(p_closed / 2, 0.5)
        tolerance = max(4 * 2 * np.sqrt(q * (1 - q) / ess), 1 / n)
        assert abs(row["p_value"] - p_closed) < tolerance, (name, row["p_value"], p_closed)
        results[name] = (row, p_closed)
    row, p_closed = results["broken"]
    assert p_closed < 1e-6 and row["p_value"] == 0.0 and row["flagged"]  # 0.8 against an SE of ~0.1
    assert row["q2.5"] > 0.3  # direct exceeds indirect by about the injected 0.8
    row, p_closed = results["consistent"]
    assert p_closed > 0.05 and not row["flagged"]
    assert row["indirect"] == pytest.approx(truth["A"] - truth["B"], abs=0.3)


def test_star_network_has_nothing_to_split_and_says_so():
    effects = simulate_network(1, [("A", "control", 2), ("B", "usual care", 2)], {"A": 0.3, "B": 0.5}, tau=0.1)
    table = network_table(effects)
    assert set(table["comp_node"]) == {"control"}  # control labels are one reference node
    assert splittable_comparisons(table) == []
    result = node_split(effects)  # no fit: no loop
    assert result.empty and "no closed loop" in result.attrs["note"]
    with pytest.raises(ValueError, match="cannot be split"):
        network(effects, split=("A", "control"))
    # A part of the network with no path to the reference is refused by name.
    cut = simulate_network(1, [("A", "control", 2), ("B", "C", 2)], {"A": 0.3, "B": 0.5, "C": 0.1}, tau=0.1)
    with pytest.raises(ValueError, match=r"\['B', 'C'\] are not connected to the reference 'control'"):
        network(cut)


def test_bundled_head_to_head_rows_enter_the_network():
    effects = compute_effects(load_studies(ROOT / "studies" / "massage.csv"))
    table = network_table(effects).set_index("study_id")
    assert table.loc["emilda2020", ["treat_node", "comp_node"]].tolist() == ["oxytocin", "marmet"]
    # A pre/post baseline is not a control arm: left out unless the user asks.
    pre_post = {"pratama2023", "viswanath2016", "fara2022", "dewi2024_weight", "dewi2024_urination",
                "saputri2015_marmet"}
    assert not pre_post & set(table.index) and set(table.attrs["prepost_left_out"]) == pre_post
    asked = network_table(effects, prepost_as_control=True).set_index("study_id")
    assert asked.loc["pratama2023", "comp_node"] == "control" and asked.attrs["prepost_left_out"] == []
    prolactin = effects[effects["outcome"] == "prolactin"]
    prolactin.attrs = dict(effects.attrs)
    # oxytocin vs Marmet is not linked to any control: refused, not silently prior-driven ...
    with pytest.raises(ValueError, match=r"reference 'control' is not a node"):
        network(prolactin)
    # ... but identified with one of the two techniques as the reference.
    model = network(prolactin, reference="marmet")
    assert list(model.coords["technique"]) == ["oxytocin"]


def test_prepost_rows_enter_the_network_only_when_asked():
    effects = simulate_network(1, [("A", "control", 2), ("B", "baseline", 2)], {"A": 0.3, "B": 0.5}, tau=0.1)
    default = network(effects)
    assert list(default.coords["technique"]) == ["A"] and list(default.coords["study"]) == ["A-control-0", "A-control-1"]
    assert default.evsynth_settings["prepost_as_control"] == "False"
    asked = network(effects, prepost_as_control=True)
    assert list(asked.coords["technique"]) == ["A", "B"] and len(asked.coords["study"]) == 4
    only_prepost = simulate_network(1, [("B", "baseline", 2)], {"B": 0.5}, tau=0.1)
    with pytest.raises(ValueError, match="a baseline is not a control arm"):
        network(only_prepost)
    from evsynth.model.description import network as describe_network

    assert describe_network(effects).fixed[0].labels == ("A",)
    assert describe_network(effects, prepost_as_control=True).fixed[0].labels == ("A", "B")


def test_network_plot_edges_scale_with_studies():
    import matplotlib.figure

    effects = simulate_network(2, [("A", "control", 3), ("B", "control", 1), ("A", "B", 2)], {"A": 0.3, "B": 0.5},
                               tau=0.1)
    fig = network_plot(effects)
    assert isinstance(fig, matplotlib.figure.Figure)
    widths = {line.get_gid(): line.get_linewidth() for line in fig.axes[0].lines if line.get_gid()}
    assert widths == {"edge:A|B": 2 * EDGE_WIDTH, "edge:A|control": 3 * EDGE_WIDTH, "edge:B|control": EDGE_WIDTH}


def test_cli_network_names_outcomes_it_cannot_analyse(capsys, tmp_path, write_csv):
    from evsynth.cli.main import main

    code = main(["network", str(ROOT / "studies" / "massage.csv"), "--outcome", "prolactin", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 4  # nothing analysed
    assert "outcome 'prolactin' not analysed: 1 study enters the network; need 2" in out  # emilda2020 alone
    rows = [{"study_id": f"bc{j}", "citation": "synthetic", "source_level": "synthetic", "design": "effect",
             "technique": "B", "comparator": "C", "outcome": "x", "yi": 0.2, "sei": 0.1, "measure": "SMD",
             "synthetic": "true"} for j in range(2)]
    assert main(["network", str(write_csv(rows)), "--out", str(tmp_path)]) == 4
    out = capsys.readouterr().out
    assert "outcome 'x' not analysed: reference 'control' is not a node of the network (nodes: ['B', 'C'])" in out
    assert "try --reference with a technique label" in out


def test_node_split_direct_effect_enters_reversed_studies_with_a_minus_sign():
    # Studies of the split comparison entered both ways round: A vs B carries +direct, B vs A
    # -direct (both on the A - B scale); other studies keep d[treat] - d[comp]. Checked on the
    # model graph at fixed parameter values (z = 0, so theta is the study's mean), no sampling.
    design = [("A", "control", 2), ("B", "control", 2), ("A", "B", 1), ("B", "A", 2)]
    effects = simulate_network(2, design, {"A": 0.4, "B": 0.8}, tau=0.05)
    table = network_table(effects)
    model = network(effects, split=("A", "B"))
    theta = model.compile_fn(model.replace_rvs_by_values([model["theta"]])[0], inputs=model.value_vars,
                             point_fn=True)
    d = {"control": 0.0, "A": 0.3, "B": 1.1}
    direct = -0.5  # deliberately far from d[A] - d[B] = -0.8, so the two routes differ
    point = {"technique_effect": np.array([d["A"], d["B"]]), "tau_log__": np.log(0.2), "direct": direct,
             "z": np.zeros(len(table))}
    expected = [direct if (t, c) == ("A", "B") else -direct if (t, c) == ("B", "A") else d[t] - d[c]
                for t, c in zip(table["treat_node"], table["comp_node"])]
    assert list(zip(table["treat_node"], table["comp_node"])).count(("B", "A")) == 2
    np.testing.assert_allclose(theta(point), expected, rtol=1e-12)


# ---- the exact engine (quadrature over tau; no MCMC) -------------------------------------------

RING = [("A", "control", 2), ("B", "control", 2), ("C", "control", 2), ("D", "control", 1), ("A", "B", 1),
        ("B", "C", 2), ("C", "D", 1), ("D", "A", 2)]
RING_TRUTH = {"A": 0.2, "B": 0.5, "C": 0.8, "D": 0.4}


def test_exact_node_split_flags_an_injected_inconsistency_and_matches_bucher():
    from scipy import stats

    truth = {"A": 0.4, "B": 0.8}
    design = [("A", "control", 3), ("B", "control", 3), ("A", "B", 3)]
    consistent = simulate_network(1, design, truth, tau=0.05)
    broken = simulate_network(1, design, truth, tau=0.05, shift=(("A", "B"), 0.8))
    results = {name: node_split(effects, split=[("A", "B")], engine="exact").iloc[0]
               for name, effects in (("consistent", consistent), ("broken", broken))}
    assert results["broken"]["flagged"] and results["broken"]["p_value"] < 0.05 and results["broken"]["q2.5"] > 0.3
    assert not results["consistent"]["flagged"] and results["consistent"]["p_value"] > 0.05
    for name, effects in (("consistent", consistent), ("broken", broken)):
        diff, se = bucher(network_table(effects), "A", "B")
        assert results[name]["inconsistency"] == pytest.approx(diff, abs=0.1), name
        assert results[name]["engine"] == "exact" and results[name]["diagnostics_ok"]
        # with the closed form's model (vague effect prior, tau ~0) the figures are Bucher's exactly
        row = node_split(effects, VAGUE, split=[("A", "B")], engine="exact").iloc[0]
        assert row["inconsistency"] == pytest.approx(diff, abs=1e-5), name
        assert row["q2.5"] == pytest.approx(diff - 1.959964 * se, abs=1e-5), name
        assert row["q97.5"] == pytest.approx(diff + 1.959964 * se, abs=1e-5), name
        assert row["p_value"] == pytest.approx(2 * stats.norm.sf(abs(diff) / se), abs=1e-6), name
        assert bool(row["flagged"]) is (name == "broken")


def test_exact_network_fit_equals_the_gls_estimate_and_splits_every_loop_edge():
    from evsynth.methods.network import network_fit

    effects = simulate_network(5, RING, RING_TRUTH, tau=0.1)
    tree = network_fit(effects, engine="exact", draws=500, chains=2)
    assert tree.attrs["engine"] == "exact" and tree.posterior["technique_effect"].shape == (2, 500, 4)
    summary = network_summary(tree)
    assert list(summary.index) == ["A vs control", "B vs control", "C vs control", "D vs control",
                                   "tau (between studies)"]
    # the exact posterior mean of d, at tau fixed where the data put it, is the GLS estimate
    tau = float(summary.loc["tau (between studies)", "q50"])
    expected = gls(network_table(effects), list(RING_TRUTH), tau)
    np.testing.assert_allclose(summary["mean"].to_numpy()[:4], expected, atol=0.03)
    # the exact summaries are those of its own draws (independent draws: 1000 of them)
    draws = tree.posterior["technique_effect"].mean(("chain", "draw")).to_numpy()
    sd = tree.posterior["technique_effect"].std(("chain", "draw")).to_numpy()
    assert np.all(np.abs(draws - summary["mean"].to_numpy()[:4]) < 4 * sd / np.sqrt(1000))
    splits = node_split(effects, engine="exact")
    assert len(splits) == len(splittable_comparisons(network_table(effects))) == 8
    assert set(splits["engine"]) == {"exact"} and splits["diagnostics_ok"].all()


def test_network_subset_equals_describing_the_reduced_table():
    """GaussianModel.subset (what sweeps use) drops a technique left without studies, exactly as
    describing the reduced table does."""
    from evsynth.model import description
    from evsynth.engines.exact import exact_summary

    effects = simulate_network(5, RING, RING_TRUTH, tau=0.1)
    full = description.network(effects)
    keep = ~np.isin(full.study_id, [s for s in full.study_id if "D" in s.split("-")[:2]])
    reduced = effects[~effects["study_id"].isin(np.array(full.study_id)[~keep])].reset_index(drop=True)
    reduced.attrs = dict(effects.attrs)
    direct = description.network(reduced)
    cut = full.subset(keep)
    assert cut.fixed[0].labels == direct.fixed[0].labels == ("A", "B", "C")
    pd.testing.assert_frame_equal(exact_summary(cut), exact_summary(direct), rtol=1e-10)
