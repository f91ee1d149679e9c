# Reference figures for tests/test_network_reference.py (issue 28): a common-effect network
# meta-analysis and every node split of a four-node network with three loops, fitted by metafor
# as weighted least squares (rma, method "FE", no intercept): the network model is
# y_i = d[treat_i] - d[comp_i] + e_i, d[control] = 0; the split model of comparison a-b gives the
# a-b studies their own coefficient `direct` (sign -1 for a study entered as b vs a) and keeps
# d for the rest; indirect = d_a - d_b, inconsistency = direct - indirect (a linear contrast).
# The data are synthetic (made up for the test), stored with the figures.
# Run from the repository root: Rscript tests/data/reference/network_metafor.R
library(metafor)
library(jsonlite)
dat <- data.frame(
  study_id = paste0("s", 1:9),
  treat = c("A", "A", "B", "B", "C", "B", "B", "C", "A"),
  comp = c("control", "control", "control", "control", "control", "A", "A", "B", "C"),
  yi = c(0.42, 0.31, 0.65, 0.80, 0.25, 0.30, 0.05, -0.55, 0.20),
  sei = c(0.15, 0.20, 0.18, 0.25, 0.22, 0.20, 0.24, 0.30, 0.25))
nodes <- c("A", "B", "C")
X <- sapply(nodes, function(t) (dat$treat == t) - (dat$comp == t))
net <- rma(dat$yi, sei = dat$sei, mods = ~ X - 1, method = "FE")
out <- list(metafor = as.character(packageVersion("metafor")), data = dat,
            network = list(technique = nodes, estimate = as.numeric(net$b), se = net$se), splits = list())
unit <- function(t) as.numeric(nodes == t)  # d_t as a contrast of the coefficients; control is 0
splits <- list(c("A", "B"), c("A", "C"), c("B", "C"), c("A", "control"), c("B", "control"), c("C", "control"))
for (s in splits) {
  a <- s[1]; b <- s[2]
  sign <- ifelse(dat$treat == a & dat$comp == b, 1, ifelse(dat$treat == b & dat$comp == a, -1, 0))
  Xs <- X; Xs[sign != 0, ] <- 0
  m <- rma(dat$yi, sei = dat$sei, mods = ~ cbind(Xs, sign) - 1, method = "FE")
  L_ind <- c(unit(a) - (if (b == "control") 0 else unit(b)), 0)
  L_dir <- c(0, 0, 0, 1)
  ind <- predict(m, newmods = rbind(L_ind))
  dir <- predict(m, newmods = rbind(L_dir))
  dif <- predict(m, newmods = rbind(L_dir - L_ind))
  out$splits[[paste(a, "vs", b)]] <- list(direct_studies = sum(sign != 0), direct = dir$pred, direct_se = dir$se,
                                          indirect = ind$pred, indirect_se = ind$se,
                                          inconsistency = dif$pred, se = dif$se,
                                          p_value = 2 * pnorm(-abs(dif$pred / dif$se)))
}
write(toJSON(out, auto_unbox = TRUE, digits = 15, pretty = TRUE), "tests/data/reference/network_metafor.json")
