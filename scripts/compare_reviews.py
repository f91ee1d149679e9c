"""Our pooled SMD for massage versus control next to published meta-analyses of breast massage.

Fits evsynth's models to studies/massage.csv, reads the published pooled results (by default
../shared/literature/reviews.csv, beside the checkout), and writes docs/literature_comparison.md:
the side-by-side table and a plain-words account of the differences. Every number in the file
comes from this run; rerun after changing the data or the models.

    .venv/bin/python scripts/compare_reviews.py [--reviews PATH] [--out docs/literature_comparison.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import evsynth
from evsynth.engines.builders import build_model
from evsynth.methods.diagnostics import diagnose
from evsynth.methods.analysis import group_by_outcome
from evsynth.methods.designs import ROWS as DESIGN_ROWS
from evsynth.methods.designs import design_moderator
from evsynth.effects import compute_effects, uncontrolled, used_effects
from evsynth.methods.summary import summarize
from evsynth.effects.techniques import format_coverage, technique_coverage
from evsynth.methods.own_data import own_data
from evsynth.engines.fit import fit
from evsynth.methods.frequentist import dersimonian_laird
from evsynth.data.studies import load_studies

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REVIEWS = ROOT.parent / "shared" / "literature" / "reviews.csv"
OUTCOME = "milk volume"  # the reviews pool milk volume / milk production


def _subset(effects: pd.DataFrame, mask) -> pd.DataFrame:
    out = effects[mask].reset_index(drop=True)
    out.attrs = dict(effects.attrs)
    return out


def _bayes_row(label: str, effects: pd.DataFrame, model: str, fit_options: dict, anchors: list[float],
               fits: dict | None = None) -> dict:
    idata = fit(build_model(model, effects), **fit_options)
    if fits is not None:
        fits[label] = idata
    mu = idata.posterior["mu"].to_numpy().ravel()
    used = used_effects(effects)
    verdict = diagnose(idata)
    row = {"source": label, "studies": len(used), "participants": int(used["n_total"].sum()),
           "estimate": float(np.median(mu)), "low": float(np.quantile(mu, 0.025)),
           "high": float(np.quantile(mu, 0.975)), "interval": "95% CrI", "P(>0)": float((mu > 0).mean()),
           "diagnostics": verdict.verdict, "study_ids": ", ".join(used["study_id"])}
    row |= {f"P(>{a:g})": float((mu > a).mean()) for a in anchors}
    if not verdict.ok:
        print(f"DIAGNOSTICS FAILED for {label!r}:\n{verdict}", file=sys.stderr)
    return row


def our_results(studies: pd.DataFrame, fit_options: dict, anchors: list[float]) -> pd.DataFrame:
    censored = compute_effects(studies)  # default: p-value bounds censored (SMD)
    bound_as_p = compute_effects(studies, p_bound="conservative")
    milk_c = _subset(censored, censored["outcome"] == OUTCOME)
    milk_b = _subset(bound_as_p, bound_as_p["outcome"] == OUTCOME)
    controlled = _subset(milk_c, ~uncontrolled(milk_c))
    pooled = group_by_outcome(censored, pool_outcomes=True)["all outcomes (SMD)"]
    pooled_outcomes = " + ".join(sorted(used_effects(pooled)["outcome"].unique()))
    fits: dict = {}
    rows = [
        _bayes_row(f"evsynth: {OUTCOME}, random effects, p bounds censored (primary)", milk_c,
                   "random_effects", fit_options, anchors),
        _bayes_row(f"evsynth: {OUTCOME}, per-technique model (`evsynth fit` default), pooled mu", milk_c,
                   "by_technique", fit_options, anchors, fits),
        _bayes_row(f"evsynth: {OUTCOME}, random effects, p bound used as p (sensitivity)", milk_b,
                   "random_effects", fit_options, anchors),
        _bayes_row(f"evsynth: {OUTCOME}, controlled rows only (pre/post dropped), random effects, censored",
                   controlled, "random_effects", fit_options, anchors),
        _bayes_row(f"evsynth: all outcomes pooled ({pooled_outcomes}; lower-is-better rows sign-flipped), "
                   "random effects, censored", pooled, "random_effects", fit_options, anchors),
    ]
    used = used_effects(milk_b)
    dl = dersimonian_laird(used["yi"], used["vi"])
    rows.append({"source": f"evsynth: {OUTCOME}, frequentist DerSimonian-Laird, p bound used as p",
                 "studies": dl.k, "participants": int(used["n_total"].sum()), "estimate": dl.mu,
                 "low": dl.ci_low, "high": dl.ci_high, "interval": "95% CI", "i2_percent": dl.I2,
                 "study_ids": ", ".join(used["study_id"])})
    for r in used_effects(milk_c).query("design == 'two_group'").itertuples():  # controlled comparisons alone
        single = {"source": f"{r.study_id} alone (controlled {OUTCOME} comparison)", "studies": 1,
                  "participants": int(r.n_total), "study_ids": r.study_id}
        if r.censored:  # only known to lie beyond the effect at the p bound
            single |= {"estimate": r.yi, "low": r.yi, "high": np.inf, "interval": "lower bound"}
        else:
            single |= {"estimate": r.yi, "low": r.yi - 1.96 * r.sei, "high": r.yi + 1.96 * r.sei, "interval": "95% CI"}
        rows.append(single)
    out = pd.DataFrame(rows)
    (by_technique,) = fits.values()
    out.attrs["techniques"] = format_coverage(technique_coverage(milk_c, summarize(by_technique),
                                                                 own=own_data(milk_c)))  # as evsynth fit prints it
    out.attrs["design"] = design_moderator(milk_c)
    return out


def _markdown_table(frame: pd.DataFrame) -> str:
    cells = frame.astype(object).where(frame.notna(), "")
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def published(path: Path) -> pd.DataFrame:
    reviews = pd.read_csv(path)
    return pd.DataFrame({"source": reviews["review"] + " (doi " + reviews["doi"] + ")",
                         "studies": reviews["studies"], "participants": reviews["participants"],
                         "estimate": reviews["estimate"], "low": reviews["ci_low"], "high": reviews["ci_high"],
                         "interval": "95% CI", "i2_percent": reviews["i2_percent"],
                         "outcome": reviews["outcome"], "note": reviews["note"]})


def _fmt(x, digits=2) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    if isinstance(x, float) and np.isinf(x):
        return "∞"
    return f"{x:.{digits}f}" if isinstance(x, (float, np.floating)) else str(x)


def markdown(ours: pd.DataFrame, theirs: pd.DataFrame, studies: pd.DataFrame, fit_options: dict,
             reviews_path: Path) -> str:
    table = ["| source | studies | participants | SMD | 95% interval | I² % | diagnostics |", "|---|---|---|---|---|---|---|"]
    for r in pd.concat([theirs, ours], ignore_index=True).to_dict("records"):
        participants = "" if pd.isna(r.get("participants")) else str(int(r["participants"]))
        if r["interval"] == "lower bound":
            estimate, interval = f"> {_fmt(r['low'])}", "only a lower bound (p printed as a bound, no SDs)"
        else:
            estimate, interval = _fmt(r["estimate"]), f"{_fmt(r['low'])} to {_fmt(r['high'])} ({r['interval']})"
        table.append(f"| {r['source']} | {int(r['studies'])} | {participants} | {estimate} | {interval} "
                     f"| {_fmt(r.get('i2_percent'), 0)} | {r.get('diagnostics', '') if pd.notna(r.get('diagnostics')) else ''} |")

    primary = ours.iloc[0]
    bound = ours.iloc[2]
    review = theirs.loc[theirs["studies"].idxmax()]  # the largest published review
    effects = compute_effects(studies)
    n_rows, n_used = len(effects), len(used_effects(effects))
    levels = ", ".join(f"{n} {'were' if n > 1 else 'was'} read from {'an' if level == 'abstract' else 'a'} {level}"
                       + ("" if level == "abstract" else " article") for level, n in studies["source_level"].value_counts().items())
    no_full = "" if "full text" in set(studies["source_level"]) else "; none from a full text"
    routes = used_effects(effects)["se_route"]
    n_from_p = int(routes.isin(["p_value", "p_bound"]).sum())
    from_p = f"{n_from_p} {'has' if n_from_p == 1 else 'have'}"
    milk = effects[effects["outcome"] == OUTCOME]
    anchor_cols = [c for c in ours.columns if c.startswith("P(>") and c != "P(>0)"]
    probs = "; ".join(f"P(pooled SMD {c[2:-1].replace('>', '> ')}) = {primary[c]:.2f}" for c in anchor_cols)
    n_inside = sum(primary["low"] <= e <= primary["high"] for e in theirs["estimate"])
    contains_all = n_inside == len(theirs)
    width_ours, width_review = primary["high"] - primary["low"], review["high"] - review["low"]
    milk_rows = used_effects(effects[effects["outcome"] == OUTCOME])
    censored_ids = ", ".join(milk_rows.loc[milk_rows["censored"], "study_id"]) or f"none of the {OUTCOME} rows"
    rank_bound = milk_rows[(milk_rows["se_route"] == "p_bound") & ~milk_rows["censored"].astype(bool)]
    rank_ids = ", ".join(f"{r.study_id} ({r.test})" for r in rank_bound.itertuples()) or "none"
    randomised_ids = ", ".join(milk_rows.loc[milk_rows["randomised"] == "yes", "study_id"]) or "none"
    sign_only = set(studies.loc[studies["effect_sign"].notna(), "study_id"])
    sign_ids = ", ".join(i for i in milk_rows["study_id"] if i in sign_only) or "none"
    change_rows = effects[(effects["outcome"] == OUTCOME) & (effects["means"] == "change") & ~effects["used"]
                          & effects["why_not"].str.startswith("two-group means are change scores")]
    change_ids = ", ".join(change_rows["study_id"]) or "none"
    pooled_note = group_by_outcome(effects, pool_outcomes=True)["all outcomes (SMD)"].attrs.get("sample_note", "")
    milk_used = used_effects(milk)  # the effect table carries each row's source_level (provenance kept)
    prepost = milk_used.query("design == 'pre_post'")
    prepost_text = ", ".join(f"{r.study_id} (source: {r.source_level})" for r in prepost.itertuples()) or "none"
    techniques = " and ".join(sorted(milk_used["technique"].unique()))
    units = " and ".join(sorted(milk_used["unit"].dropna().unique()))
    h2h = effects[effects["used"] & effects["head_to_head"]]
    h2h_text = "; ".join(f"{r.technique} vs {r.comparator} ({r.study_id}, {r.outcome})" for r in h2h.itertuples())
    failed = ours[ours.get("diagnostics", pd.Series(dtype=str)).eq("FAIL")]["source"].tolist()
    controlled_row = ours[ours["source"].str.contains("controlled rows only")].iloc[0]
    design = ours.attrs["design"]
    coverage = ours.attrs["techniques"]
    estimated = {t: len(ids.split(", ")) for t, ids in
                 coverage.loc[coverage["status"] == "estimate", ["technique", "studies_used"]].itertuples(index=False)}
    no_study = ", ".join(coverage.loc[coverage["status"] == "no usable study", "technique"])

    lines = [
        "# evsynth's pooled effect next to published meta-analyses of breast massage",
        "",
        f"Generated by `scripts/compare_reviews.py` (evsynth {evsynth.__version__}) from `studies/massage.csv` and "
        f"`{reviews_path.name}` (published pooled results, `../shared/literature/`). Bayesian fits: "
        f"{fit_options['chains']} chains x {fit_options['draws']} draws, seed {fit_options['seed']}, sampler "
        f"{fit_options['sampler']}, default priors "
        "(mu ~ Normal(0, 1), tau ~ HalfNormal(0.5)); rows are posterior medians with 95% equal-tailed credible "
        "intervals. Rerun the script after any change to the data or models; do not edit the numbers by hand.",
        "",
    ]
    if failed:
        lines += [f"**DIAGNOSTICS FAILED for: {', '.join(failed)}. Those rows are not trustworthy.**", ""]
    lines += table + [
        "",
        "| evsynth row | studies used |",
        "|---|---|",
        *[f"| {r['source']} | {r['study_ids']} |" for r in ours.to_dict("records")],
        "",
        f"## Every technique in the {OUTCOME} data (per-technique model)",
        "",
        "Posterior median [95% CrI] of each technique's SMD versus control, or why there is none "
        "(`evsynth.effects.techniques.technique_coverage`, as printed by `evsynth fit`).",
        "",
        _markdown_table(ours.attrs["techniques"]),
        "",
        "## Design: controlled versus pre/post studies",
        "",
        "Random-effects meta-regression on a pre/post indicator (`evsynth.methods.designs.design_moderator`, exact "
        "engine): the controlled mean, the pre/post mean and their difference.",
        "",
        _markdown_table(design.reset_index().round(2)),
        "",
        "## How far apart, in plain words",
        "",
        f"Our primary estimate for {OUTCOME} is an SMD of {primary['estimate']:.2f} with a 95% credible interval from "
        f"{primary['low']:.2f} to {primary['high']:.2f}; the largest published review, {review['source']}, "
        f"reports {review['estimate']:.2f} ({review['low']:.2f} to {review['high']:.2f}). Our interval contains "
        f"{'all of the' if contains_all else f'{n_inside} of the {len(theirs)}'} published estimates and is "
        f"{width_ours / width_review:.1f} times as wide as that review's. {probs}; "
        f"P(pooled SMD > 0) = {primary['P(>0)']:.2f}. In short: "
        + ("our data do not contradict the reviews, but on their own they cannot confirm or refine them."
           if contains_all else "our data disagree with at least one published estimate.")
        + " The reasons:",
        "",
        f"- **Few usable studies.** Of the {n_rows} encoded comparisons only {n_used} can enter a pairwise model, and "
        f"only {primary['studies']} of them measure {OUTCOME} ({primary['participants']} mothers), against "
        f"{int(review['studies'])} trials and {int(review['participants'])} participants in the review. With "
        f"{primary['studies']} studies the between-study SD (tau) is barely informed by the data, so its prior "
        "carries much of the uncertainty, which widens the interval for the mean. (The frequentist "
        "DerSimonian-Laird interval is narrower because it plugs in one estimate of tau as if it were known, which "
        "with so few studies understates the uncertainty.)",
        f"- **Abstracts only.** Of the {n_rows} rows, {levels}{no_full}. Group sizes, SDs and test "
        "statistics are usually in tables an abstract leaves out, so most rows cannot be used at all (their "
        f"reasons are printed by `evsynth fit`), and of the {n_used} usable ones {from_p} "
        "a standard error back-calculated from a p-value or its bound rather than computed from SDs.",
        f"- **P-values printed only as bounds.** A printed \"p = 0.000\" says only that p < 0.0005; we invent no "
        f"exact value. From a t-test or an unnamed test such a row enters as censored (here: {censored_ids}): the "
        "effect is known only to be at least the effect at the bound. From a rank test the bound is used as the p, "
        f"converted with the normal quantile, and never censored ({rank_ids}; studies/README.md, \"Rank tests\"). "
        f"Treating every bound as the p-value gives {bound['estimate']:.2f} ({bound['low']:.2f} to "
        f"{bound['high']:.2f}); in simulations that fallback biases the pooled effect towards zero "
        "(benchmarks/censoring_simulation.py).",
        f"- **Rows without means.** {sign_ids}: n, a p (or bound), the test and the stated direction are printed, "
        "which is all a standardised effect needs (studies/README.md, \"Rows without means\"); their size rests "
        "on the p alone (and, for pre/post rows, on the assumed pre/post correlation).",
        f"- **Change scores kept apart.** {change_ids}: its group means are pre-to-post changes, so its SMD is "
        "scaled by the SD of change, not of the outcome; it is not pooled with final-value SMDs "
        "(Cochrane Handbook 10.5.2; `--pool-change-scores` pools it).",
        f"- **Shared participants.** The all-outcomes row counts each sample of mothers once"
        + (f" ({pooled_note.removeprefix('a sample counts once: ')})" if pooled_note else "")
        + ": the row with the largest n is kept (studies/README.md).",
        f"- **No randomised comparison, and not all rows have a control.** Randomised {OUTCOME} rows used: "
        f"{randomised_ids}. One-group before/after rows: {prepost_text}. "
        "Such an effect includes everything that changes over the days after birth (milk volume rises by itself "
        "then) and regression to the mean, not only the massage; the reviews pool trials against a control group. "
        f"Dropping them leaves {controlled_row['studies']} controlled studies: {controlled_row['estimate']:.2f} "
        f"({controlled_row['low']:.2f} to {controlled_row['high']:.2f}). As a moderator (table above) the pre/post "
        f"mean is {design.loc[DESIGN_ROWS[1], 'q50']:.2f} and the controlled mean "
        f"{design.loc[DESIGN_ROWS[0], 'q50']:.2f}, a difference of {design.loc[DESIGN_ROWS[2], 'q50']:.2f} "
        f"({design.loc[DESIGN_ROWS[2], 'q2.5']:.2f} to {design.loc[DESIGN_ROWS[2], 'q97.5']:.2f}): with so few "
        "studies the data cannot tell whether the two designs agree. The network model leaves pre/post rows out "
        "unless asked (`--prepost-as-control`).",
        f"- **Different techniques and outcome scales.** Our {OUTCOME} rows mix {techniques} massage, measured in "
        f"{units}; SMDs put them on one scale but do not make them the same intervention. The reviews pool their "
        f"own mix (the {int(review['studies'])}-trial review reports I² = {_fmt(review['i2_percent'], 0)}%, i.e. "
        "large heterogeneity), and we could not check which of our studies they include.",
        *([f"- **Small quasi-experiments.** Our estimate sits above the {int(review['studies'])}-RCT review's. "
           "Small and non-randomised studies tend to report larger effects than large randomised ones (small-study "
           "effects, selective publication of significant results); our usable rows are small (the largest has "
           f"{int(used_effects(milk)['n_total'].max())} mothers) and mostly quasi-experimental, so a higher "
           "estimate is what one would expect even if the true effect were the review's."]
          if primary["estimate"] > review["estimate"] else []),
        f"- **Head-to-head rows are not in these numbers.** {h2h_text or 'none'}: no control arm, so such a row "
        "informs the network model (`evsynth.methods.network`), not a massage-vs-control pooled SMD.",
        "",
        "## What these numbers can and cannot support",
        "",
        f"- They can support: across {primary['studies']} small studies of {OUTCOME}, the pooled SMD is probably "
        f"positive (P(SMD > 0) = {primary['P(>0)']:.3f}), "
        + ("of a size compatible with the published reviews." if contains_all else
           f"of a size compatible with {review['source']} ({review['estimate']:.2f}) but not with every "
           "published estimate; the pooled effect is not adjusted for publication bias or for design here."),
        "- They cannot support: a ranking of techniques. Only "
        + ", ".join(f"{t} ({n} stud{'y' if n == 1 else 'ies'})" for t, n in estimated.items())
        + f" reach an estimate; {no_study} have no usable {OUTCOME} study (reasons in the table above), so the "
        "toolkit says nothing about them beyond that.",
        "- They cannot support a causal effect size for clinical use: most rows are small quasi-experiments read "
        "from abstracts, the controlled subset has "
        f"{controlled_row['studies']} studies, and standard errors are back-calculated from p-values.",
        "- More evidence, not more modelling, would change this: the full texts of the rows listed as not usable "
        "(group sizes, SDs, the other group's mean) would let several of them in.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", default=str(ROOT / "studies" / "massage.csv"))
    parser.add_argument("--reviews", default=str(DEFAULT_REVIEWS))
    parser.add_argument("--out", default=str(ROOT / "docs" / "literature_comparison.md"))
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--sampler", default="auto", choices=("auto", "pymc", "nutpie"))
    args = parser.parse_args(argv)
    reviews_path = Path(args.reviews)
    if not reviews_path.is_file():
        parser.error(f"published results not found at {reviews_path}; pass --reviews")
    studies = load_studies(args.studies)
    theirs = published(reviews_path)
    fit_options = {"draws": args.draws, "tune": args.tune, "chains": args.chains, "seed": args.seed,
                   "sampler": args.sampler}
    ours = our_results(studies, fit_options, anchors=sorted(theirs["estimate"].tolist()))
    text = markdown(ours, theirs, studies, fit_options, reviews_path)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
