"""effects.distributions gives scipy.stats' figures bit for bit (same floats, same type), inside
and outside the support (tests/test_cli_startup.py checks that the exact commands no longer import
scipy.stats, issue 26)."""

import numpy as np
import pytest
from scipy import stats

from evsynth.effects import distributions as d

rng = np.random.default_rng(26)
EDGES = np.array([-np.inf, -40.0, -1.0, -1e-300, -0.0, 0.0, 1e-300, 0.5, 1.0, 7.5, 40.0, np.inf, np.nan])
XS = np.concatenate([EDGES, rng.normal(0, 3, 997), rng.standard_cauchy(500)])
QS = np.concatenate([[-0.5, 0.0, 1e-300, 1e-12, 0.025, 0.5, 0.975, 1 - 1e-12, 1.0, 1.5, np.nan], rng.uniform(0, 1, 989)])


def same(ours, theirs):
    """Equal as floats bit for bit (NaN where NaN, the sign of zero too), and both NumPy scalars or
    both arrays of one shape."""
    assert type(ours) is type(theirs), (type(ours), type(theirs))
    a, b = np.atleast_1d(np.asarray(ours, float)), np.atleast_1d(np.asarray(theirs, float))
    assert a.shape == b.shape
    differ = ~((a == b) & (np.signbit(a) == np.signbit(b)) | np.isnan(a) & np.isnan(b))
    assert not differ.any(), list(zip(a[differ][:5], b[differ][:5]))


CASES = [  # (ours, scipy's, shape args, loc/scale keywords, argument)
    (d.norm_logpdf, stats.norm.logpdf, (), {"loc": 0.3, "scale": 0.7}, XS),
    (d.norm_logpdf, stats.norm.logpdf, (), {}, XS),
    (d.norm_cdf, stats.norm.cdf, (), {"loc": -1.2, "scale": 2.5}, XS),
    (d.norm_sf, stats.norm.sf, (), {}, XS),
    (d.norm_ppf, stats.norm.ppf, (), {"loc": 0.1, "scale": 0.4}, QS),
    (d.norm_isf, stats.norm.isf, (), {}, QS),
    (d.t_logpdf, stats.t.logpdf, (4.0,), {"loc": -1.72, "scale": 1.295}, XS),
    (d.t_logpdf, stats.t.logpdf, (5,), {}, XS),
    (d.t_cdf, stats.t.cdf, (3.0,), {"loc": 0.0, "scale": 0.6}, XS),
    (d.t_sf, stats.t.sf, (17,), {}, XS),
    (d.t_ppf, stats.t.ppf, (2.5,), {}, QS),
    (d.t_isf, stats.t.isf, (40,), {}, QS),
    (d.halfnorm_logpdf, stats.halfnorm.logpdf, (), {"scale": 0.5}, XS),
    (d.halfnorm_cdf, stats.halfnorm.cdf, (), {"scale": 0.5}, XS),
    (d.halfnorm_ppf, stats.halfnorm.ppf, (), {"scale": 0.5}, QS),
    (d.halfcauchy_logpdf, stats.halfcauchy.logpdf, (), {"scale": 0.3}, XS),
    (d.halfcauchy_cdf, stats.halfcauchy.cdf, (), {"scale": 0.3}, XS),
    (d.halfcauchy_ppf, stats.halfcauchy.ppf, (), {"scale": 0.3}, QS),
    (d.chi2_sf, stats.chi2.sf, (3,), {}, np.abs(XS) * np.sign(XS + 0.5)),
    (d.f_sf, stats.f.sf, (2, 11), {}, np.abs(XS) * np.sign(XS + 0.5)),
]


@pytest.mark.parametrize("ours, theirs, shapes, locscale, values", CASES,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)])
def test_the_same_floats_as_scipy_stats(ours, theirs, shapes, locscale, values):
    scale = {"scale": locscale["scale"]} if "scale" in locscale else {}
    ours_kw = locscale if ours.__name__[:4] in ("norm", "t_lo", "t_cd", "t_sf", "t_pp", "t_is") else scale
    same(ours(values, *shapes, **ours_kw), theirs(values, *shapes, **locscale))  # one array
    for n in (1, 2, 7, 33):  # shorter arrays: SIMD loops and their remainders
        same(ours(values[:n], *shapes, **ours_kw), theirs(values[:n], *shapes, **locscale))
    for v in list(values[:13]) + [float(values[20]), int(3)]:  # scalars give NumPy scalars
        same(ours(v, *shapes, **ours_kw), theirs(v, *shapes, **locscale))
    grid = values[:40].reshape(8, 5)  # 2-d, as the quadrature grids
    same(ours(grid, *shapes, **ours_kw), theirs(grid, *shapes, **locscale))


def test_array_parameters_broadcast_as_scipy_does():
    x, df = rng.normal(0, 2, (6, 4)), rng.uniform(1, 30, 4)
    same(d.t_sf(x, df), stats.t.sf(x, df))
    same(d.t_logpdf(x, df, 0.2, 1.5), stats.t.logpdf(x, df, 0.2, 1.5))
    loc, scale = rng.normal(0, 1, 4), rng.uniform(0.1, 2, 4)
    same(d.norm_logpdf(x, loc, scale), stats.norm.logpdf(x, loc, scale))
    same(d.norm_cdf(x, loc, scale), stats.norm.cdf(x, loc, scale))
