"""The distribution functions every run evaluates (normal, Student-t, half-normal, half-Cauchy,
chi-square and F), by scipy.special, without importing scipy.stats.

Importing scipy.stats costs ~0.25 s of CPU beyond scipy.special (it builds and parses the
docstrings of ~130 distributions), a sixth of a whole `evsynth fit --engine exact` (issue 26).
Each function here is scipy.stats' public method for valid parameters (scale > 0, df > 0): the
same scipy.special call on the same standardised value, with loc and scale applied in the same
order, the same values outside the support, NaN in, NaN out, and a NumPy scalar for a scalar
argument, so the figures are the same floats (tests/test_distributions.py compares them bit for
bit). Anything else (other families, random draws, multivariate) still comes from scipy.stats,
imported where it is used.

Example:
    >>> norm_ppf(0.975)
    np.float64(1.959963984540054)
"""

from __future__ import annotations

import numpy as np
from scipy import special

_NORM_PDF_LOGC = 0.9189385332046727  # scipy.stats' _norm_pdf_logC = log(sqrt(2 pi))


def _z(x, loc, scale):
    x, loc, scale = np.asarray(x), np.asarray(loc), np.asarray(scale)
    return np.asarray((x - loc) / scale, dtype=np.promote_types(x.dtype, np.float64)), scale


def _scalar(out):
    out = np.asarray(out, dtype=float)
    return out[()] if out.ndim == 0 else out


def _lower_bounded(z, values, below, closed=True):
    """`values` on the support of the half distributions (z >= 0 for a density, z > 0 for a CDF,
    as scipy.stats: 0, and -0.0, give 0.0), `below` outside it, NaN kept."""
    inside = z >= 0 if closed else z > 0
    return _scalar(np.where(np.isnan(z), np.nan, np.where(inside, values, below)))


# ---------------------------------------------------------------- normal


def norm_logpdf(x, loc=0.0, scale=1.0):
    z, scale = _z(x, loc, scale)
    return _scalar(-z**2 / 2.0 - _NORM_PDF_LOGC - np.log(scale))


def norm_cdf(x, loc=0.0, scale=1.0):
    return _scalar(special.ndtr(_z(x, loc, scale)[0]))


def norm_sf(x, loc=0.0, scale=1.0):
    return _scalar(special.ndtr(-_z(x, loc, scale)[0]))


def norm_ppf(q, loc=0.0, scale=1.0):
    return _scalar(special.ndtri(np.asarray(q)) * np.asarray(scale) + np.asarray(loc))


def norm_isf(q, loc=0.0, scale=1.0):
    return _scalar(-special.ndtri(np.asarray(q)) * np.asarray(scale) + np.asarray(loc))


# ---------------------------------------------------------------- Student-t (finite df)


def _valid(df, values):
    """NaN where df <= 0 (scipy.stats' argument check)."""
    df = np.asarray(df)
    return _scalar(np.where(df > 0, values, np.nan))


def t_logpdf(x, df, loc=0.0, scale=1.0):
    z, scale = _z(x, loc, scale)
    df = np.asarray(df)
    return _valid(df, np.log(special.poch(0.5 * df, 0.5)) - 0.5 * (np.log(df) + np.log(np.pi))
                   - (df + 1) / 2 * np.log1p(z * z / df) - np.log(scale))


def t_cdf(x, df, loc=0.0, scale=1.0):
    return _valid(df, special.stdtr(np.asarray(df), _z(x, loc, scale)[0]))


def t_sf(x, df, loc=0.0, scale=1.0):
    return _valid(df, special.stdtr(np.asarray(df), -_z(x, loc, scale)[0]))


def t_ppf(q, df, loc=0.0, scale=1.0):
    q = np.asarray(q)
    out = special.stdtrit(np.asarray(df), q) * np.asarray(scale) + np.asarray(loc)
    return _valid(df, np.where(q == 0, -np.inf, np.where(q == 1, np.inf, out)))


def t_isf(q, df, loc=0.0, scale=1.0):
    q = np.asarray(q)
    out = -special.stdtrit(np.asarray(df), q) * np.asarray(scale) + np.asarray(loc)
    return _valid(df, np.where(q == 1, -np.inf, np.where(q == 0, np.inf, out)))


# ---------------------------------------------------------------- half-normal, half-Cauchy (loc 0)


def halfnorm_logpdf(x, scale=1.0):
    z, scale = _z(x, 0.0, scale)
    return _lower_bounded(z, 0.5 * np.log(2.0 / np.pi) - z * z / 2.0 - np.log(scale), -np.inf)


def halfnorm_cdf(x, scale=1.0):
    z, _ = _z(x, 0.0, scale)
    return _lower_bounded(z, special.erf(z / np.sqrt(2)), 0.0, closed=False)


def halfnorm_ppf(q, scale=1.0):
    q = np.asarray(q)
    out = special.ndtri((1 + q) / 2.0) * np.asarray(scale) + 0.0
    return _scalar(np.where((q < 0) | (q > 1), np.nan, np.where(q == 1, np.inf, out)))


def halfcauchy_logpdf(x, scale=1.0):
    z, scale = _z(x, 0.0, scale)
    return _lower_bounded(z, np.log(2.0 / np.pi) - special.log1p(z * z) - np.log(scale), -np.inf)


def halfcauchy_cdf(x, scale=1.0):
    z, _ = _z(x, 0.0, scale)
    return _lower_bounded(z, 2.0 / np.pi * np.arctan(z), 0.0, closed=False)


def halfcauchy_ppf(q, scale=1.0):
    q = np.asarray(q)
    out = np.tan(np.pi / 2 * q) * np.asarray(scale) + 0.0
    return _scalar(np.where((q < 0) | (q > 1), np.nan, np.where(q == 1, np.inf, out)))


# ---------------------------------------------------------------- chi-square, F (upper tails)


def chi2_sf(x, df):
    x, df = np.asarray(x, dtype=float), np.asarray(df)
    return _scalar(np.where(df > 0, np.where(x <= 0, 1.0, special.chdtrc(df, x)), np.nan))


def f_sf(x, dfn, dfd):
    x, dfn, dfd = np.asarray(x, dtype=float), np.asarray(dfn), np.asarray(dfd)
    return _scalar(np.where((dfn > 0) & (dfd > 0), np.where(x <= 0, 1.0, special.fdtrc(dfn, dfd, x)), np.nan))
