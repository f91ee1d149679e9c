"""`evsynth network [studies.csv]`: the network meta-analysis per outcome, so head-to-head rows
(technique vs technique) are used: technique effects versus the reference, tau, the node-splitting
consistency check (or why there is none), diagnostics, and the network plot."""

from __future__ import annotations

import sys

from .common import (EXIT_NOTHING_ANALYSED, add_input_arguments, add_sampling_arguments, exit_status, load_effects,
                         prepare_out, report_replaced, sampling_options, snapshot)

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
    from ..methods.network import (comparisons, network_fit, network_plot, network_summary, network_table, node_split,
                          prepare_network)
    from ..present.results import save_result

    out = prepare_out(args.out)
    _, effects = load_effects(args)
    before = snapshot(out)
    options = sampling_options(args)
    failed, fitted = [], 0
    for label, table in group_by_outcome(effects, args.pool_outcomes).items():
        n_rows = int(table["used"].sum())
        if n_rows < MIN_STUDIES:  # as `evsynth fit`: one study is not a synthesis
            print(f"\noutcome {label!r} not analysed: {n_rows} usable stud{'y' if n_rows == 1 else 'ies'}; "
                  f"need {MIN_STUDIES}")
            continue
        prepost = args.prepost_as_control
        try:
            prepare_network(table, args.reference, prepost)
        except ValueError as exc:  # no usable rows, or not connected to the reference
            print(f"\noutcome {label!r} not analysed: {exc}")
            continue
        nodes = network_table(table, args.reference, prepost_as_control=prepost)
        print(f"\n== {label}: network of comparisons (reference: {nodes.attrs['reference']}) ==")
        if nodes.attrs["prepost_left_out"]:
            print(f"pre/post rows left out (a baseline is not a control arm; --prepost-as-control to use them): "
                  f"{', '.join(nodes.attrs['prepost_left_out'])}")
        print(comparisons(nodes).to_string(index=False))
        model = dict(priors=dict(args.prior), reference=args.reference, prepost_as_control=prepost)
        idata = network_fit(table, **model, **options)
        fitted += 1
        print(f"\n== {label}: technique effects vs {nodes.attrs['reference']} ({args.measure}, 95% intervals) ==")
        print(network_summary(idata).to_string(float_format="{:.3f}".format))
        if idata.attrs.get("engine") == "exact":
            verdict = None
            print("engine: exact (quadrature over tau, Gaussian conditionals; independent draws, no sampler "
                  "to diagnose)")
        else:
            from ..methods.diagnostics import diagnose

            verdict = diagnose(idata)
            print(verdict)
        split = node_split(table, **model, **options)
        if split.empty:
            print(f"consistency: {split.attrs['note']}")
        else:
            print("consistency (node-splitting; flagged = 95% interval of direct - indirect excludes 0):")
            print(split.to_string(index=False, float_format="{:.3f}".format))
            failed += [f"{label} (node split {c})" for c, ok in zip(split["comparison"], split["diagnostics_ok"]) if not ok]
        stem = out / f"network_{slug(label)}"
        save_result(idata, f"{stem}.nc")
        network_plot(table, reference=args.reference, prepost_as_control=prepost).savefig(f"{stem}.png", dpi=120)
        print(f"saved {stem}.nc, {stem}.png")
        if verdict is not None and not verdict.ok:
            failed.append(label)
    report_replaced(out, before)
    if not fitted:
        print("\nno outcome has a network connected to the reference; try --reference with a technique label")
        print("nothing analysed", file=sys.stderr)
        return EXIT_NOTHING_ANALYSED
    return exit_status(failed, args.accept_failed)
