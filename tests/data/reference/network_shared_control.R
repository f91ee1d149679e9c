# Reference figures for tests/test_network_shared_control.py (issue 23): a network meta-analysis
# whose multi-arm trial's contrasts share their control arm. Data: metadat's dat.senn2013 (26
# trials of glucose-lowering agents, HbA1c change; Willms 1999 has three arms). Each trial's
# contrasts are taken against its placebo arm (or, without one, its first listed arm); mean
# differences yi = m_t - m_c, vi = sd_t^2/n_t + sd_c^2/n_c, and two contrasts of one trial share
# the control arm's variance sd_c^2/n_c (the shared-control V). metafor: rma.mv with that V,
# treatment coefficients (treat minus comparator coding, placebo the reference) and the network's
# random effects, random = ~ contrast | study with rho = 1/2 (the usual consistency model), REML;
# and the same with tau^2 = 0 (common effect) and with V diagonal (what ignoring the shared control
# gives), so the test can show that V matters.
# Run from the repository root: Rscript tests/data/reference/network_shared_control.R
library(metafor)
library(metadat)
library(jsonlite)
d <- dat.senn2013
rows <- list()
for (s in unique(d$study)) {
  a <- d[d$study == s, ]
  ctrl <- if ("placebo" %in% a$treatment) which(a$treatment == "placebo") else 1
  for (k in setdiff(seq_len(nrow(a)), ctrl)) {
    rows[[length(rows) + 1]] <- data.frame(
      study = s, treat = a$treatment[k], comp = a$treatment[ctrl],
      yi = a$mi[k] - a$mi[ctrl], vi = a$sdi[k]^2 / a$ni[k] + a$sdi[ctrl]^2 / a$ni[ctrl],
      n_treat = a$ni[k], n_ctrl = a$ni[ctrl], sd_treat = a$sdi[k], sd_ctrl = a$sdi[ctrl],
      mean_treat = a$mi[k], mean_ctrl = a$mi[ctrl])
  }
}
dat <- do.call(rbind, rows)
dat$contrast <- paste(dat$treat, dat$comp, sep = " vs ")
V <- diag(dat$vi)
for (i in seq_len(nrow(dat))) for (j in seq_len(nrow(dat))) {
  if (i != j && dat$study[i] == dat$study[j] && dat$comp[i] == dat$comp[j]) V[i, j] <- dat$sd_ctrl[i]^2 / dat$n_ctrl[i]
}
nodes <- sort(setdiff(unique(c(dat$treat, dat$comp)), "placebo"))
X <- sapply(nodes, function(t) (dat$treat == t) - (dat$comp == t))
colnames(X) <- nodes
fit <- function(V, ...) rma.mv(dat$yi, V, mods = ~ X - 1, random = ~ contrast | study, rho = 1 / 2,
                               data = dat, ...)
reml <- fit(V)
diagonal <- fit(diag(dat$vi))
fe <- rma.mv(dat$yi, V, mods = ~ X - 1, data = dat)  # no random effects: common-effect network
fixed_tau <- fit(V, tau2 = 0.05)  # tau^2 fixed at 0.05: the estimate given tau
res <- function(m) list(technique = nodes, estimate = as.numeric(m$b), se = as.numeric(m$se),
                        tau2 = if (is.null(m$tau2) || length(m$tau2) == 0) 0 else as.numeric(m$tau2))
out <- list(metafor = as.character(packageVersion("metafor")), data = dat, V = V,
            reml = res(reml), reml_diagonal_V = res(diagonal), common_effect = res(fe),
            tau2_0.05 = res(fixed_tau),
            call = "rma.mv(yi, V, mods = ~ X - 1, random = ~ contrast | study, rho = 1/2)")
write(toJSON(out, auto_unbox = TRUE, digits = 15, pretty = TRUE, matrix = "rowmajor"),
      "tests/data/reference/network_shared_control.json")
