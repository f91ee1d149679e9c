"""Priors written as short strings ("halfnormal(0.5)", "normal(0, 1)").

One spelling serves the PyMC models, the exact integration path and the spec files, so a
prior in a saved result or a sensitivity table is the same text the user typed. Parsing is a
regular expression over a fixed table of families: a spec file can never run code through it.

Named, empirically informed priors for a between-study SD (module evsynth.model.informed_priors):
"turner2015(<outcome>, <comparison>)" (log odds ratios; Turner et al. 2015) and
"rhodes2015(<outcome>, <comparison>[, <area>])" (standardized mean differences; Rhodes et al.
2015); each is a log-normal / log-t(5) prior on tau, keeps its name in every printed setting, and
`prior_source(text)` says where its numbers come from.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..effects import distributions as fast
from .formula import STRICT_NUMBER

from . import informed_priors as ip


# (scipy.stats name, method) -> the same function from effects.distributions, which gives the same
# floats without importing scipy.stats (~0.25 s of CPU per command, issue 26); called as
# f(x, *shapes, loc, scale). The half distributions have loc 0 here.
_FAST = {
    ("norm", "logpdf"): fast.norm_logpdf, ("norm", "cdf"): fast.norm_cdf, ("norm", "ppf"): fast.norm_ppf,
    ("t", "logpdf"): fast.t_logpdf, ("t", "cdf"): fast.t_cdf, ("t", "ppf"): fast.t_ppf,
    **{("halfnorm", m): (lambda f: lambda x, loc, scale: f(x, scale))(getattr(fast, f"halfnorm_{m}"))
       for m in ("logpdf", "cdf", "ppf")},
    **{("halfcauchy", m): (lambda f: lambda x, loc, scale: f(x, scale))(getattr(fast, f"halfcauchy_{m}"))
       for m in ("logpdf", "cdf", "ppf")},
}


class _Dist:
    """A scipy.stats distribution (by name) with fixed parameters. The normal, t, half-normal and
    half-Cauchy priors evaluate through effects.distributions (the same floats, no scipy.stats
    import); the others call scipy.stats' shared (unfrozen) instance, imported on first use: a
    frozen `stats.norm(m, s)` builds a new distribution object each time (~2 ms), which the exact
    path's quadrature paid on every evaluation of a prior (issue 26)."""

    def __init__(self, dist: str, *shapes, loc=0.0, scale=1.0):
        self.dist, self.shapes, self.loc, self.scale = dist, shapes, loc, scale

    def _call(self, method: str, x):
        quick = _FAST.get((self.dist, method))
        if quick is not None:
            return quick(x, *self.shapes, self.loc, self.scale)
        from scipy import stats

        return getattr(getattr(stats, self.dist), method)(x, *self.shapes, loc=self.loc, scale=self.scale)

    def logpdf(self, x):
        return self._call("logpdf", x)

    def cdf(self, x):
        return self._call("cdf", x)

    def ppf(self, q):
        return self._call("ppf", q)


class _LogT:
    """log(x) ~ Student-t(nu, mu, sigma), x > 0: the distribution of tau under Rhodes et al.'s prior."""

    def __init__(self, nu, mu, sigma):
        self.t = _Dist("t", nu, loc=mu, scale=sigma)

    def logpdf(self, x):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x > 0, self.t.logpdf(np.log(np.where(x > 0, x, 1.0))) - np.log(np.where(x > 0, x, 1.0)),
                            -np.inf)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore"):
            return np.where(x > 0, self.t.cdf(np.log(np.where(x > 0, x, 1.0))), 0.0)

    def ppf(self, q):
        return np.exp(self.t.ppf(q))


# family -> (parameter names, distribution factory (logpdf, cdf, ppf), PyMC class name, support); PyMC is
# imported only when a prior becomes a PyMC variable, so describing a model never imports it
_FAMILIES = {
    "normal": (("mu", "sigma"), lambda m, s: _Dist("norm", loc=m, scale=s), "Normal", "real"),
    "student_t": (("nu", "mu", "sigma"), lambda nu, m, s: _Dist("t", nu, loc=m, scale=s), "StudentT", "real"),
    "cauchy": (("alpha", "beta"), lambda a, b: _Dist("cauchy", loc=a, scale=b), "Cauchy", "real"),
    "halfnormal": (("sigma",), lambda s: _Dist("halfnorm", loc=0, scale=s), "HalfNormal", "positive"),
    "halfcauchy": (("beta",), lambda b: _Dist("halfcauchy", loc=0, scale=b), "HalfCauchy", "positive"),
    "halfstudent_t": (("nu", "sigma"), None, "HalfStudentT", "positive"),
    "exponential": (("lam",), lambda lam: _Dist("expon", loc=0, scale=1 / lam), "Exponential", "positive"),
    "uniform": (("lower", "upper"), lambda lo, hi: _Dist("uniform", loc=lo, scale=hi - lo), "Uniform", "real"),
    # on the SD itself: log(tau) ~ N(mu, sigma) / Student-t(nu, mu, sigma)
    "lognormal": (("mu", "sigma"), lambda m, s: _Dist("lognorm", s, scale=np.exp(m)), "LogNormal", "positive"),
    "logstudent_t": (("nu", "mu", "sigma"), lambda nu, m, s: _LogT(nu, m, s), None, "positive"),
}

_PATTERN = re.compile(r"^\s*([a-z_][a-z_0-9]*)\s*\(\s*([^()]*)\s*\)\s*$")


class PriorError(ValueError):
    """A prior string that cannot be understood."""


# Hyper-parameters outside these magnitudes are typos (halfnormal(1e-300)) that would only surface
# later as a failed fit; on any scale evsynth works on they are not a prior anyone means.
SCALE_RANGE = (1e-8, 1e8)
LOCATION_LIMIT = 1e8


def number_text(value: float) -> str:
    """The shortest text that reads back as exactly `value` (0.123456789 stays as given)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class Prior:
    family: str
    params: tuple[float, ...]
    name: str = ""  # a named prior's own text ("rhodes2015(mental_health, nonpharma)"), printed instead

    def __str__(self) -> str:
        return self.name or f"{self.family}({', '.join(number_text(p) for p in self.params)})"

    @property
    def support(self) -> str:
        return _FAMILIES[self.family][3]

    def to_pymc(self, name: str, as_data: bool = False, **kwargs):
        """Create the PyMC random variable (inside a model context).

        With as_data the hyper-parameters are pm.Data named '<name>_prior_<parameter>' (e.g.
        tau_prior_sigma), so a sweep can change them in place without rebuilding the graph, and
        the sampler starts from a point that does not depend on them (1 for a scale, 0 for a
        location): a compiled model keeps the starting values of the graph it was compiled from,
        so a start taken from the hyper-parameters would make a scenario's draws depend on which
        scenario compiled the model. (A uniform prior keeps its midpoint: its bounds are data.)
        """
        import pymc as pm

        names, _, cls_name, support = _FAMILIES[self.family]
        params = dict(zip(names, self.params))
        if as_data:
            params = {p: pm.Data(f"{name}_prior_{p}", float(v)) for p, v in params.items()}
            if self.family != "uniform":
                kwargs.setdefault("initval", 1.0 if support == "positive" else 0.0)
        if self.family == "logstudent_t":  # tau = exp(log_tau), log_tau ~ Student-t
            import pytensor.tensor as pt

            if "initval" in kwargs:
                kwargs["initval"] = float(np.log(kwargs["initval"]))
            dims = kwargs.get("dims")
            return pm.Deterministic(name, pt.exp(pm.StudentT(f"log_{name}", **params, **kwargs)), dims=dims)
        return getattr(pm, cls_name)(name, **params, **kwargs)

    def logpdf(self, x) -> np.ndarray:
        """Log density on the prior's support (used by the exact path)."""
        x = np.asarray(x, dtype=float)
        if self.family == "halfstudent_t":
            nu, sigma = self.params
            return np.log(2.0) + fast.t_logpdf(x, nu, 0, sigma)
        return _FAMILIES[self.family][1](*self.params).logpdf(x)


def parse_prior(text: "str | Prior", name: str | None = None) -> Prior:
    """Parse e.g. "halfnormal(0.5)" into a Prior; refuse anything else with a clear error.

    name: the parameter it is for; a standard deviation (tau, tau_technique, ...) needs a prior on
    the positive numbers (half-normal, half-Cauchy, exponential, or a uniform from >= 0).

    Example:
        >>> str(parse_prior("halfnormal(0.5)", "tau"))
        'halfnormal(0.5)'
        >>> parse_prior("normal(0, 1)", "tau")
        Traceback (most recent call last):
        ...
        evsynth.model.priors.PriorError: ...
    """
    if isinstance(text, Prior):
        prior = text
    elif isinstance(text, str):
        prior = _parse_text(text)
    else:
        prior = _parse_any(text)
    if name is not None and name.startswith("tau") and not (
            prior.support == "positive" or (prior.family == "uniform" and prior.params[0] >= 0)):
        raise PriorError(f"prior {text!s} for {name}: {name} is a standard deviation, so its prior must live on "
                         "the positive numbers, e.g. 'halfnormal(0.5)', 'halfcauchy(0.5)', 'exponential(2)', "
                         "'uniform(0, 2)'")
    return prior


def _parse_any(text) -> Prior:
    match = _PATTERN.match(str(text))
    return named_prior(match.group(1), match.group(2)) if match and match.group(1) in NAMED else _parse(text)


# a text's Prior, memoised: a Prior is immutable, and the exact engine reads a model's prior texts each
# time it integrates it (a sweep: thousands of times); errors are raised again each time, not cached
_parse_text = lru_cache(maxsize=1024)(_parse_any)


def _parse(text) -> Prior:
    match = _PATTERN.match(str(text))
    if not match:
        raise PriorError(f"prior {text!r}: expected family(number, ...), e.g. 'halfnormal(0.5)'")
    family, args = match.group(1), match.group(2)
    if family not in _FAMILIES:
        raise PriorError(f"prior {text!r}: unknown family {family!r}; known: {', '.join(_FAMILIES)}, "
                         "turner2015(...), rhodes2015(...)")
    words = [a.strip() for a in args.split(",")] if args.strip() else []
    bad = [w for w in words if not STRICT_NUMBER.fullmatch(w)]
    if bad:  # float() would also read '1_0' as 10 and 'inf', 'nan'
        raise PriorError(f"prior {text!r}: parameters must be decimal numbers (digits with one '.'; no '_', hex "
                         f"or words), not {', '.join(map(repr, bad))}")
    params = tuple(float(w) for w in words)
    expected = _FAMILIES[family][0]
    if len(params) != len(expected):
        raise PriorError(f"prior {text!r}: {family} takes {len(expected)} parameter(s) {expected}")
    if not all(map(math.isfinite, params)):  # (np.isfinite on a tuple: ~20 us at its first call in a process)
        raise PriorError(f"prior {text!r}: parameters must be finite")
    scale_like = [p for n, p in zip(expected, params) if n in ("sigma", "beta", "lam", "nu")]
    if any(p <= 0 for p in scale_like):
        raise PriorError(f"prior {text!r}: scale parameters must be > 0")
    if any(not SCALE_RANGE[0] <= p <= SCALE_RANGE[1] for p in scale_like):
        raise PriorError(f"prior {text!r}: scale parameters must lie between {SCALE_RANGE[0]:g} and "
                         f"{SCALE_RANGE[1]:g}")
    if any(abs(p) > LOCATION_LIMIT for n, p in zip(expected, params) if n not in ("sigma", "beta", "lam", "nu")):
        raise PriorError(f"prior {text!r}: locations and bounds must lie within +-{LOCATION_LIMIT:g}")
    if family in ("lognormal", "logstudent_t") and abs(params[-2]) > 20:
        raise PriorError(f"prior {text!r}: the location is on log(tau) and must lie within +-20")
    if family == "uniform" and params[0] >= params[1]:
        raise PriorError(f"prior {text!r}: lower must be below upper")
    return Prior(family, params)


def prior_source(text) -> str:
    """Where a prior's numbers come from: the citation of a named prior, "" for a plain family.

    >>> prior_source("rhodes2015(mental_health, nonpharma)")[:60]
    'rhodes2015(mental_health, nonpharma): log(tau^2) ~ t_5(-3.85'
    """
    prior = parse_prior(text)
    return _describe(prior) if prior.name else ""


# --------------------------------------------------------------------------- named priors (informed_priors' tables)


def _pick(kind: str, what: str, value: str, options: dict) -> str:
    if value not in options:
        raise PriorError(f"{kind}: unknown {what} {value!r}; one of: {', '.join(options)}")
    return value


def turner2015(outcome: str | None = None, comparison: str | None = None) -> Prior:
    """Turner et al. (2015) Table IV as a prior on tau: lognormal(mu / 2, sigma / 2)."""
    if outcome is None and comparison is None:
        mu, sigma = ip.TURNER_GENERAL
        name = "turner2015()"
    else:
        if outcome is None or comparison is None:
            raise PriorError("turner2015 takes an outcome type and a comparison type, or nothing (the general prior)")
        _pick("turner2015", "outcome type", outcome, ip.TURNER_OUTCOMES)
        _pick("turner2015", "comparison type", comparison, ip.TURNER_COMPARISONS)
        k = list(ip.TURNER_OUTCOMES).index(outcome)
        mu, sigma = ip._TURNER_MU[comparison][k], ip._TURNER_SIGMA[comparison][k]
        name = f"turner2015({outcome}, {comparison})"
    return Prior("lognormal", (mu / 2, sigma / 2), name)


def rhodes2015(outcome: str | None = None, comparison: str | None = None, area: str = "other") -> Prior:
    """Rhodes et al. (2015) Table 3 / A.3.1 / A.3.2 as a prior on tau: logstudent_t(5, location / 2, scale / 2)."""
    if outcome is None and comparison is None:
        location, scale = ip.RHODES_GENERAL
        name = "rhodes2015()"
    else:
        if outcome is None or comparison is None:
            raise PriorError("rhodes2015 takes an outcome type and a comparison type (and optionally a medical "
                             "area), or nothing (the general prior)")
        _pick("rhodes2015", "outcome type", outcome, ip.RHODES_OUTCOMES)
        _pick("rhodes2015", "comparison type", comparison, ip.RHODES_COMPARISONS)
        _pick("rhodes2015", "medical area", area, ip.RHODES_AREAS)
        k = list(ip.RHODES_OUTCOMES).index(outcome)
        location, scale = ip._RHODES_LOCATION[area][comparison][k], ip._RHODES_SCALE[area][comparison][k]
        name = f"rhodes2015({outcome}, {comparison})" if area == "other" else \
            f"rhodes2015({outcome}, {comparison}, {area})"
    return Prior("logstudent_t", (ip.RHODES_DF, location / 2, scale / 2), name)


NAMED = {"turner2015": turner2015, "rhodes2015": rhodes2015}


def named_prior(family: str, args: str) -> Prior:
    """turner2015(...) / rhodes2015(...) from the text between the parentheses."""
    words = [a.strip() for a in args.split(",")] if args.strip() else []
    if any(not w for w in words) or len(words) > (2 if family == "turner2015" else 3):
        raise PriorError(f"prior {family}({args}): expected {family}(<outcome type>, <comparison type>"
                         f"{'' if family == 'turner2015' else '[, <area>]'}) or {family}()")
    return NAMED[family](*words)


def _describe(prior: Prior) -> str:
    """The named prior's distribution and source, for printing beside results."""
    if prior.name.startswith("turner2015"):
        mu, sigma = prior.params[0] * 2, prior.params[1] * 2
        where = "p. 993, all outcome and comparison types" if prior.name == "turner2015()" else "Table IV"
        return (f"{prior.name}: log(tau^2) ~ N({mu:g}, {sigma:g}^2), i.e. tau ~ lognormal({prior.params[0]:g}, "
                f"{prior.params[1]:g}); {ip.TURNER_CITATION}, {where} (log odds ratios)")
    if prior.name.startswith("rhodes2015"):
        _, loc, scale = prior.params
        table = ("Sec. 3.3, all outcome and comparison types" if prior.name == "rhodes2015()" else
                 next((ip.RHODES_AREAS[a] for a in ip.RHODES_AREAS if prior.name.endswith(f", {a})")), "Table 3"))
        return (f"{prior.name}: log(tau^2) ~ t_5({loc * 2:g}, {scale * 2:g}), i.e. log(tau) ~ t_5({loc:g}, "
                f"{scale:g}); {ip.RHODES_CITATION}, {table} (standardized mean differences)")
    return ""


# The rule for the empirically informed heterogeneity prior of a measure (issue 23): the published
# predictive distributions exist for log odds ratios (Turner et al. 2015) and standardized mean
# differences (Rhodes et al. 2015) only; the general one of each, since the study table does not
# say the outcome type and comparison type (name them with the prior, e.g. rhodes2015(obstetric,
# nonpharma)).
INFORMED_BY_MEASURE = {"SMD": "rhodes2015()", "OR": "turner2015()"}
NOT_INFORMED_WHY = {
    "SMCC": "Rhodes et al. derived theirs from between-group SMDs; a standardized mean change is on another scale",
    "RR": "Turner et al.'s distributions are for log odds ratios, not log risk ratios",
    "RD": "no published distribution for risk differences",
    "MD": "a mean difference is in the outcome's own unit; the published distributions are for SMD and log OR",
    "ROM": "no published distribution for log ratios of means",
}


def informed_tau_prior(measure: str) -> tuple[str | None, str]:
    """(named prior or None, why): the empirically informed prior on tau that applies to `measure`.

    >>> informed_tau_prior("SMD")[0], informed_tau_prior("OR")[0], informed_tau_prior("MD")[0]
    ('rhodes2015()', 'turner2015()', None)
    """
    if measure in INFORMED_BY_MEASURE:
        name = INFORMED_BY_MEASURE[measure]
        return name, prior_source(name)
    return None, NOT_INFORMED_WHY.get(measure, f"no published distribution for {measure}")
