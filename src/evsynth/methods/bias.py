"""Small-study effects and publication bias: Egger's regression test, PET-PEESE and the numbers
behind a contour-enhanced funnel plot.

All three read an effect table (`yi`, `sei`; the used rows when it is an EffectTable) and return
plain dataclasses / DataFrames. They are frequentist diagnostics, the usual companions of a
Bayesian analysis; the Bayesian selection model lives in `evsynth.engines.selection`.

- `egger_test(..., model="lm")` is the classic Egger test as metafor's `regtest(model="lm")`:
  weighted least squares of yi on sei with weights 1/vi and a free (multiplicative) residual
  variance, t-test of the sei coefficient on k - 2 df. This is algebraically Egger's original
  regression of yi/sei on 1/sei (the sei coefficient here is Egger's intercept there).
- `egger_test(..., model="rma")` is metafor's default `regtest(res)`: a REML mixed-effects
  meta-regression on sei, z-test (or Knapp-Hartung t-test with test="knha") of the sei coefficient.
- `pet_peese` (Stanley & Doucouliagos 2014): PET = WLS yi ~ sei, PEESE = WLS yi ~ vi, both with
  weights 1/vi and multiplicative dispersion; the intercept is the effect of a study with SE 0.
- `funnel_data`: study points and significance contours (Peters et al. 2008) for plots.funnel.

Asymmetry is not proof of publication bias (heterogeneity, chance and poorer small studies cause
it too), and with fewer than ~10 studies these tests have little power.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..effects.distributions import norm_ppf, norm_sf, t_ppf, t_sf
from ..effects.table import study_arrays
from .frequentist import mixed_effects, weighted_least_squares

LEVEL = 0.95


# --------------------------------------------------------------------------- regression engines


@dataclass(frozen=True)
class _Fit:
    coef: np.ndarray
    cov: np.ndarray  # covariance of coef as used for inference
    df: float  # residual df for t-tests; inf for z-tests
    tau2: float


def _wls_dispersion(y: np.ndarray, X: np.ndarray, w: np.ndarray) -> _Fit:
    """Weighted least squares with an estimated residual scale (R's lm(y ~ 0 + X, weights=w))."""
    coef, bread = weighted_least_squares(y, X, w)
    resid = y - X @ coef
    df = len(y) - X.shape[1]
    sigma2 = float(w @ resid**2) / df
    return _Fit(coef, sigma2 * bread, float(df), np.nan)


def _mixed_effects(y: np.ndarray, X: np.ndarray, v: np.ndarray, test: str) -> _Fit:
    """Mixed-effects meta-regression (metafor rma.uni with mods, REML); test 'z' or 'knha'."""
    fit = mixed_effects(y, v, X, knapp_hartung=test == "knha")
    return _Fit(fit.coefficients["estimate"].to_numpy(), fit.cov, fit.df, fit.tau2)


def _coef_test(fit: _Fit, j: int, level: float = LEVEL) -> dict:
    est, se = float(fit.coef[j]), float(np.sqrt(fit.cov[j, j]))
    stat = est / se
    if np.isinf(fit.df):
        p, crit = 2 * norm_sf(abs(stat)), norm_ppf(0.5 + level / 2)
    else:
        p, crit = 2 * t_sf(abs(stat), fit.df), t_ppf(0.5 + level / 2, fit.df)
    return {"estimate": est, "se": se, "statistic": stat, "pval": float(p),
            "ci_low": est - crit * se, "ci_high": est + crit * se}


# --------------------------------------------------------------------------- Egger


@dataclass(frozen=True)
class EggerResult:
    """Regression test for funnel-plot asymmetry (metafor regtest, predictor = sei)."""

    model: str  # "lm" (classic Egger) or "rma" (mixed-effects meta-regression)
    test: str  # "t" or "z"
    k: int
    slope: float  # coefficient of sei: the asymmetry (Egger's intercept in his parameterisation)
    slope_se: float
    statistic: float
    df: float  # inf for a z-test
    pval: float  # two-sided
    limit_estimate: float  # intercept: the expected effect of a study with SE -> 0
    limit_se: float
    limit_ci_low: float
    limit_ci_high: float
    tau2: float  # residual heterogeneity (model "rma"); nan for "lm"

    def to_series(self) -> pd.Series:
        return pd.Series(asdict(self))

    def __str__(self) -> str:
        stat = "z" if self.test == "z" else f"t(df = {self.df:g})"
        return (f"Egger regression test ({self.model}): {stat} = {self.statistic:.4f}, p = {self.pval:.4f}; "
                f"limit estimate {self.limit_estimate:.4f} "
                f"({100 * LEVEL:g}% CI {self.limit_ci_low:.4f} to {self.limit_ci_high:.4f})")


def egger_test(effects: pd.DataFrame, model: str = "lm", test: str = "z", level: float = LEVEL) -> EggerResult:
    """Egger's regression test of yi on sei (metafor `regtest`).

    model="lm": classic Egger (weighted regression, weights 1/vi, multiplicative dispersion; t on
    k - 2 df) -- `test` is ignored. model="rma": REML mixed-effects meta-regression with sei as the
    moderator; test="z" (metafor's default) or "knha" (Knapp-Hartung t on k - 2 df).

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> egger = egger_test(es.compute_effects(studies, measure="RR"))
        >>> egger.k, round(egger.statistic, 3), round(egger.pval, 3)
        (13, -1.401, 0.189)
    """
    if model not in ("lm", "rma"):
        raise ValueError(f"model {model!r} unknown; choose 'lm' or 'rma'")
    if test not in ("z", "knha"):
        raise ValueError(f"test {test!r} unknown; choose 'z' or 'knha'")
    _, yi, sei = study_arrays(effects, min_k=3)
    X = np.column_stack([np.ones_like(sei), sei])
    if model == "lm":
        fit = _wls_dispersion(yi, X, 1 / sei**2)
    else:
        fit = _mixed_effects(yi, X, sei**2, test)
    slope, limit = _coef_test(fit, 1, level), _coef_test(fit, 0, level)
    return EggerResult(model=model, test="z" if np.isinf(fit.df) else "t", k=len(yi), slope=slope["estimate"],
                       slope_se=slope["se"], statistic=slope["statistic"], df=fit.df, pval=slope["pval"],
                       limit_estimate=limit["estimate"], limit_se=limit["se"], limit_ci_low=limit["ci_low"],
                       limit_ci_high=limit["ci_high"], tau2=fit.tau2)


# --------------------------------------------------------------------------- PET-PEESE


@dataclass(frozen=True)
class PetPeeseResult:
    """Both meta-regressions, the decision rule and the estimate it selects."""

    table: pd.DataFrame  # rows PET, PEESE: intercept, se, t, df, p (two-sided), p_one_sided, CI, slope
    direction: str  # "positive" or "negative": the expected sign of the effect
    alpha: float
    chosen: str  # "PET" or "PEESE"
    estimate: float
    ci_low: float
    ci_high: float
    rule: str

    def __str__(self) -> str:
        return (f"PET-PEESE: {self.chosen} estimate {self.estimate:.4f} "
                f"({100 * LEVEL:g}% CI {self.ci_low:.4f} to {self.ci_high:.4f}); {self.rule}")


def pet_peese(effects: pd.DataFrame, alpha: float = 0.05, direction: str | None = None,
              level: float = LEVEL) -> PetPeeseResult:
    """Conditional PET-PEESE estimator (Stanley & Doucouliagos 2014).

    PET regresses yi on sei, PEESE yi on vi (WLS, weights 1/vi, multiplicative dispersion, t on
    k - 2 df); each intercept estimates the effect of an infinitely precise study.

    Decision rule used here: PEESE when PET's intercept is significant in the expected direction
    by a one-sided t-test at `alpha` (0.05; the same as a two-sided test at 0.10 when the
    intercept has the expected sign), otherwise PET. `direction` is the expected sign of the
    effect ("positive"/"negative"); by default the sign of the inverse-variance pooled estimate.

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> result = pet_peese(es.compute_effects(studies, measure="RR"))
        >>> result.chosen, round(result.estimate, 3)
        ('PET', -0.191)
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha {alpha} must lie in (0, 1)")
    _, yi, sei = study_arrays(effects, min_k=3)
    vi = sei**2
    if direction is None:
        direction = "positive" if np.sum(yi / vi) >= 0 else "negative"
    if direction not in ("positive", "negative"):
        raise ValueError(f"direction {direction!r}: choose 'positive' or 'negative'")
    sign = 1.0 if direction == "positive" else -1.0
    rows = {}
    for name, predictor in (("PET", sei), ("PEESE", vi)):
        fit = _wls_dispersion(yi, np.column_stack([np.ones_like(sei), predictor]), 1 / vi)
        b0, b1 = _coef_test(fit, 0, level), _coef_test(fit, 1, level)
        rows[name] = {"intercept": b0["estimate"], "se": b0["se"], "t": b0["statistic"], "df": fit.df,
                      "p": b0["pval"], "p_one_sided": float(t_sf(sign * b0["statistic"], fit.df)),
                      "ci_low": b0["ci_low"], "ci_high": b0["ci_high"], "slope": b1["estimate"],
                      "slope_se": b1["se"]}
    table = pd.DataFrame.from_dict(rows, orient="index")
    use_peese = table.loc["PET", "p_one_sided"] < alpha
    chosen = "PEESE" if use_peese else "PET"
    rule = (f"PET intercept one-sided p ({direction}) = {table.loc['PET', 'p_one_sided']:.4f} "
            f"{'<' if use_peese else '>='} {alpha:g}, so {chosen}")
    return PetPeeseResult(table, direction, alpha, chosen, float(table.loc[chosen, "intercept"]),
                          float(table.loc[chosen, "ci_low"]), float(table.loc[chosen, "ci_high"]), rule)


# --------------------------------------------------------------------------- funnel plot data


@dataclass(frozen=True)
class FunnelData:
    """What a contour-enhanced funnel plot draws (plots.funnel owns the drawing).

    points: study_id, yi, sei, z, p (two-sided, against 0) and `region`, the significance band.
    contours: level, z, sei, lower, upper -- for each level, the curve yi = +-z * sei beyond which
      a study is significant at two-sided p < 1 - level (centred at 0, Peters et al. 2008).
    pseudo_ci: sei, lower, upper -- centre +- z_0.975 * sei, the classical funnel around `centre`.
    centre: the inverse-variance (common-effect) pooled estimate unless given.
    """

    points: pd.DataFrame
    contours: pd.DataFrame
    pseudo_ci: pd.DataFrame
    centre: float
    levels: tuple[float, ...]


def _region_labels(p: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    cuts = sorted(1 - lv for lv in levels)  # e.g. 0.01, 0.05, 0.10
    labels = np.full(p.shape, f"p >= {cuts[-1]:g}", dtype=object)
    for hi, lo in zip(cuts[::-1], [*cuts[::-1][1:], 0.0]):
        inside = (p < hi) & (p >= lo)
        labels[inside] = f"{lo:g} <= p < {hi:g}" if lo > 0 else f"p < {hi:g}"
    return labels


def funnel_data(effects: pd.DataFrame, contours=(0.9, 0.95, 0.99), centre: float | None = None,
                n_grid: int = 100) -> FunnelData:
    """Study points, significance contours and the pseudo-confidence funnel on a grid of SEs.

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> funnel = funnel_data(es.compute_effects(studies, measure="RR"))
        >>> funnel.points.shape, funnel.levels, round(funnel.centre, 3)
        ((13, 6), (0.9, 0.95, 0.99), -0.43)
    """
    levels = tuple(float(c) for c in contours)
    if not levels or any(not 0 < c < 1 for c in levels):
        raise ValueError(f"contour levels {contours} must lie in (0, 1), e.g. (0.9, 0.95, 0.99)")
    ids, yi, sei = study_arrays(effects)
    if centre is None:
        centre = float(np.sum(yi / sei**2) / np.sum(1 / sei**2))
    z = yi / sei
    p = 2 * norm_sf(np.abs(z))
    points = pd.DataFrame({"study_id": ids, "yi": yi, "sei": sei, "z": z, "p": p,
                           "region": _region_labels(p, levels)})
    grid = np.linspace(0.0, 1.05 * sei.max(), n_grid)
    contour_rows = []
    for level in sorted(levels):
        zc = norm_ppf(0.5 + level / 2)
        contour_rows.append(pd.DataFrame({"level": level, "z": zc, "sei": grid, "lower": -zc * grid,
                                          "upper": zc * grid}))
    z975 = norm_ppf(0.975)
    pseudo = pd.DataFrame({"sei": grid, "lower": centre - z975 * grid, "upper": centre + z975 * grid})
    return FunnelData(points, pd.concat(contour_rows, ignore_index=True), pseudo, float(centre), levels)
