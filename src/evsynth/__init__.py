"""evsynth: Bayesian evidence synthesis from study-level summaries."""

__version__ = "0.1.0"
