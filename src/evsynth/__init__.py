"""evsynth: Bayesian evidence synthesis from study-level summaries.

studies (load, validate) -> effects -> models (builders) -> fit -> diagnostics -> summary/plots,
with sensitivity sweeps over those same verbs, and an exact (quadrature) path for checks.
"""

__version__ = "0.1.0"

from . import plots
from .analysis import run_analysis, split_by_outcome
from .bias import egger_test, funnel_data, pet_peese
from .builders import BUILDERS, build_model
from .compare import bayes_factors, loo_compare, model_average, pareto_k_table, savage_dickey
from .diagnostics import diagnose
from .effects import compute_effects, not_used, used_effects
from .exact import check_against_exact, exact_posterior
from .fit import fit
from .frequentist import common_effect as common_effect_fe
from .frequentist import dersimonian_laird, reml
from .frequentist import meta_regression as meta_regression_reml
from .heterogeneity import heterogeneity_draws, i2_h2
from .models import by_technique, common_effect, random_effects
from .network import network, network_plot, network_summary, network_table, node_split
from .moderators import design_matrix, with_study_columns
from .priors import parse_prior
from .regression import fit_meta_regression
from .report import write_report
from .riskofbias import rob_formula, rob_subgroups
from .selection import selection
from .sensitivity import Sensitivity
from .sof import median_control_risk, summary_of_findings
from .studies import StudyDataError, load_studies
from .summary import summarize

__all__ = [
    "BUILDERS", "Sensitivity", "StudyDataError", "bayes_factors", "build_model", "by_technique",
    "check_against_exact", "common_effect", "common_effect_fe", "compute_effects", "dersimonian_laird",
    "diagnose", "egger_test", "exact_posterior", "fit", "funnel_data", "load_studies", "loo_compare",
    "model_average", "network", "network_plot", "network_summary", "network_table", "node_split",
    "not_used", "pareto_k_table", "parse_prior", "pet_peese", "plots", "random_effects", "reml",
    "run_analysis", "savage_dickey", "selection", "split_by_outcome", "summarize", "used_effects",
    "write_report", "meta_regression_reml", "heterogeneity_draws", "i2_h2", "design_matrix", "with_study_columns",
    "fit_meta_regression", "rob_formula", "rob_subgroups", "median_control_risk", "summary_of_findings",
]
