"""`evsynth fit [studies.csv]`: the main job. Effect sizes, a model per outcome, diagnostics, the
exact-engine check, every technique with its estimate or reason, forest plots and saved results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..data.vocabulary import MODELS
from .common import (EXIT_NOTHING_ANALYSED, WIDTH, InputError, add_input_arguments, add_sampling_arguments,
                     exit_status, fill, load_effects, prepare_out, print_frame, progress, report_replaced,
                     rho_option, sampling_options, say, snapshot)

if TYPE_CHECKING:  # parsing arguments (and --help) loads none of these; each command imports what it runs
    import pandas as pd

# The terminal's effect table (the full one is output/effects.csv): computable = has an effect size,
# in_model = entered one of the models fitted below.
EFFECT_VIEW = ["study_id", "comparison", "outcome", "design", "yi", "sei", "se_route", "rob", "in_model"]


def add_fit_arguments(p: argparse.ArgumentParser) -> None:
    """The options `evsynth fit` and `evsynth report` share."""
    add_input_arguments(p)
    p.add_argument("--model", default="auto", choices=["auto"] + sorted(set(MODELS) - {"network"}),
                   help="auto = random_effects for one technique, by_technique for several (the output says "
                        "which ran and why); the network model has its own command, evsynth network "
                        "(default: %(default)s)")
    p.add_argument("--random", default=None, metavar="'~ 1 | sample/study_id'",
                   help="keep the rows that share participants (the same sample_id) and fit the nested model with "
                        "these levels, outermost first ('sample' is sample_id, or the row's study_id when it has "
                        "none); an outcome where no sample has several rows gets the usual model, and says so "
                        "(default: one row per sample)")
    p.add_argument("--rho", type=rho_option, default=None,
                   help="with --random: the assumed correlation of the sampling errors of two rows of one sample "
                        "(default: independent; evsynth multilevel --rho-grid shows how much it matters)")
    add_sampling_arguments(p)


def check_dependence_arguments(args) -> None:
    """--rho without --random, or --random with another --model: exit 2 before any work. Sets
    args.keep_samples (the rows sharing a sample are kept for the nested model)."""
    if args.rho is not None and args.random is None:
        raise InputError("--rho needs --random (the levels whose rows share participants), e.g. "
                         "--random '~ 1 | sample/study_id' --rho 0.6")
    if args.random is not None and args.model != "auto":
        raise InputError(f"--random fits the nested (multilevel) model; it cannot be combined with --model {args.model}")
    if args.random is not None and args.mods is not None:
        raise InputError("--random and --mods cannot be combined (the nested model has no moderators yet)")
    args.keep_samples = args.random is not None


def dependence_options(args, runnable: dict) -> dict[str, dict]:
    """--random / --rho per outcome: {label: run_analysis keywords} for the outcomes where a sample
    has several rows (the nested model), {} for the others. Every nested model is described before
    anything is fitted, so a bad level or rho exits 2 naming the option."""
    if args.random is None:
        return {label: {} for label in runnable}
    from ..methods.analysis import shared_clusters
    from ..model.description import _nesting_paths, multilevel

    try:
        paths = _nesting_paths(args.random)
    except ValueError as exc:
        raise InputError(f"--random: {exc}") from None
    cluster = paths[0][-1]
    out = {}
    for label, table in runnable.items():
        if cluster in table and not shared_clusters(table, cluster):
            out[label] = {}
            continue
        options = {"random": args.random, "rho": args.rho, "cluster": cluster}
        try:
            multilevel(table, dict(args.prior), **options)
        except ValueError as exc:
            raise InputError(f"--random {args.random!r}" + (f" --rho {args.rho:g}" if args.rho is not None else "")
                             + f" (outcome {label!r}): {exc}") from None
        out[label] = options
    return out


def dependence_note(label: str, options: dict, args) -> str | None:
    """Why an outcome under --random got the usual model."""
    if args.random is None or options:
        return None
    return (f"{label}: --random {args.random}: no {_nesting_cluster(args.random)} group has several rows in this "
            "outcome, so the nested model adds nothing; the usual model runs (as without --random)")


def compile_ahead(runnable: dict, nested: dict, args, compiler=None) -> None:
    """Compile every outcome's sampler before the first fit, all in one child process
    (evsynth.engines.nutpie_cache.precompile): with a cold compile cache the outcomes share its
    imports and numba's helpers instead of each paying them in its own child; with a warm one
    nothing happens. What cannot
    be described here is left to its fit, which raises the same error in its turn."""
    if args.engine == "exact" or args.sampler == "pymc":
        return
    from ..engines.nutpie_cache import precompile, stop_compiler, uncached
    from ..methods.analysis import one_row_per_sample, sampled_description

    descriptions = []
    for label, table in runnable.items():
        if dependence_note(label, nested[label], args):  # as the fit loop does
            table = one_row_per_sample(table, by_outcome=not args.pool_outcomes)
        try:
            description = sampled_description(table, model=args.model, priors=dict(args.prior), mods=args.mods,
                                              **nested[label], **sampling_options(args))
        except Exception:  # noqa: BLE001  (the fit of this outcome reports it, in its turn)
            continue
        if description is not None:
            descriptions.append(description)
    missing = uncached(descriptions)
    if missing:
        with progress(f"compiling the sampler of {len(missing)} model{'s' * (len(missing) > 1)} (first run; cached "
                      "for the next)", enabled=not args.quiet):
            precompile(missing, compiler)
    else:
        stop_compiler(compiler)


def _nesting_cluster(random: str) -> str:
    from ..model.description import _nesting_paths

    return _nesting_paths(random)[0][-1]


def _mods_option(text: str):
    from ..model.moderators import ModeratorError, parse_mods

    try:
        return parse_mods(text)
    except ModeratorError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(commands) -> None:
    p = commands.add_parser("fit", help="effect sizes + hierarchical model + diagnostics + forest plot")
    add_fit_arguments(p)
    add_mods_argument(p)
    p.set_defaults(handler=cmd_fit)


def add_mods_argument(p: argparse.ArgumentParser) -> None:
    """--mods, shared by `fit` and `report`."""
    p.add_argument("--mods", type=_mods_option, default=None,
                   help="meta-regression on study-table columns: a formula ('~ ablat + C(alloc)') or "
                        "comma-separated columns ('ablat,year'); fitted per outcome beside the model (the main "
                        "model with --model meta_regression)")
    p.add_argument("--predict-at", type=_values_option, default=None, metavar="V1,V2,...",
                   help="with --mods on one numeric moderator: the fitted effect and the 95%% prediction "
                        "interval at these moderator values, Bayesian and REML (e.g. --predict-at 10,30,50)")


def _values_option(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers separated by commas, e.g. 10,30,50") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number, e.g. 10,30,50")
    return values


DESIGN_SHORT = {"two_group": "2-group", "pre_post": "pre/post", "effect": "effect"}


def _yi_text(yi: float, censored: bool) -> str:
    """yi with 3 decimals; a censored row's yi is the effect at the p-value bound and the true effect
    lies beyond it, away from zero: ">0.899" / "<-0.512"."""
    text = f"{yi:.3f}"
    return (">" if yi > 0 else "<") + text if censored else text  # the side of description.censoring_direction


def effect_view(effects: pd.DataFrame, entered: set) -> pd.DataFrame:
    """The terminal's effect table: the rows with an effect size (computable), and whether each
    entered one of the models fitted (in_model); the rows without one are listed with their reason.
    yi is text: a censored row's shows the side its true effect lies on (">0.899")."""
    import pandas as pd

    computable = effects[effects["used"]]
    if computable.empty:
        return pd.DataFrame(columns=EFFECT_VIEW)
    censored = computable["censored"].astype(bool)
    view = computable.assign(
        comparison=computable["technique"] + " vs " + computable["comparator"],
        design=computable["design"].map(DESIGN_SHORT).fillna(computable["design"]),
        yi=[_yi_text(y, c) for y, c in zip(computable["yi"], censored)],
        se_route=computable["se_route"].where(~censored, "censored"),
        in_model=["yes" if (s, o) in entered else "no" for s, o in zip(computable["study_id"], computable["outcome"])])
    columns = [c for c in EFFECT_VIEW if not (c == "rob" and view["rob"].isna().all())]
    return view[columns]


def print_effect_view(view: pd.DataFrame) -> None:
    """The effect table, one block per outcome (the outcome in the block's title, not in a column),
    so that comparisons keep their full labels within 100 columns."""
    if view.empty:
        print("\n== effect sizes: no row has an effect size ==")
        return
    for outcome, rows in view.groupby("outcome", sort=False):
        print_frame(f"effect sizes: {outcome} (in_model: entered a model fitted below)",
                    rows.drop(columns="outcome"), index=False)


def print_not_in_model(excluded: pd.DataFrame) -> None:
    """One wrapped line per row that entered no model: study (outcome): reason."""
    print(f"\n== rows in no model, and why ({len(excluded)}; effects.csv has them all) ==")
    # rows sharing an outcome and a reason are listed once (13 binary rows, one piece of advice)
    for (outcome, why), rows in excluded.groupby(["outcome", "why_not"], sort=False):
        ids = ", ".join(rows["study_id"])
        print(fill(f"{ids} ({outcome}{f'; {len(rows)} rows' if len(rows) > 1 else ''}): {why}", WIDTH,
                            subsequent_indent="    "))


def _print_design(label: str, table: pd.DataFrame, priors: dict) -> None:
    """Controlled and pre/post rows side by side: the design as a moderator (exact engine)."""
    from ..methods.designs import design_moderator

    try:
        design = design_moderator(table, {k: v for k, v in priors.items() if k in ("mu", "tau", "beta")})
    except ValueError as exc:
        say(f"\n{label}: design (controlled vs pre/post) not contrasted: {exc}")
        return
    print_frame(f"{label}: design as moderator (random-effects meta-regression on a pre/post indicator, "
                 "exact engine; 95% intervals)", design)
    say("A pre/post change also contains time trends and regression to the mean; only controlled rows "
        "estimate what the technique adds.")


def check_moderators(runnable: dict, mods) -> None:
    """--mods: every outcome's design matrix is built before anything is fitted, so an unusable
    moderator (a text cell, a non-finite value, the outcome itself...) exits 2 before any work."""
    from ..model.description import prepare
    from ..model.moderators import INTERCEPT, ModeratorError, design_matrix

    for label, table in runnable.items():
        try:
            if design_matrix(prepare(table), mods)[1][0] != INTERCEPT:
                raise ModeratorError(f"mods {mods!r}: the Bayesian meta-regression needs the intercept (its mu); "
                                     "drop '0 +' / '- 1' from the formula")
        except ModeratorError as exc:
            raise ModeratorError(f"outcome {label!r}: {exc}") from None


def _print_regression(label: str, table: pd.DataFrame, mods, priors: dict, stem: Path,
                      predict_at: list[float] | None = None) -> bool:
    """--mods: the Bayesian meta-regression (exact engine) with the REML + Knapp-Hartung fit beside it,
    saved as <stem>_metareg.csv; with one continuous moderator also the bubble plot <stem>_regplot.png.
    False when it cannot be fitted (the run then exits 4, as when nothing could be analysed)."""
    import pandas as pd

    from ..model.moderators import ModeratorError
    from ..methods.regression import beta_draws, fit_meta_regression

    try:
        result = fit_meta_regression(table, mods, {k: v for k, v in priors.items() if k in ("mu", "tau", "beta")})
    except ModeratorError:
        raise  # bad input (a missing or empty moderator): exit status 2
    except ValueError as exc:
        print(f"\n{label}: meta-regression on {mods} cannot be fitted (exit status 4): {exc}", file=sys.stderr)
        return False
    freq = result.frequentist
    print_frame(f"{label}: Bayesian meta-regression, mods {result.mods} (exact engine; 95% CrI, P(beta > 0))",
                 result.coefficients, digits=4)
    print_frame(f"{label}: residual heterogeneity (R² analogue: {result.R2:.1f}% of tau² explained, "
                 "posterior means)", result.heterogeneity.drop(columns="P(>0)"))
    print_frame(f"{label}: REML meta-regression, Knapp-Hartung t on {freq.df:g} df (tau² {freq.tau2:.4f}, "
                 f"I² {freq.I2:.1f}%, R² {freq.R2:.1f}%, QM {freq.QM:.3f}, p {freq.QM_p:.4g})", freq.coefficients,
                 digits=4)
    pd.concat({"bayes": result.coefficients, "reml_kh": freq.coefficients}, axis=1).to_csv(f"{stem}_metareg.csv")
    saved = [f"{stem}_metareg.csv"]
    terms = list(result.coefficients.index)
    if predict_at is not None:
        if len(terms) != 2:
            raise ValueError(f"--predict-at needs one numeric moderator; the model has {', '.join(terms[1:])}")
        from ..methods.regression import predict_at as bayes_predict

        X_new = [[1.0, v] for v in predict_at]
        both = pd.concat({"bayes": bayes_predict(result, X_new)[["q50", "q2.5", "q97.5", "pi_low", "pi_high"]],
                          "reml_kh": freq.predict(X_new)[["pred", "ci_low", "ci_high", "pi_low", "pi_high"]]}, axis=1)
        both.index = pd.Index(predict_at, name=terms[1])
        print_frame(f"{label}: predictions at {terms[1]} = {', '.join(f'{v:g}' for v in predict_at)} (analysis "
                    "scale; 95% intervals; pi: a new study there)", both, digits=4)
        both.to_csv(f"{stem}_predictions.csv")
        saved.append(f"{stem}_predictions.csv")
    if len(terms) == 2 and terms[1] in table.columns and pd.api.types.is_numeric_dtype(table[terms[1]]):
        from ..present.plots import regplot

        fig = regplot(result.table, terms[1], fit=freq, beta_draws=beta_draws(result))
        fig.savefig(f"{stem}_regplot.png", dpi=120)
        saved.append(f"{stem}_regplot.png")
    say(f"saved {', '.join(saved)}")
    return True


def forest_drawn(label: str, idata, table: pd.DataFrame, studies, path: str,
                 max_studies: int | None = None, summary: pd.DataFrame | None = None) -> bool:
    """Save the forest plot (its posterior rows from `summary`, the table the output quotes); above
    `max_studies` (default MAX_FOREST_STUDIES) say why it is not drawn."""
    from ..effects.table import used_effects
    from ..present.plots import MAX_FOREST_STUDIES, forest  # matplotlib only when a figure is drawn
    from ..present.png import save_png

    limit = MAX_FOREST_STUDIES if max_studies is None else max_studies
    k = len(used_effects(table))
    if k > limit:
        print(fill(f"{label}: forest plot not drawn: k = {k:,} > {limit:,} studies (one row per "
                            "study; the figure would exceed the image size limit)", WIDTH, subsequent_indent="    "))
        return False
    save_png(forest(idata, table, studies=studies, summary=summary), path, dpi=120)
    return True


def prepost_weight_line(label: str, table: pd.DataFrame, summary: pd.DataFrame) -> str | None:
    """One line: the share of the weight one-group pre/post rows carry in this pooled analysis."""
    from ..effects.table import uncontrolled, used_effects
    from ..methods.designs import prepost_weight_share
    from ..methods.summary import summary_tau

    used = used_effects(table)
    if used.empty:
        return None
    tau = summary_tau(summary) or 0.0
    pre_post = used.loc[uncontrolled(used), "study_id"].tolist()
    share = prepost_weight_share(table, tau)
    return (f"{label}: one-group pre/post rows carry {share:.0%} of the weight ({len(pre_post)} of {len(used)} "
            f"rows{': ' + ', '.join(pre_post) if pre_post else ''}; weights 1/(se^2 + tau^2) at the posterior "
            f"median tau {tau:.2f})")


def cmd_fit(args) -> int:
    """`evsynth fit`. With a compile cache holding no entry yet, a compiling child is started first
    (engines.nutpie_cache.start_compiler): it imports PyMC and numba while this process reads the
    data, and compile_ahead gives it the models (a first run: ~1 s sooner)."""
    compiler = None
    if args.engine != "exact" and args.sampler != "pymc":
        from ..engines.nutpie_cache import start_compiler

        compiler = start_compiler()
    try:
        return fit_outcomes(args, compiler)
    finally:
        if compiler is not None:
            from ..engines.nutpie_cache import stop_compiler

            stop_compiler(compiler)


def fit_outcomes(args, compiler=None) -> int:
    from ..methods.analysis import (entered_rows, group_by_outcome, one_row_per_sample, rows_not_in_model, run_analysis,
                                    slug, split_by_outcome)
    from ..methods.analysis import dependence_lines
    from ..methods.conflict import prior_data_conflict
    from ..present.results import save_result
    from ..effects.techniques import coverage_lines, technique_coverage

    if args.model == "meta_regression" and args.mods is None:
        raise ValueError("--model meta_regression needs moderators: --mods '~ column' or --mods column1,column2")
    check_dependence_arguments(args)
    out = prepare_out(args.out)
    studies, effects = load_effects(args)
    before = snapshot(out)
    groups = group_by_outcome(effects, args.pool_outcomes, args.keep_samples)
    runnable, skipped = split_by_outcome(effects, args.pool_outcomes, args.keep_samples)
    from ..engines.exact import check_draw_size

    for table in runnable.values():  # a size refused before 100,000 rows are printed (issue 25)
        check_draw_size(int(table["used"].sum()) if "used" in table else len(table), args.draws, args.chains)
    entered = entered_rows(runnable.values())
    say(f"\n{len(effects)} rows: {int(effects['used'].sum())} with an effect size ({args.measure}, "
          f"r_prepost={args.r_prepost}, p_bound={effects.attrs['p_bound']}), {len(entered)} of them in a model")
    if effects.empty:
        say(f"\n{args.studies}: the study table has a header but no rows: nothing analysed", file=sys.stderr)
        return EXIT_NOTHING_ANALYSED
    print_effect_view(effect_view(effects, entered))
    excluded = rows_not_in_model(effects, skipped, entered)
    if not excluded.empty:
        print_not_in_model(excluded)
    flagged = effects[effects["warnings"] != ""]
    if not flagged.empty:
        say("\n== rows whose printed numbers contradict each other (kept as computed; check the source) ==")
        for _, row in flagged.iterrows():
            print(fill(f"  {row['study_id']} ({row['outcome']}): {row['warnings']}", WIDTH,
                                subsequent_indent="    "))
    # `used` there means computable (has an effect size); `in_model`: entered a model fitted below
    effects.assign(in_model=[(s, o) in entered for s, o in zip(effects["study_id"], effects["outcome"])]).to_csv(
        out / "effects.csv", index=False)
    for label, table in groups.items():
        if table.attrs.get("direction_note"):
            say(f"\n{label}: {table.attrs['direction_note']}")
    for label, reason in skipped.items():
        techniques = technique_coverage(groups[label], not_analysed=reason)["technique"]
        print("\n" + fill(f"outcome {label!r} not analysed: {reason} (techniques: {', '.join(techniques)})",
                                  WIDTH, subsequent_indent="    "))
    if args.mods is not None:
        check_moderators(runnable, args.mods)
    nested = dependence_options(args, runnable)
    compile_ahead(runnable, nested, args, compiler)
    failed, unfitted = [], []
    for label, table in runnable.items():
        doing = ("exact posterior (quadrature)" if args.engine == "exact" else
                 f"compiling and sampling ({args.chains} chains x {args.draws} draws)")
        if dependence_note(label, nested[label], args):
            say("\n" + dependence_note(label, nested[label], args))
            table = one_row_per_sample(table, by_outcome=not args.pool_outcomes)  # none shares: drops nothing
        with progress(f"{label}: {doing}", enabled=not args.quiet):
            result = run_analysis(label, table, model=args.model, priors=dict(args.prior), mods=args.mods,
                                  **nested[label], **sampling_options(args))
        from ..present.headline import headline_lines

        print(f"\n== {label}: the answer (details below) ==")
        for line in headline_lines(result):
            print(fill(line, WIDTH, subsequent_indent="    "))
        print()
        for note in result.notes:
            print(fill(f"{label}: {note}", WIDTH, subsequent_indent="    "))
        print_frame(f"{label}: {result.idata.attrs.get('model', args.model)} model, posterior "
                     "(95% equal-tailed intervals)", result.summary)
        measure = table.attrs.get("measure")
        from ..present.natural import effect_text, is_ratio, natural_scale_table

        if is_ratio(measure):  # fitted as log ratios: the reader's scale is the ratio itself
            print_frame(f"{label}: on the {measure} scale (back-transformed medians and 95% CrI; the table "
                        "above is on the log scale)", natural_scale_table(result.summary, measure), index=False)
            pooled = next(p for p in result.summary.index if p.endswith("(mu)"))
            say(f"{label}: {pooled} {effect_text(result.summary.loc[pooled], measure)} (median [95% CrI])")
        weight_line = prepost_weight_line(label, table, result.summary) if not nested[label] else None
        if weight_line:
            say(weight_line)
        for line in dependence_lines(result):
            say(f"{label}: {line}")
        say(result.diagnostics)
        if result.agreement is not None:  # the PyMC fit against the exact posterior of the same model
            say(result.idata.attrs["exact_check"], file=sys.stdout if result.agreement.attrs["ok"] else sys.stderr)
        say(prior_data_conflict(result.idata, table))
        if result.certainty is not None:  # every rule's reason (evsynth.methods.certainty)
            say(f"\n{label}: certainty {result.certainty.text()}")
        say(f"\n== {label}: every technique, with its partially pooled estimate (median [95% CrI]) and its "
            "own-data estimate, or why there is none ==")
        for line in coverage_lines(technique_coverage(table, result.summary, own=result.own_data)):
            print(fill(line, WIDTH, subsequent_indent="    "))
        # the design contrast takes rows as independent: one row per sample under --random
        _print_design(label, one_row_per_sample(table, by_outcome=not args.pool_outcomes) if nested[label] else table,
                      dict(args.prior))
        stem = out / slug(label)
        save_result(result.idata, f"{stem}.nc")
        result.summary.to_csv(f"{stem}_summary.csv")
        if forest_drawn(label, result.idata, table, studies, f"{stem}_forest.png", summary=result.summary):
            say(f"saved {stem}.nc, {stem}_summary.csv, {stem}_forest.png")
        else:
            say(f"saved {stem}.nc, {stem}_summary.csv")
        if args.mods is not None and not _print_regression(label, table, args.mods, dict(args.prior), stem,
                                                           getattr(args, "predict_at", None)):
            unfitted.append(label)
        if not result.diagnostics.ok:
            failed.append(label)
    report_replaced(out, before)
    if not runnable:
        print("\nno outcome has enough usable studies to fit a model: nothing analysed", file=sys.stderr)
        return EXIT_NOTHING_ANALYSED
    if unfitted:
        print(f"\nmeta-regression not fitted for: {', '.join(unfitted)} (exit status 4)", file=sys.stderr)
        return EXIT_NOTHING_ANALYSED
    return exit_status(failed, args.accept_failed)
