"""evsynth: Bayesian evidence synthesis from study-level summaries.

studies (load, validate) -> effects -> models (builders) -> fit -> diagnostics -> summary/plots,
with sensitivity sweeps over those same verbs, and an exact (quadrature) path for checks.

The names below load on first use (PEP 562), so `import evsynth` and the command line's
argument parsing do not import PyMC, ArviZ or matplotlib.
"""

__version__ = "0.2.0"

import importlib
import sys
import types

# name -> (module, attribute; None: the module itself)
_EXPORTS = {
    "plots": (".plots", None),
    "run_analysis": (".analysis", 'run_analysis'),
    "split_by_outcome": (".analysis", 'split_by_outcome'),
    "egger_test": (".bias", 'egger_test'),
    "funnel_data": (".bias", 'funnel_data'),
    "pet_peese": (".bias", 'pet_peese'),
    "BUILDERS": (".builders", 'BUILDERS'),
    "build_model": (".builders", 'build_model'),
    "bayes_factors": (".compare", 'bayes_factors'),
    "loo_compare": (".compare", 'loo_compare'),
    "model_average": (".compare", 'model_average'),
    "pareto_k_table": (".compare", 'pareto_k_table'),
    "savage_dickey": (".compare", 'savage_dickey'),
    "diagnose": (".diagnostics", 'diagnose'),
    "compute_effects": (".effects", 'compute_effects'),
    "not_used": (".effects", 'not_used'),
    "used_effects": (".effects", 'used_effects'),
    "check_against_exact": (".exact", 'check_against_exact'),
    "exact_posterior": (".exact", 'exact_posterior'),
    "fit": (".fit", 'fit'),
    "common_effect_fe": (".frequentist", 'common_effect'),
    "dersimonian_laird": (".frequentist", 'dersimonian_laird'),
    "reml": (".frequentist", 'reml'),
    "meta_regression_reml": (".frequentist", 'meta_regression'),
    "heterogeneity_draws": (".heterogeneity", 'heterogeneity_draws'),
    "i2_h2": (".heterogeneity", 'i2_h2'),
    "by_technique": (".models", 'by_technique'),
    "common_effect": (".models", 'common_effect'),
    "random_effects": (".models", 'random_effects'),
    "network": (".network", 'network'),
    "network_plot": (".network", 'network_plot'),
    "network_summary": (".network", 'network_summary'),
    "network_table": (".network", 'network_table'),
    "node_split": (".network", 'node_split'),
    "design_matrix": (".moderators", 'design_matrix'),
    "with_study_columns": (".moderators", 'with_study_columns'),
    "parse_prior": (".priors", 'parse_prior'),
    "fit_meta_regression": (".regression", 'fit_meta_regression'),
    "write_report": (".report", 'write_report'),
    "rob_formula": (".riskofbias", 'rob_formula'),
    "rob_subgroups": (".riskofbias", 'rob_subgroups'),
    "selection": (".selection", 'selection'),
    "Sensitivity": (".sensitivity", 'Sensitivity'),
    "median_control_risk": (".sof", 'median_control_risk'),
    "summary_of_findings": (".sof", 'summary_of_findings'),
    "StudyDataError": (".studies", 'StudyDataError'),
    "load_studies": (".studies", 'load_studies'),
    "summarize": (".summary", 'summarize'),
}



class _Package(types.ModuleType):
    """Importing a submodule binds it on its package (evsynth.fit = the module), which would hide the
    function of the same name once any code has run `from .fit import fit`: the names exported as
    functions (fit, network, selection) keep meaning the function. `from evsynth.fit import x` still
    imports the module (through sys.modules)."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name, (None, None))[1] is not None:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'evsynth' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = importlib.import_module(module, __name__)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


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
