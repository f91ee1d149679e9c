# Reference figures for evsynth.methods.multilevel and evsynth.methods.robust (tests/test_multilevel.py,
# tests/test_robust.py). Run from tests/data:  Rscript reference/multilevel.R
# Writes the datasets (from R package metadat) as CSV beside this directory and the figures to
# reference/multilevel.json. Versions used are recorded in the JSON.
suppressPackageStartupMessages({library(metafor); library(metadat); library(clubSandwich); library(jsonlite)})
options(digits = 17)

write.csv(dat.konstantopoulos2011, "konstantopoulos2011.csv", row.names = FALSE)
write.csv(dat.assink2016, "assink2016.csv", row.names = FALSE)
write.csv(dat.berkey1998, "berkey1998.csv", row.names = FALSE)

fig <- function(fit) {
  list(beta = as.numeric(fit$beta), se = as.numeric(fit$se), sigma2 = as.numeric(fit$sigma2),
       tau2 = as.numeric(fit$tau2), rho = as.numeric(fit$rho), logLik = as.numeric(logLik(fit)),
       zval = as.numeric(fit$zval), ci_lb = as.numeric(fit$ci.lb), ci_ub = as.numeric(fit$ci.ub),
       QE = as.numeric(fit$QE), k = fit$k, optimizer = fit$optimizer_name)
}
crfig <- function(fit, cluster) {
  ct <- coef_test(fit, vcov = "CR2", cluster = cluster)
  list(beta = as.numeric(ct$beta), se = as.numeric(ct$SE), tstat = as.numeric(ct$tstat),
       df = as.numeric(ct$df_Satt), p = as.numeric(ct$p_Satt))
}
# metafor's likelihood surface is flat near the optimum (berkey1998's tau^2 differ by 1e-5 between its
# optimizers), so every model is fitted with several optimizers at tight tolerances and the fit with
# the highest log-likelihood is kept; its optimizer is recorded as "optimizer".
controls <- list(
  nlminb = list(optimizer = "nlminb", rel.tol = 1e-10, iter.max = 10000, eval.max = 10000),
  bfgs = list(optimizer = "optim", optmethod = "BFGS", reltol = 1e-15, maxit = 10000),
  nelder_mead = list(optimizer = "optim", optmethod = "Nelder-Mead", reltol = 1e-15, maxit = 100000))
best <- function(...) {
  call <- match.call()
  call[[1]] <- quote(rma.mv)
  env <- parent.frame()
  fits <- lapply(controls, function(ctl) {
    call$control <- ctl
    tryCatch(eval(call, env), error = function(e) NULL)
  })
  fits <- fits[!sapply(fits, is.null)]
  ll <- sapply(fits, function(f) as.numeric(logLik(f)))
  fit <- fits[[which.max(ll)]]
  fit$optimizer_name <- names(fits)[which.max(ll)]
  fit
}
out <- list(versions = list(metafor = as.character(packageVersion("metafor")),
                            metadat = as.character(packageVersion("metadat")),
                            clubSandwich = as.character(packageVersion("clubSandwich")),
                            R = R.version.string))

# konstantopoulos2011: schools within districts
dat <- dat.konstantopoulos2011
for (method in c("REML", "ML")) {
  fit <- best(yi, vi, random = ~ 1 | district/school, data = dat, method = method)
  out[[paste0("konstantopoulos2011_", method)]] <- fig(fit)
}
# with a moderator (year, centred) to check meta-regression
fit <- best(yi, vi, mods = ~ I(year - mean(year)), random = ~ 1 | district/school, data = dat)
out$konstantopoulos2011_REML_year <- fig(fit)

# assink2016: effect sizes (esid) within studies
dat <- dat.assink2016
fit <- best(yi, vi, random = ~ 1 | study/esid, data = dat)
out$assink2016_REML <- fig(fit)
out$assink2016_REML_CR2 <- crfig(fit, dat$study)
fit <- best(yi, vi, mods = ~ deltype, random = ~ 1 | study/esid, data = dat)
out$assink2016_REML_deltype <- fig(fit)
out$assink2016_REML_deltype_CR2 <- crfig(fit, dat$study)

# correlated effects (CE) working model, imputed r = 0.6 (clubSandwich::impute_covariance_matrix,
# the same V as metafor::vcalc(vi, cluster = study, obs = esid, rho = 0.6))
V <- impute_covariance_matrix(dat$vi, cluster = dat$study, r = 0.6, return_list = FALSE)
V2 <- vcalc(vi, cluster = study, obs = esid, rho = 0.6, data = dat)
stopifnot(max(abs(as.matrix(V) - as.matrix(V2))) < 1e-15)
fit <- best(yi, V, random = ~ 1 | study, data = dat)
out$assink2016_CE_r06 <- fig(fit)
out$assink2016_CE_r06_CR2 <- crfig(fit, dat$study)
# correlated and hierarchical effects (CHE): the same V with study/esid
fit <- best(yi, V, random = ~ 1 | study/esid, data = dat)
out$assink2016_CHE_r06 <- fig(fit)
out$assink2016_CHE_r06_CR2 <- crfig(fit, dat$study)

# berkey1998: bivariate (PD, AL), V from the reported covariances (vcalc rvars), struct = "UN"
dat <- dat.berkey1998
V <- vcalc(vi = 1, cluster = author, rvars = c(v1i, v2i), data = dat)
out$berkey1998_V <- unname(as.matrix(V))
for (method in c("REML", "ML")) {
  fit <- best(yi, V, mods = ~ outcome - 1, random = ~ outcome | trial, struct = "UN", data = dat,
              method = method)
  f <- fig(fit)
  f$coef_names <- rownames(fit$beta)
  out[[paste0("berkey1998_UN_", method)]] <- f
}

writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "reference/multilevel.json")
