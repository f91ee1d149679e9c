"""Layer 4, engines: a model description -> a posterior. `exact` (quadrature over the variance
components, closed form given them), `pymc` (the one PyMC graph builder) with `fit` (sampling) and
`nutpie_cache` (the compiled sampler kept on disk), `builders` (models by name), `selection` (the
one non-Gaussian model, PyMC) and `marginal` (its evidence by quadrature). `normal_normal` presents
`exact`'s one-variance case (es.exact_posterior, es.check_against_exact); `bayesmeta_direct` is a
validation helper only (bayesmeta's DIRECT mixture, for matching its printed figures). Imports only
the layers below.
"""
