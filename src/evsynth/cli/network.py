"""`evsynth network [studies.csv]`: the network meta-analysis per outcome, so head-to-head rows
(technique vs technique) are used: technique effects versus the reference, tau, the node-splitting
consistency check (or why there is none), diagnostics, and the network plot."""

from __future__ import annotations

import sys

from .common import (EXIT_NOTHING_ANALYSED, add_input_arguments, add_sampling_arguments, exit_status, fit_width,
                     load_effects, prepare_out, print_frame, report_replaced, sampling_options, say, snapshot)

def register(commands) -> None:
    p = commands.add_parser("network", help="network meta-analysis using head-to-head rows too (per outcome)")
    add_input_arguments(p, prior_help="mu = prior of each technique effect vs the reference, tau = between-study SD")
    p.add_argument("--reference", default="control",
                   help="reference node; every control label (control, usual care, baseline, ...) is 'control' "
                        "(default: %(default)s)")
    p.add_argument("--prepost-as-control", action="store_true",
                   help="treat a one-group pre/post change as a comparison with the control node (default: pre/post "
                        "rows are left out, since a baseline is not a control arm)")
    add_sampling_arguments(p)
    p.set_defaults(handler=cmd_network)


def cmd_network(args) -> int:
    from ..methods.analysis import MIN_STUDIES, group_by_outcome, slug
    from ..methods.network import (comparisons, multi_arm_trials, network_fit, network_plot, network_summary,
                                   network_table, node_split, prepare_network)
    from ..present.results import save_result

    out = prepare_out(args.out)
    args.keep_samples = True  # multi-arm trials (rows sharing a sample and a comparator) stay whole
    studies, effects = load_effects(args)
    before = snapshot(out)
    options = sampling_options(args)
    failed, fitted = [], 0
    for label, table in group_by_outcome(effects, args.pool_outcomes, keep_samples=True).items():
        table = multi_arm_trials(table, studies, by_outcome=not args.pool_outcomes)
        for note in (table.attrs.get("sample_note"), table.attrs.get("multi_arm_note")):
            if note:
                say(f"\n{label}: {note}")
        prepost = args.prepost_as_control
        # the same rule as `evsynth fit`, on the rows that enter the network (head-to-head rows in,
        # pre/post rows out unless --prepost-as-control): one study is not a synthesis
        nodes = network_table(table, args.reference, prepost_as_control=prepost)
        if len(nodes) < MIN_STUDIES:
            left = nodes.attrs["prepost_left_out"]
            why = (f" (pre/post rows left out: {', '.join(left)}; --prepost-as-control uses them)" if left else "")
            say(f"\noutcome {label!r} not analysed: {len(nodes)} stud{'y' if len(nodes) == 1 else 'ies'} "
                f"{'enters' if len(nodes) == 1 else 'enter'} the network{why}; need {MIN_STUDIES}")
            continue
        try:
            prepare_network(table, args.reference, prepost)
        except ValueError as exc:  # no usable rows, or not connected to the reference
            say(f"\noutcome {label!r} not analysed: {exc}")
            continue
        say(f"\n== {label}: network of comparisons (reference: {nodes.attrs['reference']}) ==")
        if nodes.attrs["prepost_left_out"]:
            say(f"pre/post rows left out (a baseline is not a control arm; --prepost-as-control to use them): "
                f"{', '.join(nodes.attrs['prepost_left_out'])}")
        print(fit_width(comparisons(nodes), index=False))
        if len(nodes) <= 2:
            say(f"warning: tau (between studies) rests on {len(nodes)} studies: its posterior is mostly its prior")
        model = dict(priors=dict(args.prior), reference=args.reference, prepost_as_control=prepost)
        idata = network_fit(table, **model, **options)
        if idata.attrs.get("sampling_cov"):
            say(f"sampling errors: {idata.attrs['sampling_cov']}")
        fitted += 1
        print_frame(f"{label}: technique effects vs {nodes.attrs['reference']} ({args.measure}, 95% intervals)",
                    network_summary(idata))
        if idata.attrs.get("engine") == "exact":
            verdict = None
            say("engine: exact (quadrature over tau, Gaussian conditionals; independent draws, no sampler "
                "to diagnose)")
        else:
            from ..methods.diagnostics import diagnose

            verdict = diagnose(idata)
            say(verdict)
        split = node_split(table, **model, **options)
        if split.empty:
            say(f"consistency: {split.attrs['note']}")
        else:
            say("consistency (node-splitting; flagged = 95% interval of direct - indirect excludes 0):")
            print(fit_width(split, index=False))
            failed += [f"{label} (node split {c})" for c, ok in zip(split["comparison"], split["diagnostics_ok"]) if not ok]
        stem = out / f"network_{slug(label)}"
        save_result(idata, f"{stem}.nc")
        network_plot(table, reference=args.reference, prepost_as_control=prepost).savefig(f"{stem}.png", dpi=120)
        say(f"saved {stem}.nc, {stem}.png")
        if verdict is not None and not verdict.ok:
            failed.append(label)
    report_replaced(out, before)
    if not fitted:
        say("\nno outcome has a network connected to the reference; try --reference with a technique label")
        say("nothing analysed", file=sys.stderr)
        return EXIT_NOTHING_ANALYSED
    return exit_status(failed, args.accept_failed)
