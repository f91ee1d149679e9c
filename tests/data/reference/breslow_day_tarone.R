# Breslow-Day and Tarone's tests of a common odds ratio, as metafor's rma.mh prints them
# (BD, BDp, TA, TAp, k.pos). Run: Rscript tests/data/reference/breslow_day_tarone.R
# (metafor and metadat from Debian: r-cran-metafor, r-cran-metadat) -> breslow_day_tarone.json
library(metafor)
library(jsonlite)
out <- list(metafor = as.character(packageVersion("metafor")))
get <- function(f) list(BD = f$BD, BDp = f$BDp, TA = f$TA, TAp = f$TAp, k_pos = f$k.pos, b = as.numeric(f$b))
out$bcg <- get(rma.mh(measure = "OR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg))
out$nielweise <- get(rma.mh(measure = "OR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = dat.nielweise2007))
# one table only: no test (df 0)
out$bcg_one <- get(rma.mh(measure = "OR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg[1, ]))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"),
           "tests/data/reference/breslow_day_tarone.json")
