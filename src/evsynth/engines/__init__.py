"""Engines that fit a GaussianModel (evsynth.description): `exact` (quadrature over the variance
components, closed-form Gaussian conditionals; no PyMC) and `pymc` (the PyMC model, sampled)."""
