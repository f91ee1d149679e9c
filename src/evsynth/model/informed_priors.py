"""Empirically informed priors for the between-study SD, from the Cochrane Database of Systematic
Reviews, by outcome type and type of comparison:

- Turner RM, Jackson D, Wei Y, Thompson SG, Higgins JPT. Predictive distributions for between-study
  heterogeneity and simple methods for their application in Bayesian meta-analysis. Stat Med
  2015;34(6):984-998, Table IV: log(tau^2) ~ N(mu, sigma^2) for log odds ratios (binary outcomes);
  without arguments the general (marginal) LN(-2.56, 1.74^2) of its p. 993.
- Rhodes KM, Turner RM, Higgins JPT. Predictive distributions were developed for the extent of
  heterogeneity in meta-analyses of continuous outcome data. J Clin Epidemiol 2015;68(1):52-60,
  Table 3 (and A.3.1 respiratory, A.3.2 cancer): log(tau^2) ~ t_5(location, scale) for
  standardized mean differences; without arguments the general t_5(-3.44, 2.59) (its Sec. 3.3).

As priors on tau (what evsynth's models take) these are lognormal(mu / 2, sigma / 2) and
logstudent_t(5, location / 2, scale / 2). The tables below are bayesmeta 3.4's transcription
(TurnerEtAlPrior / RhodesEtAlPrior, C. Roever, CRAN), column by column as there; the tests check
cells against the published values they quote and the densities against bayesmeta's functions.
Argument names are short slugs (the spellings below). Data only: evsynth.model.priors builds the
priors from these tables (turner2015, rhodes2015, prior_source).
"""

from __future__ import annotations

TURNER_OUTCOMES = {
    "all_cause_mortality": "all-cause mortality",
    "obstetric": "obstetric outcomes",
    "cause_specific_mortality": "cause-specific mortality / major morbidity event / composite (mortality or morbidity)",
    "resource_use": "resource use / hospital stay / process",
    "surgical_device": "surgical / device related success / failure",
    "withdrawals": "withdrawals / drop-outs",
    "internal_structure": "internal / structure-related outcomes",
    "general_physical_health": "general physical health indicators",
    "adverse_events": "adverse events",
    "infection": "infection / onset of new disease",
    "signs_symptoms": "signs / symptoms reflecting continuation / end of condition",
    "pain": "pain",
    "quality_of_life": "quality of life / functioning (dichotomized)",
    "mental_health": "mental health indicators",
    "biological_markers": "biological markers (dichotomized)",
    "subjective": "subjective outcomes (various)",
}
TURNER_COMPARISONS = {
    "pharma_vs_placebo": "pharmacological vs. placebo / control",
    "pharma_vs_pharma": "pharmacological vs. pharmacological",
    "nonpharma_vs_placebo": "non-pharmacological vs. placebo / control",
    "nonpharma_vs_pharma": "non-pharmacological vs. pharmacological",
    "nonpharma_vs_nonpharma": "non-pharmacological vs. non-pharmacological",
}
# Table IV, mu and sigma of log(tau^2): one tuple per comparison, the outcomes in TURNER_OUTCOMES' order
_TURNER_MU = {
    "pharma_vs_placebo": (-3.95, -3.52, -3.71, -2.34, -2.14, -2.99, -2.71, -2.29, -1.87, -2.49, -2.06, -1.83,
                          -2.54, -2.12, -1.77, -2.70),
    "pharma_vs_pharma": (-4.18, -3.75, -3.95, -2.58, -2.37, -3.23, -2.94, -2.53, -2.10, -2.73, -2.29, -2.06,
                         -2.78, -2.35, -2.00, -2.93),
    "nonpharma_vs_placebo": (-4.17, -3.74, -3.93, -2.56, -2.36, -3.21, -2.93, -2.51, -2.10, -2.71, -2.28, -2.05,
                             -2.77, -2.34, -1.99, -2.92),
    "nonpharma_vs_pharma": (-2.92, -2.49, -2.68, -1.31, -1.11, -1.96, -1.67, -1.26, -0.84, -1.46, -1.03, -0.80,
                            -1.51, -1.09, -0.74, -1.67),
    "nonpharma_vs_nonpharma": (-3.50, -3.08, -3.27, -1.90, -1.69, -2.55, -2.26, -1.85, -1.43, -2.05, -1.61, -1.38,
                               -2.10, -1.67, -1.33, -2.26),
}
_TURNER_SIGMA = {
    "pharma_vs_placebo": (1.34, 1.74, 1.74, 1.74, 1.74, 1.74, 1.74, 1.53, 1.52, 1.52, 1.51, 1.52, 1.54, 1.53,
                          1.52, 1.52),
    "pharma_vs_pharma": (1.41, 1.79, 1.79, 1.79, 1.79, 1.79, 1.79, 1.58, 1.58, 1.58, 1.58, 1.58, 1.60, 1.60,
                         1.58, 1.58),
    "nonpharma_vs_placebo": (1.55, 1.91, 1.91, 1.91, 1.91, 1.91, 1.92, 1.72, 1.71, 1.71, 1.71, 1.71, 1.73, 1.72,
                             1.71, 1.71),
    "nonpharma_vs_pharma": (1.02, 1.50, 1.51, 1.50, 1.50, 1.51, 1.51, 1.25, 1.24, 1.24, 1.24, 1.25, 1.27, 1.27,
                            1.24, 1.25),
    "nonpharma_vs_nonpharma": (1.26, 1.68, 1.68, 1.68, 1.68, 1.68, 1.68, 1.46, 1.45, 1.45, 1.45, 1.45, 1.47,
                               1.47, 1.45, 1.45),
}
TURNER_GENERAL = (-2.56, 1.74)

RHODES_OUTCOMES = {
    "obstetric": "obstetric outcome",
    "resource_use": "resource use and hospital stay / process",
    "internal_structure": "internal and external structure-related outcome",
    "general_physical_health": "general physical health and adverse event and pain and quality of life / functioning",
    "signs_symptoms": "signs / symptoms reflecting continuation / end of condition and infection / onset of new "
                      "acute / chronic disease",
    "mental_health": "mental health outcome",
    "biological_marker": "biological marker",
    "subjective": "various subjectively measured outcomes",
}
RHODES_COMPARISONS = {
    "pharma_vs_placebo": "pharmacological vs. placebo / control",
    "pharma_vs_pharma": "pharmacological vs. pharmacological",
    "nonpharma": "non-pharmacological (any)",
}
RHODES_AREAS = {"other": "Table 3", "respiratory": "Table A.3.1 (respiratory diseases)",
                "cancer": "Table A.3.2 (cancer)"}
# location and scale of log(tau^2) ~ t_5: area -> comparison -> one value per outcome (RHODES_OUTCOMES' order)
_RHODES_LOCATION = {
    "other": {"pharma_vs_placebo": (-4.13, -2.55, -2.43, -3.16, -3.00, -2.99, -3.41, -2.76),
              "pharma_vs_pharma": (-4.40, -2.83, -2.70, -3.44, -3.27, -3.27, -3.68, -3.03),
              "nonpharma": (-3.99, -2.41, -2.29, -3.02, -2.86, -3.85, -3.27, -2.62)},
    "respiratory": {"pharma_vs_placebo": (-6.03, -4.46, -4.33, -5.07, -4.90, -4.90, -5.31, -4.66),
                    "pharma_vs_pharma": (-6.31, -4.73, -4.61, -5.34, -5.18, -5.17, -5.59, -4.94),
                    "nonpharma": (-5.89, -4.32, -4.19, -4.93, -4.76, -4.76, -5.17, -4.52)},
    "cancer": {"pharma_vs_placebo": (-1.57, 0.01, -0.13, -0.60, -0.44, -0.43, -0.85, -0.20),
               "pharma_vs_pharma": (-1.85, -0.27, -0.14, -0.88, -0.71, -0.71, -1.13, -0.48),
               "nonpharma": (-1.43, 0.15, 0.27, -0.46, -0.30, -0.29, -0.71, -0.06)},
}
_RHODES_SCALE = {
    "other": {"pharma_vs_placebo": (2.34, 2.73, 2.50, 2.50, 2.50, 2.16, 2.83, 2.58),
              "pharma_vs_pharma": (2.31, 2.70, 2.46, 2.44, 2.47, 2.14, 2.78, 2.59),
              "nonpharma": (2.11, 2.57, 2.32, 2.27, 2.33, 1.93, 2.66, 2.41)},
    "respiratory": {"pharma_vs_placebo": (2.36, 2.74, 2.51, 2.51, 2.50, 2.17, 2.83, 2.59),
                    "pharma_vs_pharma": (2.31, 2.70, 2.46, 2.45, 2.47, 2.14, 2.78, 2.59),
                    "nonpharma": (2.21, 2.57, 2.33, 2.28, 2.33, 1.94, 2.66, 2.41)},
    "cancer": {"pharma_vs_placebo": (2.45, 2.83, 2.61, 2.61, 2.60, 2.28, 2.93, 2.68),
               "pharma_vs_pharma": (2.41, 2.79, 2.56, 2.55, 2.57, 2.25, 2.87, 2.68),
               "nonpharma": (2.24, 2.68, 2.45, 2.40, 2.46, 2.08, 2.78, 2.53)},
}
RHODES_GENERAL = (-3.44, 2.59)
RHODES_DF = 5.0

TURNER_CITATION = ("Turner RM et al. Predictive distributions for between-study heterogeneity ... "
                   "Stat Med 2015;34:984-998")
RHODES_CITATION = ("Rhodes KM, Turner RM, Higgins JPT. Predictive distributions ... continuous outcome data. "
                   "J Clin Epidemiol 2015;68:52-60")
