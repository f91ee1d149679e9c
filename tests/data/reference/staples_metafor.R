# Reference figures for tests/test_tau2.py, test_binary_pooling.py, test_influence.py, test_trimfill.py,
# test_metaregression_fe_dl.py and test_effects_conventions.py (helper "staples", issue 24).
# Run from tests/data/reference:  Rscript staples_metafor.R   (metafor 3.8-1, metadat, jsonlite)
# Writes staples_metafor.json and the data sets ../yusuf1985.csv, ../hackshaw1998.csv.
# CI does not need R: the outputs are committed beside this script.
suppressMessages({library(metafor); library(jsonlite)})
pdf(NULL)  # baujat() draws; no Rplots.pdf
out <- list(metafor = as.character(packageVersion("metafor")))
num <- function(x) as.numeric(x)
bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)

# ---- tau^2 estimators and Q-profile confidence intervals (dat.bcg, log RR)
est <- list()
for (m in c("FE", "DL", "REML", "PM", "ML", "SJ", "HE", "EB", "HS")) {
  f <- rma(yi, vi, data = bcg, method = m)
  row <- list(b = num(f$b), se = f$se, zval = f$zval, pval = f$pval, ci_lb = f$ci.lb, ci_ub = f$ci.ub,
              tau2 = f$tau2, se_tau2 = f$se.tau2, I2 = f$I2, H2 = f$H2, QE = f$QE)
  if (m != "FE") {
    ci <- confint(f)$random
    row$ci_tau2 <- num(ci["tau^2", ]); row$ci_tau <- num(ci["tau", ])
    row$ci_I2 <- num(ci["I^2(%)", ]); row$ci_H2 <- num(ci["H^2", ])
    p <- predict(f); row$pi <- c(p$pi.lb, p$pi.ub)
  }
  # converged tightly (metafor's defaults stop PM's root search at tol 1.2e-4 and scoring at 1e-5)
  g <- rma(yi, vi, data = bcg, method = m, control = list(threshold = 1e-12, tol = 1e-12))
  row$tight <- list(b = num(g$b), se = g$se, tau2 = g$tau2, se_tau2 = g$se.tau2, I2 = g$I2, H2 = g$H2)
  if (m != "FE") {
    ci <- confint(g, control = list(tol = 1e-12))$random
    row$tight$ci_tau2 <- num(ci["tau^2", ]); row$tight$ci_I2 <- num(ci["I^2(%)", ])
    row$tight$ci_H2 <- num(ci["H^2", ])
  }
  est[[m]] <- row
}
out$bcg_estimators <- est
# Q-profile on homogeneous subsets: trials 2, 3, 4, 7, 10 (Q below even the lower chi^2 quantile: both
# bounds 0) and trials 1, 2, 3, 4, 10 (the lower bound 0)
out$bcg_subset_qprofile <- list()
for (rows in list(c(2, 3, 4, 7, 10), c(1, 2, 3, 4, 10))) {
  g <- rma(yi, vi, data = bcg[rows, ], method = "PM", control = list(tol = 1e-12))
  ci <- suppressMessages(confint(g, control = list(tol = 1e-12))$random)
  out$bcg_subset_qprofile[[length(out$bcg_subset_qprofile) + 1]] <- list(rows = rows, tau2 = g$tau2, QE = g$QE,
    ci_tau2 = num(ci["tau^2", ]), ci_I2 = num(ci["I^2(%)", ]), ci_H2 = num(ci["H^2", ]))
}

# ---- Mantel-Haenszel and Peto on dat.bcg
mh <- list()
for (m in c("RR", "OR", "RD")) {
  f <- rma.mh(measure = m, ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
  mh[[m]] <- list(b = num(f$b), se = f$se, zval = f$zval, pval = f$pval, ci_lb = f$ci.lb, ci_ub = f$ci.ub,
                  QE = f$QE, QEp = f$QEp, I2 = f$I2, H2 = f$H2, k = f$k,
                  CO = if (m == "OR") f$CO else NULL, COp = if (m == "OR") f$COp else NULL,
                  MH = if (m == "OR") f$MH else NULL, MHp = if (m == "OR") f$MHp else NULL,
                  TA = if (m == "OR") f$TA else NULL, TAp = if (m == "OR") f$TAp else NULL)
}
f <- rma.peto(ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
mh$PETO <- list(b = num(f$b), se = f$se, zval = f$zval, pval = f$pval, ci_lb = f$ci.lb, ci_ub = f$ci.ub,
                QE = f$QE, QEp = f$QEp, I2 = f$I2, H2 = f$H2, k = f$k)
out$bcg_mh <- mh
# sparse data with zero cells and a double-zero study (Yucel 2004): dat.nielweise2007
nw <- list()
for (m in c("RR", "OR", "RD")) {
  f <- rma.mh(measure = m, ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = dat.nielweise2007)
  nw[[m]] <- list(b = num(f$b), se = f$se, QE = f$QE, k = f$k, k_yi = f$k.yi, I2 = f$I2,
                  MH = if (m == "OR") f$MH else NULL, CO = if (m == "OR") f$CO else NULL)
}
f <- rma.peto(ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = dat.nielweise2007)
nw$PETO <- list(b = num(f$b), se = f$se, QE = f$QE, k = f$k, k_yi = f$k.yi, I2 = f$I2)
out$nielweise_mh <- nw

# ---- influence diagnostics (REML, dat.bcg); REML converged tightly (TIGHT) so that the refits agree
TIGHT <- list(threshold = 1e-12, tol = 1e-12)
f <- rma(yi, vi, data = bcg, control = TIGHT)
inf <- influence(f)
d <- as.data.frame(inf$inf)
out$bcg_influence <- list(rstudent = d$rstudent, dffits = d$dffits, cook_d = d$cook.d, cov_r = d$cov.r,
                          tau2_del = d$tau2.del, QE_del = d$QE.del, hat = d$hat, weight = d$weight,
                          dfbs = num(inf$dfbs$intrcpt), inf = as.character(d$inf),
                          is_infl = unname(inf$is.infl))
# dat.hackshaw1998 (37 studies, log OR): a data set with influential studies flagged
f2 <- rma(yi, vi, data = dat.hackshaw1998, control = TIGHT)
inf2 <- influence(f2)
d2 <- as.data.frame(inf2$inf)
out$hackshaw_influence <- list(rstudent = d2$rstudent, dffits = d2$dffits, cook_d = d2$cook.d, cov_r = d2$cov.r,
                               tau2_del = d2$tau2.del, QE_del = d2$QE.del, hat = d2$hat, weight = d2$weight,
                               dfbs = num(inf2$dfbs$intrcpt), is_infl = unname(inf2$is.infl))
# dat.bcg with trial 13 replaced by a large, precise outlier (yi 2, vi 0.005): flagged
yo <- bcg$yi; vo <- bcg$vi; yo[13] <- 2; vo[13] <- 0.005
inf3 <- influence(rma(yo, vo, control = TIGHT))
d3 <- as.data.frame(inf3$inf)
out$outlier_influence <- list(yi = num(yo), vi = vo, rstudent = d3$rstudent, dffits = d3$dffits, cook_d = d3$cook.d,
                              cov_r = d3$cov.r, hat = d3$hat, dfbs = num(inf3$dfbs$intrcpt),
                              is_infl = unname(inf3$is.infl))
b2 <- baujat(rma(yi, vi, data = dat.hackshaw1998, method = "FE"), progbar = FALSE)
out$hackshaw_baujat_fe <- list(x = b2$x, y = b2$y)
b <- baujat(f, progbar = FALSE)
out$bcg_baujat <- list(x = b$x, y = b$y)
# leave-one-out for the same fit, used by rstudent
l1 <- leave1out(f)
out$bcg_leave1out <- list(estimate = num(l1$estimate), se = num(l1$se), tau2 = num(l1$tau2), QE = num(l1$Q))

# ---- cumulative meta-analysis by year (REML and FE)
cum <- list()
for (m in c("REML", "FE", "DL")) {
  f <- rma(yi, vi, data = bcg, method = m, control = TIGHT)
  cu <- cumul(f, order = bcg$year)
  cum[[m]] <- list(order = as.character(cu$slab), estimate = num(cu$estimate), se = num(cu$se),
                   ci_lb = num(cu$ci.lb), ci_ub = num(cu$ci.ub), tau2 = num(cu$tau2), I2 = num(cu$I2),
                   QE = num(cu$Q), pval = num(cu$pval))
}
out$bcg_cumul <- cum

# ---- meta-regression on ablat: FE, DL, REML; predictions at ablat 10, 30, 50
mr <- list()
for (m in c("FE", "DL", "REML")) {
  f <- rma(yi, vi, mods = ~ ablat, data = bcg, method = m, control = TIGHT)
  p <- predict(f, newmods = c(10, 30, 50))
  mr[[m]] <- list(b = num(f$b), se = num(f$se), zval = num(f$zval), ci_lb = num(f$ci.lb), ci_ub = num(f$ci.ub),
                  tau2 = f$tau2, se_tau2 = f$se.tau2, I2 = f$I2, H2 = f$H2, R2 = if (is.null(f$R2)) NA else f$R2,
                  QE = f$QE, QM = f$QM, QMp = f$QMp,
                  pred = num(p$pred), pred_se = num(p$se), pred_ci_lb = num(p$ci.lb), pred_ci_ub = num(p$ci.ub),
                  pred_pi_lb = if (is.null(p$pi.lb)) NA else num(p$pi.lb),
                  pred_pi_ub = if (is.null(p$pi.ub)) NA else num(p$pi.ub))
}
out$bcg_metareg <- mr

# ---- trim-and-fill on dat.hackshaw1998 (log OR given as yi, vi)
hs <- dat.hackshaw1998
write.csv(hs[, c("study", "author", "year", "country", "design", "cases", "or", "or.lb", "or.ub", "yi", "vi")],
          "../hackshaw1998.csv", row.names = FALSE)
tf <- list()
for (m in c("FE", "REML", "DL")) for (e in c("L0", "R0")) for (side in c("auto", "left", "right")) {
  # REML converged tightly in every fit (the control list reaches trimfill's refits)
  f <- rma(yi, vi, data = hs, method = m, control = TIGHT)
  t <- if (side == "auto") trimfill(f, estimator = e, control = TIGHT) else
    trimfill(f, estimator = e, side = side, control = TIGHT)
  tf[[paste(m, e, side, sep = "_")]] <- list(k0 = t$k0, side = t$side, se_k0 = t$se.k0, p_k0 = t$p.k0,
    b = num(t$b), se = t$se, ci_lb = t$ci.lb, ci_ub = t$ci.ub, tau2 = t$tau2,
    fill = t$fill, yi = num(t$yi), vi = num(t$vi))
}
out$hackshaw_trimfill <- tf

# ---- escalc conventions: dat.yusuf1985 with to="if0all", drop00=TRUE; RD keeps double zeros
yu <- dat.yusuf1985
write.csv(yu, "../yusuf1985.csv", row.names = FALSE)
es <- list()
for (tab in unique(yu$table)) for (m in c("RR", "OR", "RD")) {
  s <- yu[yu$table == tab, ]
  e1 <- escalc(m, ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = s, to = "if0all", drop00 = TRUE)
  e0 <- escalc(m, ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = s)  # defaults: only0, drop00 = FALSE
  es[[length(es) + 1]] <- data.frame(table = tab, id = s$id, measure = m,
                                     yi_if0all = num(e1$yi), vi_if0all = num(e1$vi),
                                     yi_default = num(e0$yi), vi_default = num(e0$vi))
}
write.csv(do.call(rbind, es), "yusuf1985_escalc.csv", row.names = FALSE)

# ---- SMCR with the baseline SD and r only (metafor escalc "SMCR": sd1i, ri)
sm <- escalc("SMCR", m1i = c(12.1, 30.5), m2i = c(10.0, 28.0), sd1i = c(4.0, 6.5), ni = c(20, 35),
             ri = c(0.5, 0.7))
out$smcr <- list(m_post = c(12.1, 30.5), m_pre = c(10.0, 28.0), sd_pre = c(4.0, 6.5), n = c(20, 35),
                 r = c(0.5, 0.7), yi = num(sm$yi), vi = num(sm$vi))

# ---- dat.nielweise2007, RD with escalc's defaults (drop00 = FALSE keeps the double-zero study)
f <- rma(measure = "RD", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = dat.nielweise2007,
         control = list(threshold = 1e-12))
out$nielweise_rd_default <- list(k = f$k, b = num(f$b), se = f$se, tau2 = f$tau2, I2 = f$I2)

# ---- REML at the boundary: metafor's default stop (threshold 1e-5) halves steps to stay above 0 and
# stops at a small positive tau^2; the 248th of these simulated data sets shows the largest I^2.
set.seed(3)
for (i in 1:248) { v <- runif(6, 0.01, 0.1); y <- rnorm(6, 0, sqrt(v + 0.005)) }
f <- rma(y, v); g <- rma(y, v, control = list(threshold = 1e-12))
out$reml_boundary <- list(yi = y, vi = v, tau2_default = f$tau2, I2_default = f$I2, tau2_tight = g$tau2,
                          I2_tight = g$I2, b_default = num(f$b), b_tight = num(g$b))

writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, na = "null", null = "null"), "staples_metafor.json")
