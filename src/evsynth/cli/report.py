"""`evsynth report [studies.csv]`: the same pipeline as `evsynth fit` with the same options, written
as one self-contained HTML file (evsynth.present.report)."""

from __future__ import annotations

import sys

from .common import EXIT_NOTHING_ANALYSED, exit_status, load_effects, prepare_out, progress, sampling_options, say
from .fit import (add_fit_arguments, add_mods_argument, check_dependence_arguments, compile_ahead, dependence_note,
                  dependence_options)


def register(commands) -> None:
    p = commands.add_parser("report", help="run the analysis and write a self-contained HTML report")
    add_fit_arguments(p)
    add_mods_argument(p)
    p.add_argument("--threshold", type=float, default=None,
                   help="also report P(effect > THRESHOLD), e.g. 0.2 (a small effect on the SMD scale)")
    p.set_defaults(handler=cmd_report, out="report")


def cmd_report(args) -> int:
    from ..methods.analysis import one_row_per_sample, run_analysis, split_by_outcome
    from ..present.report import write_report

    if args.model == "meta_regression" and args.mods is None:
        raise ValueError("--model meta_regression needs moderators: --mods '~ column' or --mods column1,column2")
    check_dependence_arguments(args)
    prepare_out(args.out)
    studies, effects = load_effects(args)
    runnable, skipped = split_by_outcome(effects, args.pool_outcomes, args.keep_samples)
    nested = dependence_options(args, runnable)
    compile_ahead(runnable, nested, args)
    results = []
    for label, table in runnable.items():
        say(f"fitting {label!r} (model {'multilevel' if nested[label] else args.model}, {args.engine} engine, "
            f"{args.sampler} sampler, {args.chains} x {args.draws} draws)")
        note = dependence_note(label, nested[label], args)
        if note:
            table = one_row_per_sample(table, by_outcome=not args.pool_outcomes)  # none shares: drops nothing
        doing = "exact posterior (quadrature)" if args.engine == "exact" else "compiling and sampling"
        with progress(f"{label}: {doing}", enabled=not args.quiet):
            results.append(run_analysis(label, table, model=args.model, priors=dict(args.prior), mods=args.mods,
                                        **nested[label], **sampling_options(args)))
        if note:
            results[-1].notes.insert(1, note.removeprefix(f"{label}: "))
        for note in results[-1].notes:
            say(f"  {note}")
    settings = {"studies": str(args.studies), "measure": args.measure, "model": args.model,
                "r_prepost (default)": args.r_prepost, "p_bound": effects.attrs.get("p_bound", args.p_bound),
                "priors given": ", ".join(f"{k}={v}" for k, v in args.prior) or "defaults",
                "sampler": args.sampler, "chains x draws (tune)": f"{args.chains} x {args.draws} ({args.tune})",
                "seed": args.seed, "engine": args.engine}
    if args.mods is not None:
        settings["moderators (--mods)"] = str(args.mods)
    if args.random is not None:
        settings["nested levels (--random)"] = args.random
        settings["within-sample correlation of sampling errors (--rho)"] = (
            f"{args.rho:g} (assumed)" if args.rho is not None else "none given: independent")
    path = write_report(studies, effects, results, skipped, args.out, settings, threshold=args.threshold,
                        mods=args.mods)
    say(f"wrote {path}")
    failed = [r.label for r in results if not r.diagnostics.ok]
    if not results:
        say("no outcome has enough usable studies to fit a model: nothing analysed", file=sys.stderr)
        return EXIT_NOTHING_ANALYSED
    return exit_status(failed, args.accept_failed, " (marked in the report)")
