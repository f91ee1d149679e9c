# Reference figures for tests/test_evidence.py: effect sizes of the massage rows whose SD of change
# comes from a printed t (or exact p), of p-derived rows without means, and of rank-test p-values,
# computed with metafor's escalc from the printed numbers (studies/massage.csv).
# Run: Rscript tests/data/reference/paired_statistics.R > tests/data/reference/paired_statistics.json
suppressMessages(library(metafor))
library(jsonlite)

out <- list(metafor = as.character(packageVersion("metafor")))
row <- function(es) list(yi = unname(es$yi[1]), vi = unname(es$vi[1]))

# Pre/post with both SDs and a printed t: SD of change = |md| sqrt(n) / t, implied r from the SDs.
implied <- function(m_pre, m_post, sd_pre, sd_post, n, t) {
  sd_d <- abs(m_post - m_pre) * sqrt(n) / t
  r <- (sd_pre^2 + sd_post^2 - sd_d^2) / (2 * sd_pre * sd_post)
  list(sd_change = sd_d, r = r)
}
for (s in list(
  list(id = "viswanath2016", m_pre = 7.33, m_post = 15.56, sd_pre = 4.86, sd_post = 8.38, n = 30, t = 4.22),
  list(id = "dewi2024_urination", m_pre = 4.55, m_post = 7.20, sd_pre = 0.50, sd_post = 0.70, n = 44, t = 17.87),
  list(id = "dewi2024_weight", m_pre = 2858.25, m_post = 2881.66, sd_pre = 180.62, sd_post = 180.96, n = 44,
       t = 55.33))) {
  imp <- implied(s$m_pre, s$m_post, s$sd_pre, s$sd_post, s$n, s$t)
  # metafor SMCR standardises by sd1i: occasion 1 = post (m1i), so sd1i is given the baseline SD
  smcr_t <- escalc(measure = "SMCR", m1i = s$m_post, m2i = s$m_pre, sd1i = s$sd_pre, ni = s$n, ri = imp$r)
  smcr_assumed <- escalc(measure = "SMCR", m1i = s$m_post, m2i = s$m_pre, sd1i = s$sd_pre, ni = s$n, ri = 0.5)
  smcc_t <- escalc(measure = "SMCC", m1i = s$m_post, m2i = s$m_pre, sd1i = s$sd_post, sd2i = s$sd_pre, ni = s$n,
                   ri = max(min(imp$r, 0.999999), -0.999999))
  out[[s$id]] <- list(sd_change = imp$sd_change, r_implied = imp$r, SMCR_t = row(smcr_t),
                      SMCR_assumed_r = row(smcr_assumed), SMCC_t = row(smcc_t))
}

# Pre/post from p alone (no means, no SDs): with SD of change 1, md = t / sqrt(n), raw SD = 1 / sqrt(2 (1 - r)).
prepost_from_t <- function(t, n, r = 0.5) {
  row(escalc(measure = "SMCR", m1i = t / sqrt(n), m2i = 0, sd1i = 1 / sqrt(2 * (1 - r)), ni = n, ri = r))
}
out$saputri2015_marmet <- prepost_from_t(qt(1 - 0.001 / 2, 14), 15)          # paired t, p = 0.001
out$fara2022 <- prepost_from_t(qnorm(1 - 0.0005 / 2), 20)                    # Wilcoxon, p < 0.0005 as the p
out$pratama2023 <- prepost_from_t(qt(1 - 0.012 / 2, 35), 36)                 # test not named: t
# Two groups from t (escalc's ti), t from the p: t quantile, or the normal quantile for a rank test.
out$jose_manipal <- row(escalc(measure = "SMD", ti = qt(1 - 0.023 / 2, 38), n1i = 20, n2i = 20))
out$kundarti2025 <- row(escalc(measure = "SMD", ti = qnorm(1 - 0.0005 / 2), n1i = 26, n2i = 26))
out$medan_neck <- row(escalc(measure = "SMD", ti = qt(1 - 0.0005 / 2, 50), n1i = 26, n2i = 26))
out$hesti2017_as_t <- row(escalc(measure = "SMD", ti = qt(1 - 0.0005 / 2, 42), n1i = 22, n2i = 22))
out$hesti2017_as_rank <- row(escalc(measure = "SMD", ti = qnorm(1 - 0.0005 / 2), n1i = 22, n2i = 22))
cat(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "\n")
