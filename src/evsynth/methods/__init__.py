"""Layer 5, methods: the verbs over fits and effect tables. Frequentist estimators and heterogeneity,
small-study and selection methods (`bias`), model comparison, network and node splits,
meta-regression and designs, risk of bias, sensitivity sweeps (`sensitivity`, `spec`, `sweep`),
diagnostics, prior-data conflict, `summary` (the posterior table) and `analysis` (what `evsynth
fit` runs per outcome). Imports only the layers below.
"""
