"""evsynth: Bayesian evidence synthesis from study-level summaries.

The package's folders are its layers, each importing only those below it (checked by
import-linter in the tests: tests/test_layout.py):

    data -> effects -> model -> engines -> methods -> present -> cli

study table -> effect table -> Gaussian model description -> exact or PyMC posterior -> verbs
(diagnose, summarize, compare, sweep) -> tables, plots, report -> the `evsynth` command.

The names below load on first use (PEP 562), so `import evsynth` and the command line's
argument parsing do not import PyMC, ArviZ or matplotlib.
"""

__version__ = "0.2.0"

import importlib

# name -> (module, attribute; None: the module itself)
_EXPORTS = {
    "plots": ("evsynth.present.plots", None),
    "run_analysis": ("evsynth.methods.analysis", 'run_analysis'),
    "split_by_outcome": ("evsynth.methods.analysis", 'split_by_outcome'),
    "one_row_per_sample": ("evsynth.methods.analysis", 'one_row_per_sample'),
    "restrict_design": ("evsynth.methods.designs", 'restrict_design'),
    "prepost_weight_share": ("evsynth.methods.designs", 'prepost_weight_share'),
    "egger_test": ("evsynth.methods.bias", 'egger_test'),
    "funnel_data": ("evsynth.methods.bias", 'funnel_data'),
    "pet_peese": ("evsynth.methods.bias", 'pet_peese'),
    "BUILDERS": ("evsynth.engines.builders", 'BUILDERS'),
    "build_model": ("evsynth.engines.builders", 'build_model'),
    "bayes_factors": ("evsynth.methods.compare", 'bayes_factors'),
    "loo_compare": ("evsynth.methods.compare", 'loo_compare'),
    "model_average": ("evsynth.methods.compare", 'model_average'),
    "PSMA": ("evsynth.methods.compare", 'PSMA'),
    "bias_adjusted": ("evsynth.methods.robma", 'bias_adjusted'),
    "rate_certainty": ("evsynth.methods.certainty", 'rate_certainty'),
    "pareto_k_table": ("evsynth.methods.compare", 'pareto_k_table'),
    "savage_dickey": ("evsynth.methods.compare", 'savage_dickey'),
    "diagnose": ("evsynth.methods.diagnostics", 'diagnose'),
    "compute_effects": ("evsynth.effects", 'compute_effects'),
    "not_used": ("evsynth.effects", 'not_used'),
    "used_effects": ("evsynth.effects", 'used_effects'),
    "check_against_exact": ("evsynth.engines.normal_normal", 'check_against_exact'),
    "exact_posterior": ("evsynth.engines.normal_normal", 'exact_posterior'),
    "fit": ("evsynth.engines.fit", 'fit'),
    "common_effect_fe": ("evsynth.methods.frequentist", 'common_effect'),
    "dersimonian_laird": ("evsynth.methods.frequentist", 'dersimonian_laird'),
    "reml": ("evsynth.methods.frequentist", 'reml'),
    "meta_regression_reml": ("evsynth.methods.frequentist", 'meta_regression'),
    "heterogeneity_draws": ("evsynth.methods.heterogeneity", 'heterogeneity_draws'),
    "i2_h2": ("evsynth.methods.heterogeneity", 'i2_h2'),
    "by_technique": ("evsynth.engines.builders", 'by_technique'),
    "common_effect": ("evsynth.engines.builders", 'common_effect'),
    "random_effects": ("evsynth.engines.builders", 'random_effects'),
    "network": ("evsynth.methods.network", 'network'),
    "network_plot": ("evsynth.methods.network", 'network_plot'),
    "network_summary": ("evsynth.methods.network", 'network_summary'),
    "network_table": ("evsynth.methods.network", 'network_table'),
    "node_split": ("evsynth.methods.network", 'node_split'),
    "design_matrix": ("evsynth.model.moderators", 'design_matrix'),
    "with_study_columns": ("evsynth.model.moderators", 'with_study_columns'),
    "parse_prior": ("evsynth.model.priors", 'parse_prior'),
    "fit_meta_regression": ("evsynth.methods.regression", 'fit_meta_regression'),
    "write_report": ("evsynth.present.report", 'write_report'),
    "rob_formula": ("evsynth.methods.riskofbias", 'rob_formula'),
    "rob_subgroups": ("evsynth.methods.riskofbias", 'rob_subgroups'),
    "selection": ("evsynth.engines.selection", 'selection'),
    "Sensitivity": ("evsynth.methods.sensitivity", 'Sensitivity'),
    "median_control_risk": ("evsynth.present.sof", 'median_control_risk'),
    "summary_of_findings": ("evsynth.present.sof", 'summary_of_findings'),
    "StudyDataError": ("evsynth.data.studies", 'StudyDataError'),
    "load_studies": ("evsynth.data.studies", 'load_studies'),
    "summarize": ("evsynth.methods.summary", 'summarize'),
    "rma": ("evsynth.methods.tau2", 'rma'),
    "estimate_tau2": ("evsynth.methods.tau2", 'estimate_tau2'),
    "heterogeneity_ci": ("evsynth.methods.tau2", 'heterogeneity_ci'),
    "multilevel": ("evsynth.methods.multilevel", 'multilevel'),
    "prior_source": ("evsynth.model.priors", 'prior_source'),
    "correlation_sensitivity": ("evsynth.methods.dependence", 'correlation_sensitivity'),
    "multivariate": ("evsynth.engines.multivariate", 'multivariate'),
    "robust": ("evsynth.methods.robust", 'robust'),
    "impute_covariance": ("evsynth.effects.covariance", 'impute_covariance'),
    "shared_control_covariance": ("evsynth.effects.covariance", 'shared_control_covariance'),
    "mantel_haenszel": ("evsynth.methods.binary_pooling", 'mantel_haenszel'),
    "peto": ("evsynth.methods.binary_pooling", 'peto'),
    "cochran_mantel_haenszel": ("evsynth.methods.binary_pooling", 'cochran_mantel_haenszel'),
    "breslow_day_tarone": ("evsynth.methods.binary_pooling", 'breslow_day_tarone'),
    "influence": ("evsynth.methods.influence", 'influence'),
    "baujat": ("evsynth.methods.influence", 'baujat'),
    "cumulative": ("evsynth.methods.cumulative", 'cumulative'),
    "bayesian_cumulative": ("evsynth.methods.cumulative", 'bayesian_cumulative'),
    "trimfill": ("evsynth.methods.trimfill", 'trimfill'),
    "classical": ("evsynth.methods.classical", 'classical'),
    "exact_i2_h2": ("evsynth.methods.heterogeneity", 'exact_i2_h2'),
    "exact_hpd": ("evsynth.methods.heterogeneity", 'exact_hpd'),
    "shortest_interval": ("evsynth.methods.heterogeneity", 'shortest_interval'),
    "predictive_pvalues": ("evsynth.methods.predictive", 'predictive_pvalues'),
    "predict_at": ("evsynth.methods.regression", 'predict_at'),
}



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
    "model_average", "PSMA", "bias_adjusted", "rate_certainty", "network", "network_plot", "network_summary", "network_table", "node_split",
    "not_used", "pareto_k_table", "parse_prior", "pet_peese", "plots", "random_effects", "reml",
    "run_analysis", "savage_dickey", "selection", "split_by_outcome", "summarize", "used_effects",
    "write_report", "meta_regression_reml", "heterogeneity_draws", "i2_h2", "design_matrix", "with_study_columns",
    "fit_meta_regression", "rob_formula", "rob_subgroups", "median_control_risk", "summary_of_findings",
    "rma", "estimate_tau2", "heterogeneity_ci",
    "multilevel", "robust", "impute_covariance", "shared_control_covariance", "prior_source",
    "correlation_sensitivity", "multivariate",
    "mantel_haenszel", "peto", "cochran_mantel_haenszel", "breslow_day_tarone",
    "one_row_per_sample", "restrict_design", "prepost_weight_share",
    "influence", "baujat", "cumulative", "bayesian_cumulative", "trimfill", "classical", "exact_i2_h2", "exact_hpd", "shortest_interval", "predictive_pvalues", "predict_at",
]
