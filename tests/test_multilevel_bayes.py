"""Nested random effects in the one model description (evsynth.model.description.multilevel), on
both engines: the exact engine integrates over the level SDs; the PyMC graph (non-centered, built
from the same description) agrees with it within Monte-Carlo error (engines.exact.agreement at its
calibrated threshold), with and without a censored row. Synthetic three-level data (seeded):
8 clusters of 3 rows, true mu 0.3, cluster SD 0.3, row SD 0.15."""

import numpy as np
import pandas as pd
import pytest

from evsynth.engines import exact as engine
from evsynth.model import description

SAMPLE = dict(draws=1500, tune=1000, chains=2, random_seed=5, progressbar=False, target_accept=0.99)
PRIORS = {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)", "tau_cluster": "halfnormal(0.5)"}


def three_level(censored: int = 0, clusters: int = 8, per: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(23 + censored)
    n = clusters * per
    cluster = np.repeat(np.arange(clusters), per)
    sei = rng.uniform(0.1, 0.25, n)
    yi = 0.3 + rng.normal(0, 0.3, clusters)[cluster] + rng.normal(0, 0.15, n) + rng.normal(0, sei)
    flags = np.zeros(n, bool)
    flags[:censored] = True
    yi[:censored] = 0.7  # known only to lie above 0.7
    out = pd.DataFrame({"study_id": [f"c{c}-r{i}" for i, c in enumerate(cluster)], "cluster": cluster,
                        "row": np.arange(n), "technique": "t", "comparator": "control", "outcome": "synthetic",
                        "unit": "", "design": "two_group", "measure": "SMD", "yi": yi, "sei": sei, "vi": sei**2,
                        "used": True, "head_to_head": False, "why_not": "", "censored": flags, "synthetic": True})
    out.attrs["measure"] = "SMD"
    return out


def test_description_levels_and_priors():
    model = description.multilevel(three_level(), PRIORS | {"tau_cluster": "halfnormal(0.3)"},
                                   random="~ 1 | cluster/row")
    assert [t for t, _ in model.taus] == ["tau", "tau_cluster"]
    part = model.parts[0]
    assert part.design.shape == (24, 8) and np.all(part.design.sum(axis=1) == 1)
    assert part.prior == "halfnormal(0.3)" and model.study_prior == "halfnormal(0.5)"
    assert model.settings["row_level"] == "cluster/row"
    labels = engine.summary_table(model).index.tolist()
    assert "tau (between row within cluster)" in labels and "tau (between cluster)" in labels


def test_row_level_only_equals_random_effects():
    """One level whose groups are single rows is the two-level model: the same posterior."""
    effects = three_level()
    ml = engine.summary_table(description.multilevel(effects, {"mu": PRIORS["mu"], "tau": PRIORS["tau"]},
                                                     random=["row"]))
    re = engine.summary_table(description.random_effects(effects, {"mu": PRIORS["mu"], "tau": PRIORS["tau"]}))
    np.testing.assert_allclose(ml.loc["pooled (mu)"].to_numpy(float), re.loc["pooled (mu)"].to_numpy(float),
                               rtol=1e-10)


def test_levels_without_row_level():
    """Only a cluster level: theta is the cluster's effect, no row-level SD."""
    model = description.multilevel(three_level(), {"tau_cluster": "halfnormal(0.5)"}, random=["cluster"])
    assert model.study_prior is None and [t for t, _ in model.taus] == ["tau_cluster"]
    assert engine.summary_table(model).loc["tau (between cluster)", "mean"] > 0


@pytest.mark.parametrize("random,message", [
    (["row", "cluster"], "must come last"),
    (["nowhere"], "'nowhere' is not in the effect table"),
    ("study/effect", "expected"),
    (["cluster", "cluster"], "twice"),
])
def test_bad_random_named(random, message):
    with pytest.raises(ValueError, match=message):
        description.multilevel(three_level(), None, random=random)


def test_single_group_and_unknown_level_prior_refused():
    effects = three_level().assign(one=1)
    with pytest.raises(ValueError, match="single group"):
        description.multilevel(effects, {"tau_one": "halfnormal(0.5)"}, random=["one", "one/row"])
    with pytest.raises(ValueError, match="tau_district"):
        description.multilevel(effects, PRIORS | {"tau_district": "halfnormal(1)"}, random=["cluster", "cluster/row"])


def test_three_levels_above_rows_described():
    """Levels nest to any depth in the description (the exact engine integrates up to three SDs;
    deeper models go to PyMC)."""
    effects = three_level().assign(top=np.repeat(np.arange(4), 6), mid=np.repeat(np.arange(8), 3))
    model = description.multilevel(effects, None, random=["top", "top/mid", "top/mid/row"])
    assert [t for t, _ in model.taus] == ["tau", "tau_top", "tau_mid"]
    assert [len(p.labels) for p in model.parts] == [4, 8]


@pytest.mark.slow
@pytest.mark.parametrize("censored", [0, 1], ids=["exact rows", "one censored row"])
def test_pymc_agrees_with_exact_three_level(censored):
    import pymc as pm

    from evsynth.engines.pymc import build

    model = description.multilevel(three_level(censored), PRIORS, random="~ 1 | cluster/row")
    assert model.censored.sum() == censored
    with build(model):
        idata = pm.sample(**SAMPLE)
    check = engine.agreement(idata, model)
    assert set(check["quantity"]) >= {"pooled (mu)", "tau (between studies)", "tau (between cluster)"}
    assert check.attrs["ok"], check.sort_values("z", key=abs).tail(3).to_string()


# --------------------------------------------------------------------------- correlated sampling errors


def test_sampling_covariance_exact_against_quadrature():
    """Rows of a cluster share participants (rho = 0.6): the exact engine's posterior of mu and
    tau equals brute-force quadrature of p(y | tau) = N(y; 0, V + tau^2 I + 1 1') (mu ~ N(0, 1))
    times the tau prior, written here without evsynth."""
    from scipy import integrate, stats

    effects = three_level()
    model = description.multilevel(effects, {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"}, random=["row"],
                                   rho=0.6, cluster="cluster")
    assert model.settings["rho"] == "0.6" and model.sampling_cov is not None
    y, s = effects["yi"].to_numpy(), effects["sei"].to_numpy()
    same = effects["cluster"].to_numpy()[:, None] == effects["cluster"].to_numpy()[None, :]
    V = np.where(same, 0.6 * np.outer(s, s), 0.0) + np.diag(0.4 * s**2)
    np.testing.assert_allclose(model.sampling_cov, V, rtol=1e-14)

    def joint(tau):
        C = V + tau**2 * np.eye(y.size) + 1.0
        return np.exp(stats.multivariate_normal(np.zeros(y.size), C).logpdf(y) + stats.halfnorm.logpdf(tau, 0, 0.5))

    def mu_mean(tau):  # E[mu | y, tau]: normal-normal with prior N(0, 1)
        Ci = np.linalg.inv(V + tau**2 * np.eye(y.size))
        return (Ci @ y).sum() / (Ci.sum() + 1.0)

    options = dict(limit=200, epsabs=0, epsrel=1e-11)
    norm = integrate.quad(joint, 0, 5, **options)[0]
    tau_mean = integrate.quad(lambda t: t * joint(t), 0, 5, **options)[0] / norm
    mu = integrate.quad(lambda t: mu_mean(t) * joint(t), 0, 5, **options)[0] / norm
    table = engine.summary_table(model)
    assert table.loc["pooled (mu)", "mean"] == pytest.approx(mu, rel=1e-7)
    assert table.loc["tau (between row)", "mean"] == pytest.approx(tau_mean, rel=1e-6)
    independent = engine.summary_table(description.multilevel(effects, {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"},
                                                              random=["row"], rho=0))
    # rho matters: the same rows with independent errors give mu an SD 2.7% larger here
    assert independent.loc["pooled (mu)", "sd"] / table.loc["pooled (mu)", "sd"] > 1.02


def test_pointwise_loglik_with_sampling_covariance_is_the_conditional():
    """log p(y_i | y_-i, theta) = log N(y; theta, V) - log N(y_-i; theta_-i, V_-i,-i)."""
    from scipy import stats

    model = description.multilevel(three_level(), PRIORS, random="~ 1 | cluster/row", rho=0.5)
    theta = np.random.default_rng(1).normal(0.3, 0.2, (3, model.n))
    terms = engine.pointwise_loglik(model, theta)
    V = model.sampling_cov
    for g in range(3):
        full = stats.multivariate_normal(theta[g], V).logpdf(model.yi)
        for i in (0, 5, 23):
            keep = np.arange(model.n) != i
            rest = stats.multivariate_normal(theta[g][keep], V[np.ix_(keep, keep)]).logpdf(model.yi[keep])
            assert terms[g, i] == pytest.approx(full - rest, rel=1e-10)


def test_censored_row_sharing_participants_refused_and_alone_allowed():
    effects = three_level(censored=1)
    with pytest.raises(ValueError, match="study 'c0-r0': a censored row .* 'cluster' group"):
        description.multilevel(effects, PRIORS, random="~ 1 | cluster/row", rho=0.5)
    alone = effects.assign(cluster=np.r_[99, effects["cluster"].to_numpy()[1:]])  # the censored row's own cluster
    model = description.multilevel(alone, None, random="~ 1 | cluster/row", rho=0.5)
    assert engine.summary_table(model).loc["pooled (mu)", "sd"] > 0
    from evsynth.engines.pymc import build

    with pytest.raises(ValueError, match="exact engine"):
        build(model)


@pytest.mark.slow
def test_pymc_agrees_with_exact_with_sampling_covariance():
    import pymc as pm

    from evsynth.engines.pymc import build

    model = description.multilevel(three_level(), PRIORS, random="~ 1 | cluster/row", rho=0.6)
    with build(model):
        idata = pm.sample(**SAMPLE)
    check = engine.agreement(idata, model)
    assert check.attrs["ok"], check.sort_values("z", key=abs).tail(3).to_string()
