"""Bayesian meta-regression (metafor's rma(yi, vi, mods = ...), Bayesian): the model of
evsynth.model.description.meta_regression fitted by an engine, with the frequentist REML fit beside it.

    y_i ~ N(theta_i, se_i^2),  theta_i = mu + x_i beta + tau e_i

Reported: each coefficient (intercept `intrcpt` = mu, one slope per moderator column, named as
metafor names them) with its 95% credible interval and P(beta > 0); the residual tau; the residual
I² and H² (evsynth.methods.heterogeneity, s² from the regression's design matrix); and an R² analogue, the
proportion of tau² explained: 100 (E[tau²_0] - E[tau²]) / E[tau²_0], truncated at 0, with E[.] the
posterior means of tau² without (tau²_0) and with the moderators under the same priors (metafor's
pseudo-R² with posterior means in place of the REML estimates). The REML mixed-effects fit
(Knapp-Hartung by default) is computed on the same rows.

Engine "exact" (quadrature over tau, independent draws, no MCMC) is the default; "pymc" samples
the same description with evsynth.engines.fit (then `diagnostics` holds the convergence checks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..model import description
from .frequentist import MetaRegression, mixed_effects
from .heterogeneity import heterogeneity_draws
from ..model.moderators import INTERCEPT, ModeratorError, design_matrix

ENGINES = ("exact", "pymc")
COLUMNS = ["mean", "sd", "q2.5", "q50", "q97.5", "P(>0)"]


@dataclass
class RegressionResult:
    mods: str
    idata: object  # the fit's DataTree (posterior mu, beta[moderator], tau; constant_data X)
    coefficients: pd.DataFrame  # index: term; COLUMNS
    heterogeneity: pd.DataFrame  # tau, tau without moderators, residual I², H²: COLUMNS but P(>0)
    R2: float  # percent of tau² explained (posterior means), nan when tau²_0 = 0
    frequentist: MetaRegression
    table: pd.DataFrame  # the used rows, with the moderator columns
    diagnostics: object = None  # engine "pymc": evsynth.diagnose of the regression fit

    def __str__(self) -> str:
        with pd.option_context("display.width", 160, "display.float_format", "{:.4f}".format):
            freq = self.frequentist
            lines = [f"Bayesian meta-regression, mods {self.mods} (k = {freq.k}, engine {self.idata.attrs.get('engine')})",
                     self.coefficients.to_string(), "", self.heterogeneity.to_string(),
                     f"R² (tau² explained, posterior means): {self.R2:.1f}%", "",
                     f"REML{' + Knapp-Hartung' if freq.knapp_hartung else ''}: tau² {freq.tau2:.4f}, "
                     f"I² {freq.I2:.2f}%, R² {freq.R2:.2f}%, QM {freq.QM:.4f} (p {freq.QM_p:.4g})",
                     freq.coefficients.to_string()]
        if self.diagnostics is not None:
            lines.append(str(self.diagnostics))
        return "\n".join(lines)


def _summarize(draws: np.ndarray, signed: bool = True) -> dict:
    q = np.quantile(draws, (0.025, 0.5, 0.975))
    return {"mean": float(draws.mean()), "sd": float(draws.std(ddof=1)), "q2.5": q[0], "q50": q[1], "q97.5": q[2],
            "P(>0)": float((draws > 0).mean()) if signed else np.nan}


def _exact_rows(tree) -> pd.DataFrame | None:
    """The exact engine's own summaries (quadrature, not draws), indexed by (variable, label)."""
    try:
        node = tree["exact_summary"]
    except KeyError:
        return None
    ds = node.to_dataset()
    frame = pd.DataFrame({"mean": ds["mean"], "sd": ds["sd"], "q2.5": ds["q2.5"], "q50": ds["q50"],
                          "q97.5": ds["q97.5"], "P(>0)": ds["p_gt_0"]})
    frame.index = pd.MultiIndex.from_arrays([ds["variable"].to_numpy(), ds["label"].to_numpy()])
    return frame


def _flat(tree, name: str) -> np.ndarray:
    da = tree["posterior"][name]
    other = [d for d in da.dims if d not in ("chain", "draw")]
    return da.transpose("chain", "draw", *other).to_numpy().reshape(-1, *[da.sizes[d] for d in other])


def coefficient_table(tree) -> pd.DataFrame:
    """Intercept and slopes (index: metafor's term names) with mean, sd, 95% CrI and P(> 0)."""
    exact = _exact_rows(tree)
    post = tree["posterior"]
    terms = [str(t) for t in post["beta"]["moderator"].to_numpy()]
    if exact is not None:
        rows = [exact.loc[("mu", "mu")]] + [exact.loc[("beta", t)] for t in terms]
        table = pd.DataFrame(rows)[COLUMNS]
    else:
        beta = _flat(tree, "beta")
        table = pd.DataFrame([_summarize(_flat(tree, "mu"))] + [_summarize(beta[:, j]) for j in range(len(terms))])
    table.index = pd.Index([INTERCEPT, *terms], name="term")
    return table.astype(float)


def _tau_moments(tree) -> tuple[dict, float]:
    """(summary row of tau, posterior mean of tau²)."""
    exact = _exact_rows(tree)
    if exact is not None:
        row = exact.loc[("tau", "tau")]
        return {c: float(row[c]) for c in COLUMNS[:-1]} | {"P(>0)": np.nan}, float(row["sd"] ** 2 + row["mean"] ** 2)
    tau = _flat(tree, "tau")
    return _summarize(tau, signed=False), float(np.mean(tau**2))


def _fit(model, engine: str, draws: int, chains: int, seed: int, sampling: dict):
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} for meta-regression unknown; choose one of {ENGINES}")
    if engine == "pymc":
        from ..engines.pymc import build
        from ..engines.fit import fit

        return fit(build(model), draws=draws, chains=chains, seed=seed, **sampling)
    from ..engines.exact import fit_exact

    return fit_exact(model, draws=draws, chains=chains, seed=seed)


def _with_design(tree, X: np.ndarray, terms: list[str]):
    """Store the moderator columns (without intercept) as constant_data X[study, moderator], so the
    residual I² of a saved fit can be recomputed from the tree alone."""
    constant = tree["constant_data"].to_dataset()
    tree["constant_data"] = constant.assign(X=(("study", "moderator"), X[:, 1:])).assign_coords(moderator=terms)
    return tree


def fit_meta_regression(effects: pd.DataFrame, mods, priors: dict | None = None, *, engine: str = "exact",
                        draws: int = 1000, chains: int = 4, seed: int = 2026,
                        knapp_hartung: bool = True, **sampling) -> RegressionResult:
    """Bayesian meta-regression of the used rows of `effects` on `mods` (a formula "~ ablat + C(alloc)"
    or a list of columns; the columns must be in the effect table: evsynth.model.moderators.with_study_columns
    adds the study table's), and the REML fit (Knapp-Hartung unless knapp_hartung=False) beside it.

    priors: mu, tau, beta (every slope; default normal(0, 1) per unit of the moderator: rescale
    a moderator measured in large units, or give beta explicitly).
    sampling: engine "pymc" only, passed to evsynth.engines.fit (tune, sampler, target_accept...).

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> effects = es.compute_effects(studies, measure="RR")
        >>> result = fit_meta_regression(es.with_study_columns(effects, studies), "~ ablat", draws=500, chains=2)
        >>> print(str(result).splitlines()[0])
        Bayesian meta-regression, mods ~ ablat (k = 13, engine exact)
    """
    model = description.meta_regression(effects, mods, priors)
    table = description.prepare(effects)
    X, names = design_matrix(table, mods)
    if names[0] != INTERCEPT:
        raise ModeratorError(f"mods {mods!r}: the Bayesian meta-regression needs the intercept (its mu); "
                         "drop '0 +' / '- 1' from the formula")
    terms = list(model.fixed[1].labels)
    if sampling and engine != "pymc":
        raise ValueError(f"options {sorted(sampling)} are for engine 'pymc' (the exact engine does not sample)")
    tree = _with_design(_fit(model, engine, draws, chains, seed, sampling), X, terms)
    tree.attrs["mods"] = str(mods)
    chosen = {k.removeprefix("prior_"): v for k, v in model.settings.items() if k in ("prior_mu", "prior_tau")}
    null = _fit(description.random_effects(effects, chosen), engine, draws, chains, seed, sampling)
    tau_row, tau2 = _tau_moments(tree)
    null_row, tau2_null = _tau_moments(null)
    rows = {"tau (residual)": tau_row, "tau (no moderators)": null_row}
    for label, values in heterogeneity_draws(tree).items():
        rows[label] = _summarize(values, signed=False)
    r2 = np.nan if tau2_null <= 0 else max(0.0, 100 * (tau2_null - tau2) / tau2_null)
    freq = mixed_effects(table["yi"], table["vi"], X, names, knapp_hartung=knapp_hartung)
    checks = None
    if engine == "pymc":
        from .diagnostics import diagnose

        checks = diagnose(tree)
    return RegressionResult(mods=str(mods), idata=tree, coefficients=coefficient_table(tree),
                            heterogeneity=pd.DataFrame(rows).T[COLUMNS], R2=float(r2), frequentist=freq,
                            table=table, diagnostics=checks)


def beta_draws(result: RegressionResult) -> np.ndarray:
    """n_draws x (1 + moderators) posterior draws of (intercept, slopes), e.g. for plots.regplot."""
    return np.column_stack([_flat(result.idata, "mu"), _flat(result.idata, "beta")])


def predict_at(result: RegressionResult, X_new, seed: int = 0) -> pd.DataFrame:
    """Bayesian predictions at chosen moderator values: rows of X_new (intercept column first, the
    coefficient table's term order) give the posterior of the fitted effect x'beta (mean, 95% CrI)
    and the 95% prediction interval of a new study there (x'beta + N(0, tau²)), from the fit's
    posterior draws (Monte Carlo: mcse of the mean given; the prediction's noise drawn with `seed`).

    Example: predict_at(fit_meta_regression(effects, "~ ablat"), [[1, 10], [1, 50]])
    """
    X_new = np.atleast_2d(np.asarray(X_new, dtype=float))
    beta = beta_draws(result)
    if X_new.shape[1] != beta.shape[1]:
        raise ValueError(f"X_new has {X_new.shape[1]} columns; the model has {beta.shape[1]} "
                         f"({', '.join(result.coefficients.index)})")
    lines = beta @ X_new.T  # draws x rows
    tau = _flat(result.idata, "tau").reshape(-1)
    new = lines + np.random.default_rng(seed).standard_normal(lines.shape) * tau[:, None]
    q = np.quantile(lines, (0.025, 0.5, 0.975), axis=0)
    pi = np.quantile(new, (0.025, 0.975), axis=0)
    return pd.DataFrame({"mean": lines.mean(axis=0), "mcse_mean": lines.std(axis=0, ddof=1) / np.sqrt(len(lines)),
                         "q2.5": q[0], "q50": q[1], "q97.5": q[2], "pi_low": pi[0], "pi_high": pi[1]})
