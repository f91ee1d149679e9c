# Reference figures for tests/test_verdict_references.py (issue 28): subgroup estimates and the
# test for subgroup differences (with and without Knapp-Hartung) and prediction intervals of the
# REML and DL random-effects models, on metadat's dat.bcg (tests/data/bcg.csv), log risk ratios.
# Risk-of-bias judgements are assigned by allocation for the test (random: low, alternate: some
# concerns, systematic: high); they are a construction, not a published judgement.
# Run from the repository root: Rscript tests/data/reference/verdicts_metafor.R
library(metafor)
library(jsonlite)
bcg <- read.csv("tests/data/bcg.csv")
dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = bcg)
dat$rob <- c(random = "low", alternate = "some concerns", systematic = "high")[dat$alloc]
ctrl <- list(threshold = 1e-12, maxiter = 1000)  # converged REML (metafor stops at 1e-5 by default)
levels <- c("low", "some concerns", "high")
out <- list(metafor = as.character(packageVersion("metafor")), subgroups = list(), qm = list(), pi = list())
for (test in c("z", "knha")) {
  rows <- list()
  for (lv in levels) {
    m <- rma(yi, vi, data = dat, subset = rob == lv, method = "REML", test = test, control = ctrl)
    rows[[lv]] <- list(k = m$k, estimate = as.numeric(m$b), ci_low = m$ci.lb, ci_high = m$ci.ub, tau2 = m$tau2)
  }
  out$subgroups[[test]] <- rows
  m <- rma(yi, vi, mods = ~ factor(rob, levels = levels), data = dat, method = "REML", test = test, control = ctrl)
  out$qm[[test]] <- list(QM = m$QM, QM_df = m$QMdf[1], QM_df2 = m$QMdf[2], QM_p = m$QMp)
  for (method in c("REML", "DL")) {
    m <- rma(yi, vi, data = dat, method = method, test = test, control = ctrl)
    p <- predict(m)
    out$pi[[paste(method, test)]] <- list(mu = as.numeric(m$b), pi_low = p$pi.lb, pi_high = p$pi.ub)
  }
}
write(toJSON(out, auto_unbox = TRUE, digits = 15, pretty = TRUE), "tests/data/reference/verdicts_metafor.json")
