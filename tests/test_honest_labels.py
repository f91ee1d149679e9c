"""Labels that tell the truth: one outcome per network (the API refuses a mixed table as the CLI
splits it), every comparison in one order (technique vs reference) in tables, node splits and the
plot, and a Savage-Dickey Bayes factor that refuses a null outside the sampled range and prefers
the quadrature Bayes factor where the model allows."""

import matplotlib

matplotlib.use("Agg")

import warnings  # noqa: E402

import arviz as az  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from evsynth.methods.analysis import group_by_outcome  # noqa: E402
from evsynth.methods.compare import bayes_factors, savage_dickey  # noqa: E402
from evsynth.effects import compute_effects  # noqa: E402
from evsynth.methods.network import comparisons, network, network_plot, network_table, node_split  # noqa: E402
from evsynth.data.studies import load_studies  # noqa: E402


def _rows(outcome="milk volume"):
    spec = [("oxytocin", "control", 0.5), ("marmet", "control", 0.3), ("oxytocin", "marmet", 0.2),
            ("oxytocin", "control", 0.6), ("marmet", "oxytocin", -0.1)]
    return [{"study_id": f"{outcome[:4]}{k}", "citation": "synthetic", "source_level": "synthetic",
             "design": "effect", "technique": t, "comparator": c, "outcome": outcome, "yi": y, "sei": 0.2,
             "measure": "SMD", "synthetic": True} for k, (t, c, y) in enumerate(spec)]


def _effects(rows):
    return compute_effects(load_studies(pd.DataFrame(rows)))


def test_network_refuses_mixed_outcomes():
    effects = _effects(_rows("milk volume") + _rows("prolactin"))
    with pytest.raises(ValueError, match=r"mixes 2 outcomes \(milk volume, prolactin\)"):
        network(effects)
    with pytest.raises(ValueError, match="mixes 2 outcomes"):
        node_split(effects)
    one = effects[effects.outcome == "milk volume"]
    one.attrs = dict(effects.attrs)
    network(one)  # one outcome: fine
    (pooled,) = group_by_outcome(effects, pool_outcomes=True).values()
    network(pooled)  # pooled on purpose: accepted


def test_comparisons_in_one_order_reference_last():
    table = network_table(_effects(_rows()))
    edges = comparisons(table)
    assert list(zip(edges["a"], edges["b"])) == [("marmet", "control"), ("marmet", "oxytocin"),
                                                  ("oxytocin", "control")]
    split = node_split(_effects(_rows()), engine="exact")
    assert set(split["comparison"]) <= {"marmet vs control", "marmet vs oxytocin", "oxytocin vs control"}
    # direct evidence on "oxytocin vs control" has the sign of oxytocin's effect (studies 0.5, 0.6)
    row = split.set_index("comparison").loc["oxytocin vs control"]
    assert row["direct"] > 0
    fig = network_plot(_effects(_rows()))
    gids = sorted(a.get_gid() for a in fig.axes[0].lines if str(a.get_gid()).startswith("edge:"))
    assert gids == ["edge:marmet|control", "edge:marmet|oxytocin", "edge:oxytocin|control"]


def _draws_idata(mu_draws, model="random_effects"):
    idata = az.from_dict({"posterior": {"mu": np.asarray(mu_draws).reshape(2, -1)}})
    idata.attrs.update(model=model, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)")
    return idata


def test_savage_dickey_refuses_a_null_outside_the_draws():
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match="outside the sampled range"):
        savage_dickey(_draws_idata(rng.normal(10, 1, 4000)), "mu")


def test_savage_dickey_warns_in_the_far_tail():
    rng = np.random.default_rng(2)
    with pytest.warns(UserWarning, match="draws of mu lie beyond 0"):
        savage_dickey(_draws_idata(rng.normal(2.7, 1, 4000)), "mu")  # ~0.35% of draws below 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = savage_dickey(_draws_idata(rng.normal(0.5, 1, 4000)), "mu")
    # posterior N(0.5, 1), prior N(0, 1): BF10 = phi(0) / phi(-0.5) = exp(0.125), KDE within 10%
    assert result["method"].startswith("Savage-Dickey") and result["BF10"] == pytest.approx(np.exp(0.125), rel=0.1)


def test_savage_dickey_prefers_quadrature_for_random_effects():
    rows = [{"study_id": f"s{k}", "citation": "synthetic", "source_level": "synthetic", "design": "effect",
             "technique": "t", "outcome": "o", "yi": y, "sei": 0.1, "measure": "SMD", "synthetic": True}
            for k, y in enumerate((1.1, 0.9, 1.3, 1.0, 1.2))]
    effects = _effects(rows)
    idata = _draws_idata(np.random.default_rng(3).normal(1.1, 0.05, 4000))  # mu far from 0: no KDE possible
    result = savage_dickey(idata, "mu", effects=effects)
    exact = bayes_factors(effects, {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"}).loc["mu != 0"]
    assert result["method"] == "marginal likelihood (quadrature)" and result["log_BF10"] == exact["log_BF10"]
    assert 5 < result["log_BF10"] < 50  # decisive, and finite
    with pytest.raises(ValueError, match="outside the sampled range"):  # by_technique: no quadrature BF here
        savage_dickey(_draws_idata(np.random.default_rng(3).normal(1.1, 0.05, 4000), model="by_technique"),
                      "mu", effects=effects)
