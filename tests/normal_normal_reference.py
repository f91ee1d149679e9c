"""An independent reference for the normal-normal model (y_i ~ N(theta_i, s_i^2), theta_i ~ N(mu, tau^2),
mu ~ N(m0, s0^2), tau ~ a prior given as a scipy.stats distribution), written without evsynth: p(tau | y)
on 20001 equally spaced points in tau (not the engine's asinh grid, no box search) integrated by
Simpson's rule (scipy quad within the last cell for tau's quantiles); mu, the prediction and each theta_i are normal given tau (closed forms below), their
quantiles by brentq on the mixture CDF. Accurate to ~1e-9 of the posterior sd on the test data."""

import numpy as np
import pandas as pd
from scipy import integrate, optimize, special


class NormalNormalReference:
    def __init__(self, yi, sei, tau_dist, mu_mean=0.0, mu_sd=1.0, upper=None, n=20001, lower=0.0):
        y, s = np.asarray(yi, float), np.asarray(sei, float)
        self.y, self.s = y, s
        if upper is None:  # where the log density has fallen 45 below its maximum (scanned in log tau)
            scan = np.exp(np.linspace(np.log(1e-6 * s.min()), np.log(1e4 * (s.max() + np.std(y))), 4001))
            lp = self._log_dens(scan, tau_dist, mu_mean, mu_sd)
            upper = scan[np.flatnonzero(lp > lp.max() - 45)[-1]] * 1.05
        t = np.linspace(lower, upper, n)  # from the prior's lower bound: Simpson must not straddle its jump
        lp = self._log_dens(t, tau_dist, mu_mean, mu_sd)
        top = lp[np.isfinite(lp)].max()
        dens = np.exp(lp - top)
        dens[~np.isfinite(lp)] = 0.0
        total = integrate.simpson(dens, x=t)
        self.t, self.dens = t, dens / total
        self._pdf = lambda x: float(np.exp(self._log_dens(np.array([x]), tau_dist, mu_mean, mu_sd)[0] - top) / total)
        self._cum = integrate.cumulative_simpson(self.dens, x=t, initial=0.0)
        v = s**2 + t[:, None] ** 2
        prec = (1 / v).sum(axis=1) + 1 / mu_sd**2
        self.m = ((y / v).sum(axis=1) + mu_mean / mu_sd**2) / prec  # E[mu | tau, y]
        self.v = 1 / prec  # Var[mu | tau, y]
        b = s**2 / v  # theta_i | tau, y: shrinkage of y_i towards mu
        self.theta_mean = (1 - b) * y + b * self.m[:, None]
        self.theta_var = b * t[:, None] ** 2 + b**2 * self.v[:, None]
        self.mu = self._normal_mixture(self.m, self.v)
        self.predictive = self._normal_mixture(self.m, self.v + t**2)
        self.tau = self._tau_summary()
        mean = self.expect(self.theta_mean)
        var = self.expect(self.theta_var + (self.theta_mean - mean) ** 2)
        self.theta = pd.DataFrame({"mean": mean, "sd": np.sqrt(var)})

    def _log_dens(self, t, tau_dist, mu_mean, mu_sd):
        # log p(y | tau) with mu ~ N(mu_mean, mu_sd^2) integrated out: N(y; mu_mean, diag(s^2 + tau^2) + mu_sd^2),
        # by the matrix determinant lemma and Sherman-Morrison
        v = self.s**2 + t[:, None] ** 2
        r = self.y - mu_mean
        w = 1 / v
        quad = (w * r**2).sum(axis=1) - mu_sd**2 * (w @ r) ** 2 / (1 + mu_sd**2 * w.sum(axis=1))
        logdet = np.log(v).sum(axis=1) + np.log1p(mu_sd**2 * w.sum(axis=1))
        with np.errstate(divide="ignore"):
            return -0.5 * (logdet + quad) + tau_dist.logpdf(t)

    def expect(self, f):
        f = np.asarray(f, float)
        dens = self.dens.reshape((-1,) + (1,) * (f.ndim - 1))
        return integrate.simpson(f * dens, x=self.t, axis=0)

    def tau_cdf(self, x):
        """At the grid points' resolution (linear interpolation): for tests on draws."""
        return np.interp(x, self.t, self._cum / self._cum[-1])

    def _tau_cdf_exact(self, x):
        i = min(np.searchsorted(self.t, x, side="right") - 1, self.t.size - 2)
        return (self._cum[i] + integrate.quad(self._pdf, self.t[i], x, epsabs=0, epsrel=1e-13)[0]) / self._cum[-1]

    def _quantile(self, cdf, p, lo, hi):
        return optimize.brentq(lambda x: cdf(x) - p, lo, hi, xtol=1e-13, rtol=1e-15)

    def _normal_mixture(self, means, variances):
        sd = np.sqrt(variances)
        mean = self.expect(means)
        total_sd = float(np.sqrt(self.expect(variances + (means - mean) ** 2)))
        cdf = lambda x: float(self.expect(special.ndtr((x - means) / sd)))  # noqa: E731
        lo, hi = mean - 20 * total_sd, mean + 20 * total_sd
        out = {"mean": float(mean), "sd": total_sd}
        out |= {f"{100 * p:g}%": self._quantile(cdf, p, lo, hi) for p in (0.025, 0.5, 0.975)}
        return pd.Series(out | {"P(>0)": 1 - cdf(0.0)})

    def _tau_summary(self):
        mean = float(self.expect(self.t))
        sd = float(np.sqrt(self.expect((self.t - mean) ** 2)))
        cdf = self._cum / self._cum[-1]
        out = {"mean": mean, "sd": sd}
        for p in (0.025, 0.5, 0.975):  # brentq on the CDF: Simpson to a grid point, scipy quad from there
            i = np.searchsorted(cdf, p)
            out[f"{100 * p:g}%"] = self._quantile(self._tau_cdf_exact, p, self.t[max(i - 1, 0)], self.t[i])
        return pd.Series(out)


def reference(table, tau_dist, mu_mean=0.0, mu_sd=1.0, upper=None, lower=0.0) -> NormalNormalReference:
    """NormalNormalReference of an effect table's yi and sei."""
    return NormalNormalReference(table.yi.to_numpy(float), table.sei.to_numpy(float), tau_dist, mu_mean, mu_sd, upper,
                                 lower=lower)
