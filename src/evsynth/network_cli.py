"""`evsynth network [studies.csv]`: the network meta-analysis per outcome, so head-to-head rows
(technique vs technique) are used: technique effects versus the reference, tau, the node-splitting
consistency check (or why there is none), diagnostics, and the network plot."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from .analysis import MIN_STUDIES, slug
from .diagnostics import diagnose
from .effects import DEFAULT_R_PREPOST, MEASURES, P_BOUND_MODES, compute_effects
from .fit import fit
from .network import comparisons, network, network_plot, network_summary, network_table, node_split

EXIT_DIAGNOSTICS = 3  # as `evsynth fit`


def register(commands, prior_option) -> None:
    p = commands.add_parser("network", help="network meta-analysis using head-to-head rows too (per outcome)")
    p.add_argument("studies", nargs="?", default="studies/massage.csv", help="study CSV (default: %(default)s)")
    p.add_argument("--reference", default="control",
                   help="reference node; every control label (control, usual care, baseline, ...) is 'control' "
                        "(default: %(default)s)")
    p.add_argument("--measure", default="SMD", choices=MEASURES)
    p.add_argument("--r-prepost", type=float, default=DEFAULT_R_PREPOST)
    p.add_argument("--p-bound", default="auto", choices=P_BOUND_MODES)
    p.add_argument("--outcome", action="append", help="analyse only this outcome (repeatable)")
    p.add_argument("--pool-outcomes", action="store_true", help="one SMD network across all outcomes")
    p.add_argument("--prior", action="append", type=prior_option, default=[],
                   help="mu = prior of each technique effect vs the reference, tau = between-study SD")
    p.add_argument("--draws", type=int, default=2000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--sampler", default="auto", choices=("auto", "pymc", "nutpie"))
    p.add_argument("--out", default="output")
    p.add_argument("--accept-failed", action="store_true",
                   help="exit 0 even when a fit fails its diagnostics (the failure is still reported)")
    p.set_defaults(handler=cmd_network)


def _groups(effects: pd.DataFrame, args) -> dict[str, pd.DataFrame]:
    if args.pool_outcomes:
        if effects.attrs["measure"] not in ("SMD", "SMCC"):
            raise ValueError("pooling different outcomes needs a standardized measure (SMD or SMCC)")
        return {"all outcomes (SMD)": effects}
    outcomes = args.outcome or list(effects["outcome"].unique())
    unknown = sorted(set(outcomes) - set(effects["outcome"]))
    if unknown:
        raise ValueError(f"--outcome {unknown}: not in the study table (outcomes: {sorted(set(effects['outcome']))})")
    groups = {}
    for outcome in outcomes:
        table = effects[effects["outcome"] == outcome].reset_index(drop=True)
        table.attrs = dict(effects.attrs)
        groups[outcome] = table
    return groups


def cmd_network(args) -> int:
    from .studies import load_studies

    effects = compute_effects(load_studies(args.studies), measure=args.measure, r_prepost=args.r_prepost,
                              p_bound=args.p_bound)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    options = dict(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed, sampler=args.sampler)
    failed, fitted = [], 0
    for label, table in _groups(effects, args).items():
        n_rows = int(table["used"].sum())
        if n_rows < MIN_STUDIES:  # as `evsynth fit`: one study is not a synthesis
            print(f"\noutcome {label!r} not analysed: {n_rows} usable stud{'y' if n_rows == 1 else 'ies'}; "
                  f"need {MIN_STUDIES}")
            continue
        try:
            model = network(table, dict(args.prior), reference=args.reference)
        except ValueError as exc:  # no usable rows, or not connected to the reference
            print(f"\noutcome {label!r} not analysed: {exc}")
            continue
        nodes = network_table(table, args.reference)
        print(f"\n== {label}: network of comparisons (reference: {nodes.attrs['reference']}) ==")
        print(comparisons(nodes).to_string(index=False))
        idata = fit(model, **options)
        fitted += 1
        verdict = diagnose(idata)
        print(f"\n== {label}: technique effects vs {nodes.attrs['reference']} ({args.measure}, 95% intervals) ==")
        print(network_summary(idata).to_string(float_format="{:.3f}".format))
        print(verdict)
        split = node_split(table, dict(args.prior), args.reference, **options)
        if split.empty:
            print(f"consistency: {split.attrs['note']}")
        else:
            print("consistency (node-splitting; flagged = 95% interval of direct - indirect excludes 0):")
            print(split.to_string(index=False, float_format="{:.3f}".format))
            failed += [f"{label} (node split {c})" for c, ok in zip(split["comparison"], split["diagnostics_ok"]) if not ok]
        stem = out / f"network_{slug(label)}"
        idata.to_netcdf(f"{stem}.nc")
        network_plot(table, reference=args.reference).savefig(f"{stem}.png", dpi=120)
        print(f"saved {stem}.nc, {stem}.png")
        if not verdict.ok:
            failed.append(label)
    if not fitted:
        print("\nno outcome has a network connected to the reference; try --reference with a technique label")
    if failed:
        print(f"\nDIAGNOSTICS FAILED for: {', '.join(failed)}"
              + (" (accepted by --accept-failed)" if args.accept_failed else ""), file=sys.stderr)
        return 0 if args.accept_failed else EXIT_DIAGNOSTICS
    return 0
