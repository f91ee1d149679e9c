"""Layer 3, model: the engine-free description of a Gaussian hierarchical model (`description`:
fixed part, variance components, priors, censored rows), prior parsing (`priors`), moderator
formulas (`moderators`) and the treatment graph of a network (`network_graph`). Imports only
evsynth.data and evsynth.effects.
"""
