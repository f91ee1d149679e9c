# Reference densities for evsynth's turner2015(...) / rhodes2015(...) priors (tests/test_informed_priors.py).
# bayesmeta is not installed here, so its TurnerEtAlPrior and RhodesEtAlPrior (with their parameter
# tables, transcribed from Turner et al. 2015 Table IV and Rhodes et al. 2015 Tables 3, A.3.1, A.3.2)
# are sourced from bayesmeta 3.4's R/bayesmeta.R (CRAN mirror github.com/cran/bayesmeta, commit
# e7eaba2af611b8cace198c31ee107ef7bda58b55, lines 1906-2191: from "# Turner & al. prior data" to the end
# of RhodesEtAlPrior), saved by the maintainer of this test as /tmp/bm/priors_from_bayesmeta.R:
#   git -C <mirror> show HEAD:R/bayesmeta.R | sed -n 1906,2191p > /tmp/bm/priors_from_bayesmeta.R
# Run from tests/data:  Rscript reference/informed_priors.R
suppressPackageStartupMessages(library(jsonlite))
source("/tmp/bm/priors_from_bayesmeta.R")
tau <- c(0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1, 1.5, 2, 3)
turner <- list(
  list(args = list(), key = "marginal"),
  list(args = list(outcome = "all-cause mortality", comparator1 = "pharmacological", comparator2 = "placebo / control"),
       key = "all_cause_mortality|pharma_vs_placebo"),
  list(args = list(outcome = "pain", comparator1 = "non-pharmacological", comparator2 = "placebo / control"),
       key = "pain|nonpharma_vs_placebo"),
  list(args = list(outcome = "subjective outcomes (various)", comparator1 = "non-pharmacological",
                   comparator2 = "non-pharmacological"), key = "subjective|nonpharma_vs_nonpharma"),
  list(args = list(outcome = "obstetric outcomes", comparator1 = "pharmacological", comparator2 = "pharmacological"),
       key = "obstetric|pharma_vs_pharma"),
  list(args = list(outcome = "mental health indicators", comparator1 = "non-pharmacological",
                   comparator2 = "pharmacological"), key = "mental_health|nonpharma_vs_pharma"))
rhodes <- list(
  list(args = list(), key = "marginal"),
  list(args = list(outcome = "obstetric outcome", comparator1 = "pharmacological", comparator2 = "placebo / control"),
       key = "obstetric|pharma_vs_placebo|other"),
  list(args = list(outcome = "mental health outcome", comparator1 = "non-pharmacological",
                   comparator2 = "placebo / control"), key = "mental_health|nonpharma|other"),
  list(args = list(outcome = "various subjectively measured outcomes", comparator1 = "pharmacological",
                   comparator2 = "pharmacological", area = "cancer"), key = "subjective|pharma_vs_pharma|cancer"),
  list(args = list(outcome = "biological marker", comparator1 = "non-pharmacological",
                   comparator2 = "non-pharmacological", area = "respiratory"), key = "biological_marker|nonpharma|respiratory"))
one <- function(fun, case) {
  p <- do.call(fun, case$args)
  list(key = case$key, parameters_tau2 = unname(p$parameters["tau^2", ]), parameters_tau = unname(p$parameters["tau", ]),
       label = attr(p$dprior, "bayesmeta.label"), tau = tau, density = p$dprior(tau), quantiles = p$qprior(c(0.025, 0.5, 0.975)))
}
tables <- list(
  turner_mu = TurnerEtAlParameters[, , "mu"], turner_sigma = TurnerEtAlParameters[, , "sigma"],
  rhodes_location = lapply(c(other = "other", respiratory = "respiratory", cancer = "cancer"),
                           function(a) RhodesEtAlParameters[, , "location", a]),
  rhodes_scale = lapply(c(other = "other", respiratory = "respiratory", cancer = "cancer"),
                        function(a) RhodesEtAlParameters[, , "scale", a]))
out <- list(source = "bayesmeta 3.4 R/bayesmeta.R (github.com/cran/bayesmeta@e7eaba2)",
            tables = lapply(tables, function(t) if (is.list(t)) lapply(t, function(m) unname(as.list(as.data.frame(m))))
                                                else unname(as.list(as.data.frame(t)))),
            turner_outcomes = dimnames(TurnerEtAlParameters)$outcome,
            turner_comparisons = dimnames(TurnerEtAlParameters)$comparison,
            rhodes_outcomes = dimnames(RhodesEtAlParameters)$outcome,
            rhodes_comparisons = dimnames(RhodesEtAlParameters)$comparison,

            turner = lapply(turner, function(c) one(TurnerEtAlPrior, c)),
            rhodes = lapply(rhodes, function(c) one(RhodesEtAlPrior, c)))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "reference/informed_priors.json")
