"""Multilevel and multivariate meta-analysis by ML / REML (metafor's rma.mv), on a known sampling
covariance V.

    y = X beta + sum_k theta_k G_k-shaped random effects + eps,   eps ~ N(0, V)
    Cov(y) = M(theta) = V + sum_k theta_k G_k

Nested random effects (`~ 1 | district/school`): one variance component per level, G_k = Z_k Z_k'
(1 where two rows share that level's group). An unstructured between-cluster covariance
(`~ outcome | trial`, struct "UN"): T (q x q, one row per outcome) with G_ab = 1 where two rows
share the trial and have outcomes a and b; reported as tau^2 per outcome and the correlations.
M is linear in theta, so the score and the Hessian of the (restricted) log-likelihood are closed
forms; theta is found by Newton steps on the constrained set (theta_k >= 0, T positive
semi-definite), halving any step that leaves it or lowers the likelihood. beta is generalized
least squares given theta, with Wald z-tests (metafor's default test = "z"). Checked against
metafor 3.8 in tests/test_multilevel.py (figures and R script in tests/data/reference/).
evsynth.methods.robust gives the cluster-robust (CR2) standard errors of such a fit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..model.moderators import design_matrix

LEVEL = 0.95
_LOG_2PI = np.log(2 * np.pi)


class MultilevelError(ValueError):
    """A random-effects specification or covariance the data cannot carry (names the field)."""


# --------------------------------------------------------------------------- the random part


@dataclass(frozen=True)
class RandomSpec:
    """Parsed `random`: nested levels (each a path of columns, outermost first), or one
    unstructured term `inner | outer` (struct "UN")."""

    levels: tuple[tuple[str, ...], ...] = ()
    inner: str | None = None  # the outcome column of a UN term
    outer: str | None = None  # its cluster column

    @property
    def columns(self) -> list[str]:
        cols = [c for path in self.levels for c in path]
        cols += [c for c in (self.inner, self.outer) if c]
        return list(dict.fromkeys(cols))

    def __str__(self) -> str:
        if self.inner:
            return f"~ {self.inner} | {self.outer} (UN)"
        return ", ".join("/".join(p) for p in self.levels)


_NAME = r"[A-Za-z_][A-Za-z0-9_.]*"


def parse_random(random, struct: str = "UN") -> RandomSpec:
    """`random` as metafor writes it ("~ 1 | district/school": a level per prefix of the path;
    "~ outcome | trial": an unstructured outcome covariance within trials) or a list of nesting
    paths (["study", "study/effect"]), outermost level first."""
    if isinstance(random, RandomSpec):
        return random
    if isinstance(random, str):
        match = re.fullmatch(rf"\s*~\s*({_NAME}|1)\s*\|\s*({_NAME}(?:\s*/\s*{_NAME})*)\s*", random)
        if not match:
            raise MultilevelError(f"random {random!r}: expected '~ 1 | study/effect' or '~ outcome | study'")
        inner, path = match.group(1), tuple(p.strip() for p in match.group(2).split("/"))
        if inner != "1":
            if len(path) != 1:
                raise MultilevelError(f"random {random!r}: an outcome covariance takes one cluster column")
            if struct != "UN":
                raise MultilevelError(f"struct {struct!r}: only 'UN' (unstructured) is implemented")
            return RandomSpec(inner=inner, outer=path[0])
        return RandomSpec(levels=tuple(path[:k + 1] for k in range(len(path))))
    if isinstance(random, (list, tuple)) and random and all(isinstance(r, str) for r in random):
        levels = []
        for entry in random:
            path = tuple(p.strip() for p in entry.split("/"))
            if not all(re.fullmatch(_NAME, p) for p in path):
                raise MultilevelError(f"random level {entry!r}: expected column names joined by '/'")
            levels.append(path)
        if len(set(levels)) != len(levels):
            raise MultilevelError(f"random {random!r} names a level twice")
        return RandomSpec(levels=tuple(levels))
    raise MultilevelError(f"random must be a formula ('~ 1 | study/effect') or a list of levels "
                          f"(['study', 'study/effect']), not {random!r}")


def group_codes(table: pd.DataFrame, path: tuple[str, ...]) -> np.ndarray:
    """Integer code of each row's group at a nested level (the combination of the path's columns)."""
    for column in path:
        if column not in table.columns:
            raise MultilevelError(f"random: column {column!r} is not in the table "
                                  f"(columns: {', '.join(map(str, table.columns))})")
        missing = table[column].isna()
        if missing.any():
            raise MultilevelError(f"random: column {column!r} is empty in row(s) "
                                  f"{', '.join(str(i + 1) for i in np.flatnonzero(missing.to_numpy()))}")
    keys = table[list(path)].astype(str).agg("\x1f".join, axis=1)
    return pd.factorize(keys)[0]


@dataclass(frozen=True)
class _Structure:
    """M(theta) = V + sum_k theta_k G_k, with the names and constraints of theta."""

    names: tuple[str, ...]
    G: np.ndarray  # (K, n, n)
    kind: str  # "nested" or "UN"
    q: int = 0  # outcomes of a UN term
    outcomes: tuple[str, ...] = ()
    n_levels: tuple[int, ...] = ()

    def T(self, theta: np.ndarray) -> np.ndarray:
        """The UN covariance matrix from theta = (diagonal, then upper off-diagonal entries)."""
        q = self.q
        T = np.diag(theta[:q])
        iu = np.triu_indices(q, 1)
        T[iu] = theta[q:]
        T[(iu[1], iu[0])] = theta[q:]
        return T

    def feasible(self, theta: np.ndarray) -> bool:
        if self.kind == "nested":
            return bool(np.all(theta >= 0))
        return bool(np.all(theta[:self.q] >= 0) and np.linalg.eigvalsh(self.T(theta)).min() >= -1e-14)

    def project(self, theta: np.ndarray) -> np.ndarray:
        if self.kind == "nested":
            return np.maximum(theta, 0.0)
        out = theta.copy()
        out[:self.q] = np.maximum(out[:self.q], 0.0)
        return out


def _structure(table: pd.DataFrame, spec: RandomSpec) -> _Structure:
    n = len(table)
    if spec.inner is None:
        names, G, counts = [], [], []
        for path in spec.levels:
            codes = group_codes(table, path)
            names.append("/".join(path))
            G.append((codes[:, None] == codes[None, :]).astype(float))
            counts.append(int(codes.max()) + 1)
        return _Structure(tuple(names), np.array(G), "nested", n_levels=tuple(counts))
    cluster = group_codes(table, (spec.outer,))
    outcome_codes = group_codes(table, (spec.inner,))
    outcomes = tuple(sorted(table[spec.inner].astype(str).unique()))
    position = {o: k for k, o in enumerate(outcomes)}
    which = table[spec.inner].astype(str).map(position).to_numpy()
    del outcome_codes
    same = cluster[:, None] == cluster[None, :]
    q = len(outcomes)
    names, G = [], []
    for a in range(q):
        names.append(f"tau2[{outcomes[a]}]")
        G.append((same & (which[:, None] == a) & (which[None, :] == a)).astype(float))
    for a, b in zip(*np.triu_indices(q, 1)):
        names.append(f"cov[{outcomes[a]}, {outcomes[b]}]")
        pair = ((which[:, None] == a) & (which[None, :] == b)) | ((which[:, None] == b) & (which[None, :] == a))
        G.append((same & pair).astype(float))
    return _Structure(tuple(names), np.array(G) if G else np.zeros((0, n, n)), "UN", q=q, outcomes=outcomes,
                      n_levels=(int(cluster.max()) + 1,))


# --------------------------------------------------------------------------- the likelihood


@dataclass
class _State:
    """Everything at one theta: the log-likelihood, GLS beta, and what its derivatives need."""

    loglik: float
    beta: np.ndarray
    bread: np.ndarray  # (X' M^-1 X)^-1
    Minv: np.ndarray
    P: np.ndarray  # M^-1 - M^-1 X bread X' M^-1
    Py: np.ndarray


def _state(y, X, V, G, theta, method: str, logdet_XtX: float) -> _State | None:
    M = V + np.tensordot(theta, G, axes=1)
    try:
        L = np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        return None
    Minv = np.linalg.inv(M)
    Minv = (Minv + Minv.T) / 2
    MX = Minv @ X
    XtMX = X.T @ MX
    bread = np.linalg.inv(XtMX)
    beta = bread @ (MX.T @ y)
    P = Minv - MX @ bread @ MX.T
    Py = P @ y
    n, p = X.shape
    logdet_M = 2 * np.log(np.diag(L)).sum()
    quad = float(y @ Py)
    if method == "ML":
        ll = -0.5 * (n * _LOG_2PI + logdet_M + quad)
    else:  # REML as metafor reports it (with + 1/2 log|X'X|)
        ll = -0.5 * ((n - p) * _LOG_2PI + logdet_M + np.linalg.slogdet(XtMX)[1] - logdet_XtX + quad)
    return _State(float(ll), beta, bread, Minv, P, Py)


def _derivatives(state: _State, G, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score, observed information (-Hessian) and expected information of the log-likelihood in theta."""
    H = state.P if method == "REML" else state.Minv
    HG = np.einsum("ij,kjl->kil", H, G)  # H G_k
    GPy = G @ state.Py  # (K, n)
    score = 0.5 * (np.einsum("ki,i->k", GPy, state.Py) - np.einsum("kii->k", HG))
    trace = np.einsum("kij,lji->kl", HG, HG)
    quad = GPy @ state.P @ GPy.T
    observed = quad - 0.5 * trace
    return score, (observed + observed.T) / 2, 0.5 * trace


def _start(y, X, V, structure: _Structure) -> np.ndarray:
    """A start inside the parameter space: the residual variance beyond the sampling variances,
    shared equally by the components (the UN term: on its diagonal)."""
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    excess = max(float(np.var(y - X @ beta)) - float(np.mean(np.diag(V))), 0.0)
    total = max(excess, 0.1 * float(np.mean(np.diag(V))), 1e-4)
    K = len(structure.names)
    if structure.kind == "nested":
        return np.full(K, total / K)
    theta = np.zeros(K)
    theta[:structure.q] = total
    return theta


def _maximize(y, X, V, structure: _Structure, method: str, tol: float = 1e-12, max_iter: int = 500):
    logdet_XtX = np.linalg.slogdet(X.T @ X)[1]
    G = structure.G

    def at(theta):
        return _state(y, X, V, G, theta, method, logdet_XtX)

    theta = _start(y, X, V, structure)
    state = at(theta)
    for iteration in range(max_iter):
        score, observed, expected = _derivatives(state, G, method)
        # components held at the boundary: at 0 with the likelihood still falling into it
        fixed = np.zeros(theta.size, bool)
        bounded = np.arange(theta.size) if structure.kind == "nested" else np.arange(structure.q)
        fixed[bounded] = (theta[bounded] <= 0) & (score[bounded] <= 0)
        free = ~fixed
        step = np.zeros_like(theta)
        if free.any():
            info = observed[np.ix_(free, free)]
            if np.linalg.eigvalsh(info).min() <= 0:  # not concave here: Fisher scoring
                info = expected[np.ix_(free, free)]
            step[free] = np.linalg.solve(info, score[free])
        t, moved = 1.0, False
        while t > 1e-12:
            candidate = structure.project(theta + t * step)
            if structure.feasible(candidate):
                new = at(candidate)
                if new is not None and new.loglik >= state.loglik - 1e-12 * (1 + abs(state.loglik)):
                    moved = True
                    break
            t /= 2
        if not moved:
            break
        change = np.max(np.abs(candidate - theta) / (1e-8 + np.abs(theta)))
        theta, state = candidate, new
        if change < tol:
            break
    else:
        raise MultilevelError(f"{method} did not converge in {max_iter} iterations")
    return theta, state, iteration + 1


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class MultilevelResult:
    """A fit of metafor's rma.mv kind. coefficients: estimate, se, statistic (z), pval, ci_low,
    ci_high per column of X. components: one row per variance parameter (estimate: sigma^2, or
    the UN term's tau^2 / covariance, with sqrt = its SD) and the levels it has; `rho` the UN
    term's correlations (outcome x outcome)."""

    method: str
    random: str
    coefficients: pd.DataFrame
    cov: np.ndarray
    components: pd.DataFrame
    rho: pd.DataFrame | None
    loglik: float
    k: int
    QE: float
    QE_df: int
    QE_p: float
    iterations: int
    # what robust variance estimation (evsynth.methods.robust) needs
    yi: np.ndarray = field(repr=False)
    X: np.ndarray = field(repr=False)
    V: np.ndarray = field(repr=False)
    M: np.ndarray = field(repr=False)  # the fitted marginal covariance
    clusters: np.ndarray = field(repr=False)  # codes of the outermost level (CR2's default cluster)

    @property
    def sigma2(self) -> np.ndarray:
        return self.components["estimate"].to_numpy()

    def lines(self) -> list[str]:
        """The fit as a few terminal lines (within 100 columns)."""
        out = [f"multilevel {self.method} fit, k = {self.k}, random: {self.random}, logLik {self.loglik:.4f}"]
        for name, row in self.components.iterrows():
            out.append(f"  {name:<28} {row['estimate']:>10.4f}   sqrt {row['sqrt']:.4f}   levels {int(row['levels'])}")
        for name, row in self.coefficients.iterrows():
            out.append(f"  {name:<28} {row['estimate']:>8.4f}  SE {row['se']:.4f}  95% CI "
                       f"[{row['ci_low']:.4f}, {row['ci_high']:.4f}]  p {row['pval']:.3g}")
        out.append(f"  residual heterogeneity QE({self.QE_df}) = {self.QE:.2f}, p = {self.QE_p:.3g}")
        return out


def fit_multilevel(yi, V, X, structure: _Structure, random_text: str, names, clusters,
                   method: str = "REML") -> MultilevelResult:
    """The array-level fit: yi (n), V (n x n or the n variances), X (n x p)."""
    if method not in ("REML", "ML"):
        raise MultilevelError(f"method {method!r}: 'REML' or 'ML'")
    y = np.asarray(yi, float)
    n = y.size
    V = np.asarray(V, float)
    V = np.diag(V) if V.ndim == 1 else V
    X = np.asarray(X, float)
    if V.shape != (n, n) or X.shape[0] != n:
        raise MultilevelError(f"V has shape {V.shape} and X {X.shape} for {n} rows")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(V))):
        raise MultilevelError("yi and V must be finite")
    if not np.allclose(V, V.T):
        raise MultilevelError("V must be symmetric")
    try:
        np.linalg.cholesky(V)
    except np.linalg.LinAlgError:
        raise MultilevelError("V is not positive definite (a correlation of +-1, or a sampling variance <= 0)") from None
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise MultilevelError("the moderators' columns are linearly dependent")
    if n - X.shape[1] <= len(structure.names):
        raise MultilevelError(f"{n} rows cannot carry {X.shape[1]} coefficients and {len(structure.names)} "
                              "variance parameters")
    theta, state, iterations = _maximize(y, X, V, structure, method)
    se = np.sqrt(np.diag(state.bread))
    z = state.beta / se
    crit = stats.norm.ppf(0.5 + LEVEL / 2)
    coefficients = pd.DataFrame({"estimate": state.beta, "se": se, "statistic": z,
                                 "pval": 2 * stats.norm.sf(np.abs(z)),
                                 "ci_low": state.beta - crit * se, "ci_high": state.beta + crit * se},
                                index=pd.Index(list(names), name="term"))
    rho = None
    if structure.kind == "nested":
        levels = list(structure.n_levels)
    else:
        T = structure.T(theta)
        sd = np.sqrt(np.diag(T))
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = pd.DataFrame(T / np.outer(sd, sd), index=list(structure.outcomes), columns=list(structure.outcomes))
        levels = list(structure.n_levels) * len(theta)
    components = pd.DataFrame({"estimate": theta, "sqrt": np.sqrt(np.abs(theta)) * np.sign(theta),
                               "levels": levels}, index=pd.Index(list(structure.names), name="component"))
    Vinv = np.linalg.inv(V)
    VX = Vinv @ X
    P_fe = Vinv - VX @ np.linalg.solve(X.T @ VX, VX.T)
    qe = float(y @ P_fe @ y)
    M = V + np.tensordot(theta, structure.G, axes=1)
    return MultilevelResult(method=method, random=random_text, coefficients=coefficients, cov=state.bread,
                            components=components, rho=rho, loglik=state.loglik, k=n, QE=qe, QE_df=n - X.shape[1],
                            QE_p=float(stats.chi2.sf(qe, n - X.shape[1])), iterations=iterations, yi=y, X=X, V=V,
                            M=M, clusters=np.asarray(clusters))


def multilevel(table: pd.DataFrame, random, V=None, mods=None, method: str = "REML", struct: str = "UN",
               yi: str = "yi", vi: str = "vi") -> MultilevelResult:
    """metafor's rma.mv(yi, V, mods, random, struct) on a table (an effect table's used rows, or
    any DataFrame with the columns named).

    random: "~ 1 | study/effect" (nested levels), ["study", "study/effect"], or "~ outcome | trial"
    (an unstructured outcome covariance within trials: a multivariate model; give mods =
    "~ 0 + C(outcome)" for one mean per outcome). V: the sampling covariance, an n x n matrix (see
    evsynth.effects.covariance for building it from a within-study correlation); None: the
    independent variances in column `vi`. mods: a formula or columns (evsynth.model.moderators);
    None: intercept only.

    >>> import evsynth as es, pandas as pd                               # doctest: +SKIP
    >>> dat = pd.read_csv("tests/data/konstantopoulos2011.csv")         # doctest: +SKIP
    >>> fit = es.multilevel(dat, "~ 1 | district/school")                # doctest: +SKIP
    >>> print("\n".join(fit.lines()))  # sigma^2 0.0651 (district), 0.0327 (school), mu 0.1847  # doctest: +SKIP
    """
    if "used" in table.columns:
        table = table[table["used"].astype(bool)]
    table = table.reset_index(drop=True)
    for column in (yi,) + ((vi,) if V is None else ()):
        if column not in table.columns:
            raise MultilevelError(f"column {column!r} is not in the table")
    spec = parse_random(random, struct)
    structure = _structure(table, spec)
    if mods is None:
        X, names = np.ones((len(table), 1)), ["intrcpt"]
    else:
        X, names = design_matrix(table, mods)
    V = table[vi].to_numpy(float) if V is None else V
    outer = (spec.levels[0] if spec.levels else (spec.outer,))
    clusters = group_codes(table, outer)
    return fit_multilevel(table[yi].to_numpy(float), V, X, structure, str(spec), names, clusters, method)
