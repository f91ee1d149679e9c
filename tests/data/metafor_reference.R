# Reference figures from R's metafor for tests/test_effects_binary.py and tests/test_metaregression.py.
# Run from tests/data: Rscript metafor_reference.R  (metafor 3.8-1, metadat). CI does not need R:
# the outputs are committed beside this script.
suppressMessages(library(metafor))
dig <- 10
out <- list()
for (m in c("RR", "OR", "RD")) {
  bcg <- escalc(measure = m, ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
  out[[length(out) + 1]] <- data.frame(dataset = "bcg", measure = m, study = bcg$trial,
                                       yi = as.numeric(bcg$yi), vi = bcg$vi)
  niel <- escalc(measure = m, ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = dat.nielweise2007)
  out[[length(out) + 1]] <- data.frame(dataset = "nielweise2007", measure = m, study = niel$study,
                                       yi = as.numeric(niel$yi), vi = niel$vi)
}
write.csv(do.call(rbind, out), "metafor_escalc.csv", row.names = FALSE)

show <- function(label, fit) {
  cat("==", label, "\n")
  print(fit, digits = 4)
}
for (m in c("RR", "OR", "RD")) {
  show(paste("bcg", m, "REML"), rma(measure = m, ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg))
  show(paste("nielweise2007", m, "REML"), rma(measure = m, ai = ai, n1i = n1i, ci = ci, n2i = n2i,
                                               data = dat.nielweise2007))
}
for (m in c("RR", "OR", "RD")) {
  show(paste("nielweise2007", m, "REML drop00"), rma(measure = m, ai = ai, n1i = n1i, ci = ci, n2i = n2i,
                                                      data = dat.nielweise2007, drop00 = TRUE))
  # tau^2 near 0 and a flat restricted likelihood: metafor's default stop (tau^2 change < 1e-5)
  # leaves the 4th decimal of tau^2 unsettled, so the tests use the tightly converged fit.
  show(paste("nielweise2007", m, "REML drop00 threshold=1e-12"),
       rma(measure = m, ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = dat.nielweise2007, drop00 = TRUE,
           control = list(threshold = 1e-12)))
}
show("nielweise2007 OR REML add=1 to=all threshold=1e-12",
     rma(measure = "OR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = dat.nielweise2007, add = 1, to = "all",
         control = list(threshold = 1e-12)))
dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
show("bcg RR FE", rma(yi, vi, data = dat, method = "FE"))
show("bcg RR mods ~ ablat", rma(yi, vi, mods = ~ ablat, data = dat))
show("bcg RR mods ~ ablat knha", rma(yi, vi, mods = ~ ablat, data = dat, test = "knha"))
show("bcg RR mods ~ ablat + year", rma(yi, vi, mods = ~ ablat + year, data = dat))
show("bcg RR mods ~ factor(alloc)", rma(yi, vi, mods = ~ factor(alloc), data = dat))
show("bcg RR mods ~ ablat FE", rma(yi, vi, mods = ~ ablat, data = dat, method = "FE"))
# The same fits converged tightly (the tests use these; the default stop, tau^2 change < 1e-5, moves
# e.g. ci.lb of the ~ ablat intercept from -0.236750 to -0.236770, across a rounding edge).
tight <- list(threshold = 1e-12)
show("bcg RR mods ~ ablat threshold=1e-12", rma(yi, vi, mods = ~ ablat, data = dat, control = tight))
show("bcg RR mods ~ ablat knha threshold=1e-12", rma(yi, vi, mods = ~ ablat, data = dat, test = "knha", control = tight))
show("bcg RR mods ~ ablat + year threshold=1e-12", rma(yi, vi, mods = ~ ablat + year, data = dat, control = tight))
show("bcg RR mods ~ factor(alloc) threshold=1e-12", rma(yi, vi, mods = ~ factor(alloc), data = dat, control = tight))
# metafor stops Fisher scoring when tau^2 changes by < 1e-5 (control threshold); on the RD scale
# (tau^2 ~ 0.0014) that leaves the last printed digit of ci.ub unsettled. Converged tightly:
show("bcg RD REML threshold=1e-12", rma(measure = "RD", ai = tpos, bi = tneg, ci = cpos, di = cneg,
                                         data = dat.bcg, control = list(threshold = 1e-12)))
