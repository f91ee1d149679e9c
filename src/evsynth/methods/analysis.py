"""One analysis = the verbs in order (effects -> model -> fit -> diagnose -> summarize) for one
outcome. Outcomes are analysed separately by default; pooling them is an explicit choice."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..effects.table import not_used, used_effects

MIN_STUDIES = 2  # a pooled estimate needs at least two studies


@dataclass
class AnalysisResult:
    """One outcome's analysis. Besides the fit (idata, diagnostics, summary):

    bias_adjusted: methods.robma.BiasAdjusted -- the publication-bias-adjusted effect (RoBMA-PSMA
      model averaging: mean, sd, low, median, high = 95% CrI, p_effect / p_heterogeneity / p_bias,
      bf_effect / bf_heterogeneity / bf_bias, families, priors; ran False with a reason below k 3);
    certainty: methods.certainty.Certainty -- the GRADE-style rating (rating, start, start_reason,
      ratings and reasons per domain, downgrades);
    influence: methods.leave_out.Influence -- leave-one-out of each study (random effects, exact
      engine) and the secondary-source sensitivity; None below 3 studies or when not computed;
    own_data: methods.own_data.own_data -- each technique's own-data estimate (no pooling across
      techniques); the summary's P(>0) is blanked for techniques whose own data do not support it.
    Each is None when run_analysis was told not to compute it (bias=False) or could not.
    """

    label: str
    effects: pd.DataFrame  # the effect rows this analysis was given (used and unused)
    idata: object  # the fit: an xarray DataTree (ArviZ 1's InferenceData)
    diagnostics: object  # evsynth.methods.diagnostics.Diagnostics
    summary: pd.DataFrame
    notes: list[str] = field(default_factory=list)  # which model ran and why; weakly identified parts
    agreement: pd.DataFrame | None = None  # the MCMC fit against the exact posterior (engines.exact.agreement)
    bias_adjusted: object = None  # methods.robma.BiasAdjusted
    certainty: object = None  # methods.certainty.Certainty
    influence: object = None  # methods.leave_out.Influence
    own_data: pd.DataFrame | None = None  # methods.own_data.own_data: each technique on its own studies


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_") or "analysis"


def _subset(effects: pd.DataFrame, mask) -> pd.DataFrame:
    kept = effects[mask].reset_index(drop=True)
    kept.attrs = dict(effects.attrs)
    return kept


def select_outcomes(effects: pd.DataFrame, outcomes=None) -> pd.DataFrame:
    """Only the named outcomes (all when None); an unknown name is an error, not an empty result."""
    if not outcomes:
        return effects
    unknown = sorted(set(outcomes) - set(effects["outcome"]))
    if unknown:
        raise ValueError(f"outcome {unknown}: not in the study table (outcomes: {sorted(set(effects['outcome']))})")
    return _subset(effects, effects["outcome"].isin(outcomes))


def align_direction(effects: pd.DataFrame) -> pd.DataFrame:
    """Effects with the sign of `direction == "lower"` rows flipped (time to first milk, EPDS: less
    is better), so that positive means "better" on every row; a pooled SMD across outcomes needs
    this. Flipped rows are marked in `flipped`, and attrs["direction_note"] says which they are.
    A censored row's yi is its signed bound, so flipping it flips the censoring side too."""
    out = _subset(effects, slice(None))
    lower = (out["direction"] == "lower").to_numpy() if "direction" in out else np.zeros(len(out), bool)
    out["yi"] = np.where(lower, -out["yi"], out["yi"])
    out["flipped"] = lower
    used = lower & out["used"].to_numpy(bool)
    if lower.any():
        out.attrs["direction_note"] = (
            f"sign flipped on {lower.sum()} row(s) whose outcome is better when lower "
            f"({', '.join(sorted(set(out.loc[lower, 'outcome'])))}; used: "
            f"{', '.join(out.loc[used, 'study_id']) or 'none'}), so that a positive SMD means better on every row")
    return out


def one_row_per_sample(effects: pd.DataFrame, by_outcome: bool = False) -> pd.DataFrame:
    """Each sample of participants counted once: among used rows sharing a `sample_id` (the same
    mothers measured on several outcomes, or arms sharing a control group) -- within each outcome
    when by_outcome, else across the whole table (pooled outcomes) -- the row with the largest
    n is kept, ties going to the row listed first in the study table; the others are left out
    (used = False, why_not names the sample and the kept row) and attrs["sample_note"] lists them.
    Modelling the dependence instead (a multilevel model) is not done here.

    Example: ``es.one_row_per_sample(es.compute_effects(studies), by_outcome=False)``"""
    out = _subset(effects, slice(None))
    if "sample_id" not in out or not out["used"].any():
        return out
    used = out[out["used"] & out["sample_id"].notna()]
    dropped = []
    keys = ["outcome", "sample_id"] if by_outcome else ["sample_id"]
    for key, rows in used.groupby(keys, sort=False):
        sample = key[-1] if isinstance(key, tuple) else key
        if len(rows) < 2:
            continue
        n = rows["n_total"].fillna(-1)
        kept = n.index[np.argmax(n.to_numpy())]  # argmax takes the first of equal n: table order
        for i in rows.index.drop(kept):
            out.loc[i, "used"] = False
            out.loc[i, "why_not"] = (f"same participants (sample_id {sample!r}) as {out.loc[kept, 'study_id']}, "
                                     "which is kept: a sample counts once (largest n, ties by table order)")
            dropped.append(f"{out.loc[i, 'study_id']} (kept {out.loc[kept, 'study_id']})")
    if dropped:
        out.attrs["sample_note"] = f"a sample counts once: left out {', '.join(dropped)}"
    return out


def group_by_outcome(effects: pd.DataFrame, pool_outcomes: bool = False,
                     keep_samples: bool = False) -> dict[str, pd.DataFrame]:
    """{label: effect table}, one per outcome, or one for all when pooling (standardized only; rows
    whose outcome is better when lower are sign-flipped, see align_direction). Within each table a
    sample of participants counts once (one_row_per_sample), unless keep_samples (a nested model
    models them: run_analysis(random=...))."""
    once = (lambda table, **_: table) if keep_samples else one_row_per_sample
    if pool_outcomes:
        if effects.attrs.get("measure") not in ("SMD", "SMCC"):
            raise ValueError("pooling different outcomes needs a standardized measure (SMD or SMCC)")
        pooled = once(align_direction(effects))
        pooled.attrs["pooled_outcomes"] = True  # a deliberate choice (evsynth.methods.network accepts it)
        return {"all outcomes (SMD)": pooled}
    return {outcome: once(_subset(effects, effects["outcome"] == outcome), by_outcome=True)
            for outcome in effects["outcome"].unique()}


def split_by_outcome(effects: pd.DataFrame, pool_outcomes: bool = False,
                     keep_samples: bool = False) -> tuple[dict, dict]:
    """({label: effect table} to analyse, {label: reason} for outcomes that cannot be analysed).

    Example:
        >>> import evsynth as es
        >>> runnable, skipped = split_by_outcome(es.compute_effects(es.load_studies("studies/synthetic_demo.csv")))
        >>> list(runnable), skipped
        (['milk volume'], {})
    """
    runnable, skipped = {}, {}
    for label, table in group_by_outcome(effects, pool_outcomes, keep_samples).items():
        n_used = len(used_effects(table))
        if n_used < MIN_STUDIES:
            skipped[label] = f"{n_used} usable stud{'y' if n_used == 1 else 'ies'}; need {MIN_STUDIES}"
        else:
            runnable[label] = table
    return runnable, skipped


def entered_rows(tables) -> set[tuple[str, str]]:
    """(study_id, outcome) of every row that enters one of the pairwise models fitted on `tables`
    (an iterable of effect tables, e.g. the runnable ones of split_by_outcome)."""
    return {(sid, outcome) for table in tables
            for sid, outcome in used_effects(table)[["study_id", "outcome"]].itertuples(index=False)}


def rows_not_in_model(effects: pd.DataFrame, skipped: dict, entered: set | None = None) -> pd.DataFrame:
    """Every row that enters no model, with its reason: no effect size, head-to-head (network model
    only), or an outcome with too few studies to analyse (`skipped`, from split_by_outcome).
    `entered` (from entered_rows) drops rows that did enter a model, e.g. under --pool-outcomes."""
    out = not_used(effects)
    usable = effects.loc[effects["used"] & ~effects["head_to_head"] & effects["outcome"].isin(list(skipped))]
    extra = usable.assign(why_not=[f"outcome not analysed: {skipped[o]}" for o in usable["outcome"]])
    out = pd.concat([out, extra[out.columns]])
    out = out[~out.index.duplicated()].sort_index()
    if entered is not None:
        out = out[[(s, o) not in entered for s, o in zip(out["study_id"], out["outcome"])]]
    return out


def choose_model(effects: pd.DataFrame) -> tuple[str, str]:
    """(model, why) from the data: one technique -> random_effects (a per-technique model would add a
    between-technique SD that only its prior informs); several techniques but none with two or more
    studies -> random_effects too (the SDs within and between techniques cannot be told apart, and one
    tau already gives each study, hence each technique, its own effect); otherwise by_technique."""
    per_technique = used_effects(effects)["technique"].value_counts().sort_index()
    techniques = list(per_technique.index)
    if len(techniques) <= 1:
        return "random_effects", (f"one technique ({', '.join(techniques) or 'none'}): random effects; a "
                                  "per-technique model would add a between-technique SD informed by its prior alone")
    if per_technique.max() < 2:
        return "random_effects", (f"{len(techniques)} techniques with one study each: random effects; the SDs "
                                  "within and between techniques cannot be told apart with one study per technique")
    return "by_technique", f"{len(techniques)} techniques: per-technique effects around a pooled mean"


def _groups(n: int, word: str) -> str:
    plural = word[:-1] + "ies" if word.endswith("y") else word + "s"  # study -> studies
    return f"{n} {word if n == 1 else plural}"


def variance_warnings(model: str, effects: pd.DataFrame) -> list[str]:
    """A warning for each variance component that rests on one or two groups, so that its posterior
    is mostly its prior (and the pooled interval widens accordingly)."""
    used = used_effects(effects)
    per_technique = used["technique"].value_counts()
    out = []
    if model in ("random_effects", "selection") and len(used) <= 2:
        out.append(f"tau (between studies) rests on {_groups(len(used), 'study')}: its posterior is mostly its prior")
    if model == "by_technique":
        if len(per_technique) <= 2:
            out.append(f"tau_technique (between techniques) rests on {_groups(len(per_technique), 'technique')}: "
                       "its posterior is mostly its prior")
        repeated = int((per_technique >= 2).sum())
        if repeated <= 2:
            out.append(f"tau (between studies of a technique) rests on {_groups(repeated, 'technique')} with more "
                       "than one study: its posterior is mostly its prior (consider --model random_effects)")
    return out


def _model_and_options(effects: pd.DataFrame, model: str, mods, random, rho, cluster) -> tuple[str, list[str], dict]:
    """run_analysis's model (model "auto" chosen from the data), its first note and the describe options."""
    if random is not None:
        if model not in ("auto", "multilevel"):
            raise ValueError(f"random= fits the nested model (multilevel); it cannot be combined with model {model!r}")
        model = "multilevel"
        notes = [f"model: multilevel (nested random effects {random}; sampling errors within a {cluster or 'cluster'} "
                 + (f"correlated rho = {rho:g}, assumed)" if rho else "taken as independent: no rho given)")]
    elif model == "multilevel":
        raise ValueError("model 'multilevel' needs its levels: random= (CLI: --random '~ 1 | sample/study_id')")
    elif model == "auto":
        model, why = choose_model(effects)
        notes = [f"model: {model} (auto: {why})"]
    else:
        notes = [f"model: {model} (chosen by the user)"]
    if model == "meta_regression" and mods is None:
        raise ValueError("model 'meta_regression' needs moderators: mods= (CLI: --mods)")
    options = ({"mods": mods} if model == "meta_regression" else  # moderators enter only that model
               {"random": random, "rho": rho, "cluster": cluster} if model == "multilevel" else {})
    return model, notes, options


def sampled_description(effects: pd.DataFrame, model: str = "auto", priors: dict | None = None, engine: str = "auto",
                        mods=None, random=None, rho: float | None = None, cluster: str | None = None, **_):
    """The model description run_analysis with these arguments samples with PyMC (its compile cache is
    keyed by it), or None when it samples none (engine "exact") or samples a model without one
    (engine "pymc"). `evsynth fit` and `report` compile every outcome's sampler ahead, in one process
    (evsynth.engines.nutpie_cache.precompile). Bad arguments raise here as in run_analysis."""
    from ..model.description import CONSTRUCTORS, describe

    if engine == "exact":
        return None
    model, _, options = _model_and_options(effects, model, mods, random, rho, cluster)
    if model not in CONSTRUCTORS or (engine == "pymc" and model != "multilevel"):
        return None
    return describe(model, effects, priors, **options)


def run_analysis(label: str, effects: pd.DataFrame, model: str = "auto", priors: dict | None = None,
                 thresholds: dict | None = None, engine: str = "auto", mods=None, bias: bool = True,
                 random=None, rho: float | None = None, cluster: str | None = None,
                 **fit_options) -> AnalysisResult:
    """Fit one outcome. model "auto" chooses from the data (choose_model); the result's notes say
    which model ran and why, and warn about variance components resting on one or two groups.

    engine "auto": the PyMC model is sampled and, when the model is Gaussian (evsynth.model.description),
    checked against the exact posterior in MCSE units (`agreement`; a disagreement is a failed
    diagnostic); "pymc": sampled, no check; "exact": the exact engine alone (no MCMC: independent
    draws from the exact posterior and its exact summaries; fit_options draws, chains, seed).
    mods: the moderators of model "meta_regression" (ignored by the other models).
    random, rho, cluster: the nested model (model "multilevel", which `random` implies; see
    evsynth.model.description.multilevel): its levels ("~ 1 | sample/study_id"), the assumed
    correlation of sampling errors within a `cluster` (None: independent). Its bias-adjusted
    estimate, leave-one-out and certainty are computed on one row per cluster (they assume
    independent rows), and a note says so.
    bias: also compute `bias_adjusted` (RoBMA-PSMA, methods.robma), `influence` (methods.leave_out)
    and `certainty` (methods.certainty) -- a few seconds by quadrature; False leaves them None.

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> effects = es.compute_effects(studies, measure="RR")
        >>> result = run_analysis("tuberculosis", effects, engine="exact", draws=500, chains=2)
        >>> result.notes[0].startswith("model: random_effects (auto: one technique")
        True
        >>> result.summary.index[0]
        'pooled (mu)'
    """
    from ..model.description import CONSTRUCTORS, describe
    from ..data.vocabulary import ENGINES

    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} unknown; choose one of {', '.join(ENGINES)}")
    model, notes, options = _model_and_options(effects, model, mods, random, rho, cluster)
    notes += [f"warning: {w}" for w in variance_warnings(model, effects)]
    gaussian = model in CONSTRUCTORS
    if engine == "exact" and not gaussian:
        raise ValueError(f"--engine exact: model {model!r} has no Gaussian description (the exact engine fits "
                         f"{', '.join(sorted(CONSTRUCTORS))}); use --engine pymc")
    from ..engines.exact import check_draw_size

    check_draw_size(int(effects["used"].sum()) if "used" in effects else len(effects),
                    fit_options.get("draws", 1000), fit_options.get("chains", 4))
    description = (describe(model, effects, priors, **options)
                   if gaussian and (engine != "pymc" or model == "multilevel") else None)
    if model == "multilevel":
        notes += [f"warning: {w}" for w in level_warnings(description)]
        shared = shared_clusters(effects, cluster) if cluster else None
        if shared is not None and shared <= 2:
            notes.append(f"warning: only {_groups(shared, 'group')} of {cluster!r} hold several rows: the split of the "
                         "heterogeneity between the levels rests on them, so it is mostly the priors'")
    if engine == "exact":
        from ..engines.exact import ExactVerdict, fit_exact, posterior_grid, summary_table

        grid = posterior_grid(description)
        idata = fit_exact(description, grid=grid, **{k: v for k, v in fit_options.items() if k in ("draws", "chains", "seed")})
        diagnostics, summary, agreement = ExactVerdict(), summary_table(description, grid), None
        from .summary import heterogeneity_table

        # I² of a nested model would need every level's share: not computed (the tau rows are shown)
        I2 = (heterogeneity_table(idata, X=description.X if model == "meta_regression" else None)
              if model != "multilevel" else None)
        before = [p for p in summary.index if p.startswith("prediction")]
        at = summary.index.get_loc(before[0]) if before else len(summary)
        summary = pd.concat([summary.iloc[:at], I2, summary.iloc[at:]])
    else:
        from ..engines.builders import build_model  # PyMC and ArviZ load when a model is fitted, not with the CLI
        from .diagnostics import diagnose
        from ..engines.fit import fit
        from .summary import summarize

        # the description, when there is one: fit builds it and keys its compile cache by it
        idata = fit(description if description is not None else build_model(model, effects, priors, **options),
                    **fit_options)
        diagnostics, agreement = diagnose(idata, thresholds), None
        if model == "multilevel":
            from .summary import multilevel_summary

            summary = multilevel_summary(idata)
        else:
            summary = summarize(idata)
        if description is not None and engine != "pymc":
            from ..engines.exact import agreement as check, agreement_line

            agreement = check(idata, description)
            idata.attrs["exact_check"] = agreement_line(agreement)
            if not agreement.attrs["ok"]:
                diagnostics.problems.append(f"disagrees with the exact posterior: |z| {agreement.attrs['max_abs_z']:.1f} "
                                            f"MCSE at {agreement.attrs['worst']}")
    idata.attrs["analysis"] = label
    idata.attrs["engine"] = "exact" if engine == "exact" else "pymc"
    idata.attrs["model_notes"] = " | ".join(notes)
    result = AnalysisResult(label, effects, idata, diagnostics, summary, notes, agreement)
    if bias:
        independent = None
        if model == "multilevel":
            independent = one_row_per_sample(effects, by_outcome=not effects.attrs.get("pooled_outcomes", False))
            result.notes.append("bias-adjusted estimate, leave-one-out and certainty: on one row per sample "
                                f"({len(used_effects(independent))} of {len(used_effects(effects))} rows; "
                                "these methods assume independent rows)")
        add_bias_and_certainty(result, priors, effects=independent)
        result.notes += heterogeneity_prior_notes(result, model, priors, options if gaussian else None)
    return result


def heterogeneity_prior_notes(result: AnalysisResult, model: str, priors: dict | None,
                              options: dict | None) -> list[str]:
    """What the between-study SD's prior was and where it comes from; and, where an empirically
    informed prior applies to the measure (model.priors.informed_tau_prior: Rhodes et al. 2015 for
    SMD, Turner et al. 2015 for log OR) and was not the one used, the pooled effect under it (the
    same model on the exact engine), as a sensitivity. options: the model's keywords (None: the
    model has no Gaussian description, so no sensitivity)."""
    from ..model.priors import informed_tau_prior, parse_prior, prior_source

    used = result.idata.attrs.get("prior_tau")
    if not used:
        return []
    measure = result.effects.attrs.get("measure", "SMD")
    informed, why = informed_tau_prior(measure)
    given = "tau" in (priors or {})
    source = prior_source(used) if parse_prior(used).name else (
        "set by the user" if given else "evsynth's default, weakly informative")
    notes = [f"heterogeneity prior: tau ~ {used} ({source})"]
    if informed is None:
        notes.append(f"no empirically informed tau prior for {measure}: {why}")
        return notes
    if str(parse_prior(used)) == str(parse_prior(informed)) or options is None:
        return notes
    from ..engines.exact import summary_table
    from ..model.description import describe

    try:
        alternative = summary_table(describe(model, result.effects, dict(priors or {}) | {"tau": informed}, **options))
        # both sides on the exact engine: a sampled fit's figure carries Monte Carlo error, which
        # the line would otherwise pass off as the prior's effect
        mine = (result.summary if result.idata.attrs.get("engine") == "exact"
                else summary_table(describe(model, result.effects, dict(priors or {}), **options)))
    except ValueError as exc:
        return notes + [f"informed tau prior {informed} not compared: {exc}"]
    row = next(i for i in alternative.index if str(i).endswith("(mu)"))
    if row not in mine.index:
        return notes
    mine = mine.loc[row]
    def text(r):
        return f"{r['q50']:.2f} [{r['q2.5']:.2f}, {r['q97.5']:.2f}]"
    form = why.split(":", 1)[1].split(";")[0].strip()  # "log(tau^2) ~ t_5(-3.44, 2.59), i.e. ..."
    author = "Rhodes et al. 2015, SMD" if informed.startswith("rhodes") else "Turner et al. 2015, log OR"
    notes.append(f"sensitivity to the tau prior: with the empirically informed {informed} ({author}; {form}) "
                 f"pooled {text(alternative.loc[row])} vs {text(mine)} with {used} (median [95% CrI], exact "
                 "engine); the informed prior is a sensitivity, not the default (README: heterogeneity prior)")
    return notes


SAMPLE = "sample"  # the cluster column of nested models: sample_id, or the row's own study_id when it has none


def with_samples(effects: pd.DataFrame) -> pd.DataFrame:
    """The effect table with column `sample`: the row's sample_id, or its study_id when it has none
    (a row of its own), the cluster of rows that share participants.

    >>> import evsynth as es
    >>> with_samples(es.compute_effects(es.load_studies("studies/massage.csv")))["sample"].value_counts().max()
    2
    """
    sample = effects["sample_id"].where(effects["sample_id"].notna(), effects["study_id"])
    out = effects.assign(**{SAMPLE: sample.astype(str)})
    out.attrs = dict(effects.attrs)
    return out


def shared_clusters(effects: pd.DataFrame, column: str) -> int:
    """How many groups of `column` hold two or more of the used rows."""
    used = used_effects(effects)
    return int((used.groupby(column).size() > 1).sum()) if column in used else 0


def dependence_lines(result: AnalysisResult) -> list[str]:
    """What a nested model assumed and found, in words: its levels, the assumed within-cluster
    correlation of sampling errors, how many clusters hold several rows, and each variance
    component (posterior median and 95% interval). Empty for any other model."""
    attrs = result.idata.attrs
    if attrs.get("model") != "multilevel":
        return []
    used = used_effects(result.effects)
    outer = attrs.get("random", "").split(", ")[0]
    column = outer.split("/")[-1] if outer else SAMPLE
    groups = used.groupby(column).size() if column in used else pd.Series(dtype=int)
    rho = attrs.get("rho")
    lines = [f"random structure: ~ 1 | {attrs.get('random', '').split(', ')[-1]} (levels: {attrs.get('random', '')}); "
             f"{len(used)} rows in {len(groups)} {column} groups, {int((groups > 1).sum())} with several rows",
             ("sampling errors within a " + attrs.get("rho_cluster", column) + f" group: correlation rho = {rho} "
              "(assumed, not estimated; vary it: evsynth multilevel --rho-grid)") if rho not in (None, "0") else
             ("sampling errors: independent (rho = 0)" if rho == "0" else
              "sampling errors: taken as independent (no --rho); rows of one sample measure the same people, so "
              "their errors are usually positively correlated: give --rho to assume a correlation")]
    taus = result.summary[[str(i).startswith("tau (") for i in result.summary.index]]
    parts = [f"{name} {row['q50']:.3f} [{row['q2.5']:.3f}, {row['q97.5']:.3f}]" for name, row in taus.iterrows()]
    lines.append("variance components (SDs; posterior median [95% CrI]): " + "; ".join(parts))
    return lines


def level_warnings(description) -> list[str]:
    """A warning for each level of a nested model with one or two groups (its SD is then mostly
    its prior) and for a row level whose clusters hold one row each."""
    out = []
    for part in description.parts:
        if len(part.labels) <= 2:
            out.append(f"{part.tau} rests on {_groups(len(part.labels), 'group')}: its posterior is mostly its prior")
    return out


def add_bias_and_certainty(result: AnalysisResult, priors: dict | None = None,
                           effects: pd.DataFrame | None = None) -> AnalysisResult:
    """Fill result.bias_adjusted (methods.robma), result.influence (methods.leave_out) and
    result.certainty (methods.certainty) in place, from `effects` (default: result.effects; a
    nested model passes one row per sample, as these methods take rows as independent).
    An outcome whose certainty cannot be rated by rule (MD without an imprecision threshold) keeps
    certainty None and says why in notes."""
    from .certainty import rate_certainty
    from .leave_out import leave_one_out
    from .robma import bias_adjusted

    effects = result.effects if effects is None else effects
    result.bias_adjusted = bias_adjusted(effects, priors)
    if any(str(name).startswith("technique: ") for name in result.summary.index):
        from .own_data import own_data, withhold_unsupported

        result.own_data = own_data(effects, priors)
        result.summary, blanked = withhold_unsupported(result.summary, result.own_data)
        if blanked:
            result.notes.append(f"P(>0) not shown for {', '.join(blanked)}: the technique's own studies do not "
                                "support it (own-data 95% interval includes 0)")
    try:
        result.influence = leave_one_out(effects, priors)
    except ValueError as exc:  # e.g. priors the random-effects description refuses
        result.notes.append(f"leave-one-out not computed: {exc}")
    try:
        # tau, the CrI and the prediction interval the output quotes (exact engine: exact, not draws)
        result.certainty = rate_certainty(effects, result.idata, result.bias_adjusted, label=result.label,
                                          summary=result.summary)
    except ValueError as exc:
        result.notes.append(f"certainty not rated: {exc}")
    return result
