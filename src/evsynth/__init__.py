"""evsynth: Bayesian evidence synthesis from study-level summaries.

studies (load, validate) -> effects -> models (builders) -> fit -> diagnostics -> summary/plots.
"""

__version__ = "0.1.0"

from .analysis import run_analysis, split_by_outcome
from .builders import BUILDERS, build_model
from .diagnostics import diagnose
from .effects import compute_effects, not_used, used_effects
from .fit import fit
from .models import by_technique, random_effects
from .priors import parse_prior
from .studies import StudyDataError, load_studies
from .summary import summarize

__all__ = [
    "BUILDERS", "StudyDataError", "build_model", "by_technique", "compute_effects", "diagnose", "fit",
    "load_studies", "not_used", "parse_prior", "random_effects", "run_analysis", "split_by_outcome",
    "summarize", "used_effects",
]
