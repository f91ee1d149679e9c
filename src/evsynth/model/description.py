"""One description of the Gaussian meta-analysis model; the engines (evsynth.engines.exact,
evsynth.engines.pymc) fit it, the constructors below make it from an effect table.

    y_i ~ N(theta_i, se_i^2)                        (censored rows: y_i only known beyond yi)
    theta_i = X_i beta + sum_j tau_j (Z_j z_j)_i + tau e_i
    beta ~ independent normal priors, z_j ~ N(0, R_j), e ~ N(0, R_study), tau_j, tau ~ priors

beta holds the fixed part (an intercept `mu`, treatment contrasts `technique_effect` of a
network, moderator slopes `beta`), each `RandomPart` a variance component above the studies
(between techniques), and the study level `tau` the between-study heterogeneity (R_study has
0.5 between two contrasts of one multi-arm trial, as in a network with a shared comparator arm).
`Reported` quantities are linear in (beta, tau_j z_j): a technique's effect mu + tau_technique
z_k, a node split's indirect estimate d_a - d_b. Given every SD, all of it is jointly Gaussian;
that is what the exact engine exploits.

Censored rows (p printed only as a bound): `yi` holds the signed bound and the statistic is
only known to lie beyond it (above a positive bound, below a negative one).

This module imports neither PyMC nor ArviZ: describing a model is cheap (sweeps build one
per scenario).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..effects.table import check_poolable, used_effects  # noqa: F401  (check_poolable: part of this API)
from .network_graph import prepare_network, splittable_comparisons
from .priors import parse_prior

# Defaults on the standardized scale (SMD, SMCC) and the log-ratio scale (ROM): an effect beyond
# +-2 SD is implausible for a massage, and between-study SDs above ~1 likewise. `beta` is the
# prior of a moderator's slope per unit of the moderator's column.
STANDARD_PRIORS = {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)", "tau_technique": "halfnormal(0.5)",
                   "beta": "normal(0, 1)"}


# --------------------------------------------------------------------------- the description


@dataclass(frozen=True)
class FixedBlock:
    """A named piece of beta: a scalar (dim None, one label) or a vector over `dim`."""

    name: str
    dim: str | None
    labels: tuple[str, ...]
    prior: str  # a normal prior, the same for every entry

    @property
    def size(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class RandomPart:
    """A variance component above the studies: theta gets tau_name * Z @ z, z ~ N(0, correlation)."""

    tau: str  # name of its SD parameter, e.g. "tau_technique"
    prior: str
    dim: str  # coordinate of its levels, e.g. "technique"
    labels: tuple[str, ...]
    design: np.ndarray  # rows x levels
    correlation: np.ndarray | None = None  # levels x levels; None: independent levels


@dataclass(frozen=True)
class Reported:
    """A derived quantity, linear given the SDs: fixed @ beta + sum_j tau_j * random[tau_j] @ z_j."""

    name: str
    dim: str | None
    labels: tuple[str, ...]
    fixed: np.ndarray  # len(labels) x len(beta)
    random: dict = field(default_factory=dict)  # tau name -> len(labels) x levels of that part


@dataclass(frozen=True)
class GaussianModel:
    kind: str  # the constructor's name, e.g. "by_technique"
    study_id: tuple[str, ...]
    yi: np.ndarray
    sei: np.ndarray
    censored: np.ndarray  # bool
    X: np.ndarray  # rows x len(beta)
    fixed: tuple[FixedBlock, ...]
    parts: tuple[RandomPart, ...] = ()
    study_prior: str | None = None  # prior of tau (between studies); None: common effect
    study_correlation: np.ndarray | None = None  # rows x rows; None: independent study effects
    reported: tuple[Reported, ...] = ()
    settings: dict = field(default_factory=dict)  # strings that travel with the result (attrs)
    data: dict = field(default_factory=dict)  # extra constant data (e.g. technique_idx), name -> array
    sampling_cov: np.ndarray | None = None  # rows x rows covariance of the sampling errors; None: diag(sei^2)

    @property
    def n(self) -> int:
        return len(self.study_id)

    @property
    def taus(self) -> list[tuple[str, str]]:
        """(name, prior) of every variance component: the study level first, then the parts."""
        study = [("tau", self.study_prior)] if self.study_prior is not None else []
        return study + [(p.tau, p.prior) for p in self.parts]

    def prior_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Means and SDs of the normal priors on beta, entry by entry."""
        means, sds = [], []
        for block in self.fixed:
            prior = parse_prior(block.prior)
            if prior.family != "normal":
                raise ValueError(f"prior of {block.name} is {prior}: the Gaussian model takes normal priors "
                                 "on its fixed coefficients")
            means += [prior.params[0]] * block.size
            sds += [prior.params[1]] * block.size
        return np.array(means), np.array(sds)

    def block_slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for block in self.fixed:
            out[block.name] = slice(start, start + block.size)
            start += block.size
        return out

    def subset(self, keep) -> GaussianModel:
        """The model on the rows where `keep` is true, as its constructor gives it on the reduced
        table: levels of a random part and entries of a vector block (a network's technique
        contrasts) left without rows are dropped, with every reported row that refers to them.
        Priors stay as resolved for the full table. Sweeps (leave-one-out, exclusions) use it: no
        pandas per scenario. The engine-specific `data` (index arrays) and `data_hash` are not
        carried over, so a subset is for the exact engine's summaries, not for a saved fit."""
        keep = np.asarray(keep, bool)
        if keep.shape != (self.n,):
            raise ValueError(f"keep has shape {keep.shape}; the model has {self.n} rows")
        X = self.X[keep]
        columns = np.ones(X.shape[1], bool)  # fixed entries kept
        for block, sl in zip(self.fixed, self.block_slices().values()):
            if block.dim is not None:
                columns[sl] = np.abs(X[:, sl]).sum(axis=0) > 0
        fixed, start = [], 0
        for block in self.fixed:
            mask = columns[start:start + block.size]
            start += block.size
            if mask.any():
                fixed.append(replace(block, labels=tuple(np.array(block.labels)[mask])))
        parts, levels = [], {}
        for part in self.parts:
            design = part.design[keep]
            used = np.abs(design).sum(axis=0) > 0
            levels[part.tau] = used
            correlation = None if part.correlation is None else part.correlation[np.ix_(used, used)]
            parts.append(replace(part, labels=tuple(np.array(part.labels)[used]), design=design[:, used],
                                 correlation=correlation))
        reported = []
        for rep in self.reported:
            rows = ~(np.abs(rep.fixed[:, ~columns]).sum(axis=1) > 0)
            for tau, matrix in rep.random.items():
                rows &= ~(np.abs(matrix[:, ~levels[tau]]).sum(axis=1) > 0)
            if rows.any():
                reported.append(replace(rep, labels=tuple(np.array(rep.labels)[rows]), fixed=rep.fixed[rows][:, columns],
                                        random={t: m[rows][:, levels[t]] for t, m in rep.random.items()}))
        correlation = None
        if self.study_correlation is not None:
            correlation = self.study_correlation[np.ix_(keep, keep)]
            if np.allclose(correlation, np.eye(int(keep.sum()))):
                correlation = None
        settings = {k: v for k, v in self.settings.items() if k != "data_hash"}
        sampling_cov = None if self.sampling_cov is None else self.sampling_cov[np.ix_(keep, keep)]
        return replace(self, study_id=tuple(np.array(self.study_id)[keep]), yi=self.yi[keep], sei=self.sei[keep],
                       sampling_cov=sampling_cov,
                       censored=self.censored[keep], X=X[:, columns], fixed=tuple(fixed), parts=tuple(parts),
                       study_correlation=correlation, reported=tuple(reported), settings=settings, data={})

    def without(self, name: str) -> GaussianModel:
        """The point-null model: fixed block `name` (e.g. "mu", "beta") set to 0, or variance
        component `name` ("tau", "tau_technique") set to 0. Reported quantities keep their
        meaning with that part at 0. For Bayes factors (evsynth.engines.exact.bayes_factor)."""
        slices = self.block_slices()
        if name in slices:
            drop = np.zeros(self.X.shape[1], bool)
            drop[slices[name]] = True
            reported = tuple(replace(rep, fixed=rep.fixed[:, ~drop]) for rep in self.reported)
            return replace(self, X=self.X[:, ~drop], fixed=tuple(b for b in self.fixed if b.name != name),
                           reported=reported, settings=self.settings | {"null": f"{name} = 0"})
        if name == "tau" and self.study_prior is not None:
            return replace(self, study_prior=None, study_correlation=None, settings=self.settings | {"null": "tau = 0"})
        if name in [p.tau for p in self.parts]:
            reported = tuple(replace(rep, random={t: m for t, m in rep.random.items() if t != name})
                             for rep in self.reported)
            return replace(self, parts=tuple(p for p in self.parts if p.tau != name), reported=reported,
                           settings=self.settings | {"null": f"{name} = 0"})
        known = list(slices) + [t for t, _ in self.taus]
        raise ValueError(f"{name!r} is not a part of this {self.kind} model; its parts: {', '.join(known)}")

    def censoring_direction(self) -> np.ndarray:
        """+1 where the statistic lies above its (positive) bound, -1 below a negative one, 0 if exact."""
        return np.where(self.censored, np.where(self.yi > 0, 1.0, -1.0), 0.0)


# --------------------------------------------------------------------------- shared with the builders


def default_priors(effects: pd.DataFrame) -> dict[str, str]:
    """Weakly-informative priors for the table's measure; MD priors are the standardized ones
    rescaled by the median raw-score SD of the studies, so they are in the outcome's unit."""
    measure = effects.attrs.get("measure", "SMD")
    if measure != "MD":
        return dict(STANDARD_PRIORS)
    scale = float(np.nanmedian(effects["sd_scale"])) if effects["sd_scale"].notna().any() else np.nan
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError("MD priors need a raw-score SD from at least one study; pass priors explicitly")
    return {"mu": f"normal(0, {scale:.4g})", "tau": f"halfnormal({0.5 * scale:.4g})",
            "tau_technique": f"halfnormal({0.5 * scale:.4g})", "beta": f"normal(0, {scale:.4g})"}


def resolve_priors(effects: pd.DataFrame, priors: dict | None, names=("mu", "tau")) -> dict[str, str]:
    """The priors a model needs: the user's where given, else the documented defaults."""
    given = dict(priors or {})
    unknown = set(given) - set(STANDARD_PRIORS)
    if unknown:
        raise ValueError(f"priors for {sorted(unknown)} unknown; this model takes {list(names)}")
    missing = [n for n in names if n not in given]
    chosen = (default_priors(effects) if missing else {}) | given
    return {name: str(parse_prior(chosen[name], name)) for name in names}


def prepare(effects: pd.DataFrame) -> pd.DataFrame:
    """The used rows of a pairwise analysis, checked."""
    return check_poolable(used_effects(effects), effects.attrs.get("measure"))


def data_hash(study_id, yi, sei, censored, weights=None) -> str:
    """16 hex digits identifying the data a model was fitted to (and the study weights, if any)."""
    hashed = pd.DataFrame({"study_id": list(study_id), "yi": np.asarray(yi, float), "sei": np.asarray(sei, float),
                           "censored": np.asarray(censored, bool)})
    if weights is not None:
        hashed = hashed.assign(weight=weights)
    return hashlib.sha256(hashed.to_csv(index=False).encode()).hexdigest()[:16]


def data_settings(effects: pd.DataFrame, table: pd.DataFrame, weights: np.ndarray | None = None,
                  study_effects: bool = True) -> dict:
    """What produced the data, to travel with the result (attrs)."""
    settings = {k: str(v) for k, v in effects.attrs.items() if k in ("measure", "r_prepost", "p_bound")}
    settings |= {"outcomes": ", ".join(sorted(table["outcome"].unique())),
                 "data_hash": data_hash(table["study_id"].astype(str), table["yi"], table["sei"], table["censored"],
                                        weights)}
    if weights is not None:
        settings["weights"] = ", ".join(f"{s}={w:g}" for s, w in zip(table["study_id"], weights) if w != 1)
    if not study_effects:
        settings["study_effects"] = "integrated out"
    return settings


# --------------------------------------------------------------------------- constructors


def _base(kind: str, effects: pd.DataFrame, table: pd.DataFrame, **fields) -> GaussianModel:
    return GaussianModel(kind=kind, study_id=tuple(table["study_id"].astype(str)),
                         yi=table["yi"].to_numpy(float), sei=table["sei"].to_numpy(float),
                         censored=table["censored"].to_numpy(bool), **fields)


def common_effect(effects: pd.DataFrame, priors: dict | None = None) -> GaussianModel:
    """theta_i = mu for every study (no heterogeneity)."""
    table = prepare(effects)
    chosen = resolve_priors(effects, priors, ("mu",))
    return _base("common_effect", effects, table, X=np.ones((len(table), 1)),
                 fixed=(FixedBlock("mu", None, ("mu",), chosen["mu"]),),
                 settings=data_settings(effects, table) | {"model": "common_effect", "prior_mu": chosen["mu"]})


def random_effects(effects: pd.DataFrame, priors: dict | None = None) -> GaussianModel:
    """theta_i = mu + tau e_i."""
    table = prepare(effects)
    chosen = resolve_priors(effects, priors)
    return _base("random_effects", effects, table, X=np.ones((len(table), 1)),
                 fixed=(FixedBlock("mu", None, ("mu",), chosen["mu"]),), study_prior=chosen["tau"],
                 settings=data_settings(effects, table) | {"model": "random_effects", "prior_mu": chosen["mu"],
                                                          "prior_tau": chosen["tau"]})


def technique_index(table: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    techniques = sorted(table["technique"].unique())
    return techniques, table["technique"].map({t: k for k, t in enumerate(techniques)}).to_numpy()


MAX_TECHNIQUES = 500  # techniques in one by_technique model (issue 25: 10,000 ran out of memory)


def by_technique(effects: pd.DataFrame, priors: dict | None = None) -> GaussianModel:
    """technique_effect_k = mu + tau_technique z_k, theta_i = technique_effect_k[i] + tau e_i."""
    table = prepare(effects)
    chosen = resolve_priors(effects, priors, ("mu", "tau", "tau_technique"))
    techniques, index = technique_index(table)
    if len(techniques) > MAX_TECHNIQUES:  # refused before a dense studies x techniques design is built
        raise ValueError(f"model 'by_technique': {len(techniques):,} techniques, more than the limit of "
                         f"{MAX_TECHNIQUES:,} (the exact engine's dense linear algebra grows with the cube of it); "
                         "group them (--group-combinations, a coarser label) or fit random_effects")
    Z = np.eye(len(techniques))[index]
    part = RandomPart("tau_technique", chosen["tau_technique"], "technique", tuple(techniques), Z)
    effect = Reported("technique_effect", "technique", tuple(techniques), np.ones((len(techniques), 1)),
                      {"tau_technique": np.eye(len(techniques))})
    return _base("by_technique", effects, table, X=np.ones((len(table), 1)),
                 fixed=(FixedBlock("mu", None, ("mu",), chosen["mu"]),), parts=(part,),
                 study_prior=chosen["tau"], reported=(effect,), data={"technique_idx": index},
                 settings=data_settings(effects, table) | {
                     "model": "by_technique", "prior_mu": chosen["mu"], "prior_tau": chosen["tau"],
                     "prior_tau_technique": chosen["tau_technique"]})


def meta_regression(effects: pd.DataFrame, mods, priors: dict | None = None) -> GaussianModel:
    """theta_i = mu + x_i beta + tau e_i: moderators from evsynth.model.moderators.design_matrix
    (its intercept column, if any, is `mu`: the effect where every moderator is zero)."""
    from .moderators import design_matrix  # the features engineer's module

    table = prepare(effects)
    chosen = resolve_priors(effects, priors, ("mu", "tau", "beta"))
    X, names = design_matrix(table, mods)
    X, names = np.asarray(X, float), [str(n) for n in names]
    intercept = [k for k, n in enumerate(names) if n.lower() in ("intrcpt", "intercept", "(intercept)")]
    slopes = [k for k in range(len(names)) if k not in intercept]
    if not slopes:
        raise ValueError(f"mods {mods!r} give no moderator column")
    X = np.column_stack([np.ones(len(table)), X[:, slopes]])
    labels = tuple(names[k] for k in slopes)
    if np.linalg.matrix_rank(X) < X.shape[1]:  # e.g. "~ 0 + C(alloc)": every level's dummy beside mu
        from .moderators import ModeratorError

        raise ModeratorError(f"mods {mods!r}: the moderator columns {', '.join(labels)} add up to the intercept "
                             "(mu is always in the model): keep the intercept in the formula")
    settings = data_settings(effects, table) | {
        "model": "meta_regression", "mods": ", ".join(labels), "prior_mu": chosen["mu"],
        "prior_tau": chosen["tau"], "prior_beta": chosen["beta"]}
    return _base("meta_regression", effects, table, X=X,
                 fixed=(FixedBlock("mu", None, ("mu",), chosen["mu"]),
                        FixedBlock("beta", "moderator", labels, chosen["beta"])),
                 study_prior=chosen["tau"], settings=settings, data={"X": X[:, 1:]})


def multi_arm_correlation(trials) -> np.ndarray | None:
    """0.5 between two contrasts of the same multi-arm trial (shared comparator arm, equal
    heterogeneity), 1 on the diagonal; None when every trial contributes one row."""
    trials = pd.Series(list(trials)).astype(str)
    if not trials.duplicated().any():
        return None
    same = trials.to_numpy()[:, None] == trials.to_numpy()[None, :]
    return np.where(same, 0.5, 0.0) + 0.5 * np.eye(len(trials))


def network(effects: pd.DataFrame, priors: dict | None = None, reference: str = "control",
            split: tuple[str, str] | None = None, prepost_as_control: bool = False) -> GaussianModel:
    """Contrast-based NMA (evsynth.methods.network): theta_i = d[treat_i] - d[comp_i] + tau e_i, d[ref] = 0.

    A column `trial` in the table groups the rows of one multi-arm trial: their study effects
    get correlation 0.5, and their sampling errors the covariance of contrasts sharing one control
    arm (effects.covariance.shared_control_covariance: MD sd_ctrl^2 / n_ctrl, SMD 1 / n_ctrl +
    d_1 d_2 / (2 N)), from columns `n_ctrl` (and `sd_ctrl` for MD) of the table
    (model.moderators.with_study_columns adds them from the study table). Without those columns,
    or for another measure, the rows' sampling errors stay independent and settings["sampling_cov"]
    says so. split=(a, b) gives the node-splitting model: the a-b studies get their
    own coefficient `direct`; `indirect` = d_a - d_b and `inconsistency` = direct - indirect.
    Pre/post rows enter only with prepost_as_control=True (see evsynth.methods.network).
    """
    table = prepare_network(effects, reference, prepost_as_control)
    ref = table.attrs["reference"]
    chosen = resolve_priors(effects, priors, ("mu", "tau"))
    techniques = sorted((set(table["treat_node"]) | set(table["comp_node"])) - {ref})
    column = {t: k for k, t in enumerate(techniques)}
    X = np.zeros((len(table), len(techniques)))
    for i, (t, c) in enumerate(zip(table["treat_node"], table["comp_node"])):
        if t != ref:
            X[i, column[t]] += 1.0
        if c != ref:
            X[i, column[c]] -= 1.0
    fixed = [FixedBlock("technique_effect", "technique", tuple(techniques), chosen["mu"])]
    trials = table["trial"] if "trial" in table.columns else table["study_id"]
    sampling_cov, how = shared_control(table, trials, effects.attrs.get("measure"))
    settings = data_settings(effects, table) | {
        "model": "network", "reference": ref, "prior_mu": chosen["mu"], "prior_tau": chosen["tau"],
        "prepost_as_control": str(prepost_as_control)} | ({"sampling_cov": how} if how else {})
    position = {ref: 0} | {t: k + 1 for k, t in enumerate(techniques)}
    data = {"treat_idx": table["treat_node"].map(position).to_numpy(),
            "comp_idx": table["comp_node"].map(position).to_numpy()}
    model = _base("network", effects, table, X=X, fixed=tuple(fixed), study_prior=chosen["tau"],
                  study_correlation=multi_arm_correlation(trials), settings=settings, data=data,
                  sampling_cov=sampling_cov)
    return model if split is None else split_network(model, split, splittable_comparisons(table))


def split_network(model: GaussianModel, split: tuple[str, str], splittable) -> GaussianModel:
    """The node-splitting model of a network description (`network(..., split=split)`): the a-b
    studies get their own coefficient `direct`; `indirect` = d_a - d_b and `inconsistency` =
    direct - indirect. `splittable`: model.network_graph.splittable_comparisons of its table. Node
    splits derive every split from the one description (no pandas per split)."""
    a, b = split
    if (a, b) not in splittable and (b, a) not in splittable:
        raise ValueError(f"comparison {a!r} vs {b!r} cannot be split: it needs direct studies and an "
                         f"indirect path; splittable here: {splittable}")
    ref, techniques = model.settings["reference"], list(model.fixed[0].labels)
    nodes = np.array([ref] + techniques, dtype=object)
    treat, comp = nodes[model.data["treat_idx"]], nodes[model.data["comp_idx"]]
    column = {t: k for k, t in enumerate(techniques)}
    sign = np.where((treat == a) & (comp == b), 1.0, np.where((treat == b) & (comp == a), -1.0, 0.0))
    X = np.column_stack([np.where(sign[:, None] != 0, 0.0, model.X), sign])
    fixed = (*model.fixed, FixedBlock("direct", None, ("direct",), model.settings["prior_mu"]))
    contrast = np.zeros((1, X.shape[1]))
    if a != ref:
        contrast[0, column[a]] += 1.0
    if b != ref:
        contrast[0, column[b]] -= 1.0
    direct = np.zeros((1, X.shape[1]))
    direct[0, -1] = 1.0
    reported = (*model.reported, Reported("indirect", None, ("indirect",), contrast),
                Reported("inconsistency", None, ("inconsistency",), direct - contrast))
    return replace(model, X=X, fixed=fixed, reported=reported,
                   settings=model.settings | {"model": f"network split {a} vs {b}"})


def shared_control(table: pd.DataFrame, trials, measure: str | None) -> tuple[np.ndarray | None, str]:
    """(V, what was done) for the rows of a network: the shared-control covariance of the contrasts
    of each multi-arm trial (rows with one `trials` label); (None, "") when no trial has several rows.
    A trial's rows must share their comparator (one control arm); V needs n_ctrl (and sd_ctrl for
    MD) and is defined for MD and SMD; otherwise (None, the reason the errors stay independent)."""
    trials = pd.Series(list(trials), index=table.index).astype(str)
    multi = trials.duplicated(keep=False)
    if not multi.any():
        return None, ""
    names = ", ".join(sorted(set(trials[multi])))
    for trial, rows in table[multi].groupby(trials[multi]):
        if rows["comp_node"].nunique() > 1:
            raise ValueError(f"trial {trial!r}: its rows have different comparators ({', '.join(rows['comp_node'])}); "
                             "enter a multi-arm trial's contrasts against one shared arm")
    needed = ["n_ctrl"] + (["sd_ctrl"] if measure == "MD" else [])
    if measure not in ("MD", "SMD"):
        return None, (f"independent: no shared-control covariance for {measure} (multi-arm trial(s) {names}; "
                      "their study effects are still correlated 0.5)")
    censored = table.loc[multi & table["censored"].astype(bool), "study_id"]
    if len(censored):
        raise ValueError(f"study {censored.iloc[0]!r}: a censored row (p printed as a bound) of a multi-arm trial "
                         "cannot share its control arm's sampling error; leave it out or use p_bound='conservative'")
    missing = [c for c in needed if c not in table.columns or table.loc[multi, c].isna().any()]
    if missing:
        return None, (f"independent: multi-arm trial(s) {names} lack {', '.join(missing)} for the shared-control "
                      "covariance (their study effects are still correlated 0.5)")
    from ..effects.covariance import shared_control_covariance

    n_c = pd.to_numeric(table["n_ctrl"], errors="coerce").to_numpy(float)
    n_c = np.where(multi.to_numpy(), n_c, 1.0)  # rows of one-contrast trials: only their variance is used
    sd_c = (np.where(multi.to_numpy(), pd.to_numeric(table["sd_ctrl"], errors="coerce").to_numpy(float), 1.0)
            if measure == "MD" else None)
    # N of Gleser & Olkin's SMD covariance: everyone in the trial, control arm once
    k = trials.map(trials.value_counts()).to_numpy(float)
    N = trials.map(table.groupby(trials)["n_total"].sum()).to_numpy(float) - (k - 1) * n_c
    V = shared_control_covariance(table["sei"].to_numpy(float) ** 2, trials.to_numpy(), n_c, sd_control=sd_c,
                                  yi=table["yi"].to_numpy(float), n_total=N, measure=measure)
    return V, f"shared control arm within multi-arm trial(s) {names} ({measure}: " + (
        "sd_ctrl^2 / n_ctrl)" if measure == "MD" else "1 / n_ctrl + d_1 d_2 / (2 N), Gleser & Olkin 2009)")


def _nesting_paths(random) -> list[tuple[str, ...]]:
    """["study", "study/effect"] or "~ 1 | study/effect" as paths of columns, outermost first."""
    import re

    if isinstance(random, str):
        match = re.fullmatch(r"\s*~\s*1\s*\|\s*([A-Za-z_][\w.]*(?:\s*/\s*[A-Za-z_][\w.]*)*)\s*", random)
        if not match:
            raise ValueError(f"random {random!r}: expected '~ 1 | study/effect' or a list such as "
                             "['study', 'study/effect']")
        path = [p.strip() for p in match.group(1).split("/")]
        return [tuple(path[:k + 1]) for k in range(len(path))]
    if isinstance(random, (list, tuple)) and random and all(isinstance(r, str) and r.strip() for r in random):
        paths = [tuple(p.strip() for p in r.split("/")) for r in random]
        if len(set(paths)) != len(paths):
            raise ValueError(f"random {random!r} names a level twice")
        return paths
    raise ValueError(f"random must be '~ 1 | study/effect' or a list of levels such as ['study', 'study/effect'], "
                     f"not {random!r}")


def multilevel(effects: pd.DataFrame, priors: dict | None = None, random=None, rho: float | None = None,
               cluster: str | None = None) -> GaussianModel:
    """Nested random effects: theta_i = mu + sum_levels tau_level z_level[group of row i] (+ tau e_i).

    random: the levels above the rows, outermost first, each a path of columns of the effect
    table ("trial", "trial/sample"); or "~ 1 | trial/sample". A level whose groups are single rows
    is the row level: its SD is `tau` (the model's study-level SD, here between rows within the
    groups above) and must come last. Every other level is a random part with SD `tau_<column>`
    (its last column) over dim `group_<column>`. Priors: `mu`, `tau`, and `tau_<column>` per level
    (default: the `tau` prior). The exact engine integrates over up to three SDs.

    rho: the correlation of the sampling errors of two rows of one cluster (the same participants
    measured twice; usually unknown, so vary it), V_ij = rho se_i se_j as metafor's vcalc;
    cluster: the column whose groups share participants (default: the outermost level).
    A censored row cannot share sampling error with another row (its statistic is only a bound).
    """
    if random is None:
        raise ValueError("multilevel needs random=, the levels above the rows, e.g. ['trial', 'trial/outcome']")
    table = prepare(effects)
    paths = _nesting_paths(random)
    given = dict(priors or {})
    names = [path[-1] for path in paths]
    level_priors = {f"tau_{n}": given.pop(f"tau_{n}") for n in names if f"tau_{n}" in given}
    chosen = resolve_priors(effects, given, ("mu", "tau"))
    parts, row_level = [], None
    for k, path in enumerate(paths):
        for column in path:
            if column not in table.columns:
                raise ValueError(f"random level {'/'.join(path)!r}: column {column!r} is not in the effect table")
            empty = table[column].isna() | table[column].astype(str).str.strip().eq("")
            if empty.any():
                studies = ", ".join(repr(s) for s in table.loc[empty, "study_id"])
                raise ValueError(f"random level {'/'.join(path)!r}: column {column!r} is empty for {studies}")
        keys = table[list(path)].astype(str).agg("/".join, axis=1)
        codes, labels = pd.factorize(keys)
        if len(labels) == len(table):
            if k != len(paths) - 1:
                raise ValueError(f"random level {'/'.join(path)!r} has one row per group, so it is the row level "
                                 "and must come last")
            row_level = "/".join(path)
            continue
        if len(labels) < 2:
            raise ValueError(f"random level {'/'.join(path)!r} has a single group: its SD cannot be told apart "
                             "from the mean")
        name = f"tau_{path[-1]}"
        prior = str(parse_prior(level_priors.get(name, chosen["tau"]), name))
        parts.append(RandomPart(name, prior, f"group_{path[-1]}", tuple(labels), np.eye(len(labels))[codes]))
    unknown = set(level_priors) - {p.tau for p in parts}
    if unknown:
        raise ValueError(f"priors for {sorted(unknown)}: no such level above the rows")
    settings = data_settings(effects, table) | {
        "model": "multilevel", "random": ", ".join("/".join(p) for p in paths), "prior_mu": chosen["mu"]}
    sampling_cov = None
    if rho is not None and float(rho) != 0:
        from ..effects.covariance import impute_covariance

        column = cluster or paths[0][0]
        if column not in table.columns:
            raise ValueError(f"cluster column {column!r} is not in the effect table")
        groups = table[column].astype(str).to_numpy()
        sampling_cov = impute_covariance(table["sei"].to_numpy(float) ** 2, groups, float(rho))
        shared = (groups[:, None] == groups[None, :]).sum(axis=1) > 1
        bad = table.loc[table["censored"].to_numpy(bool) & shared, "study_id"]
        if len(bad):
            raise ValueError(f"study {bad.iloc[0]!r}: a censored row (p printed as a bound) cannot share sampling "
                             f"error with the other rows of its {column!r} group; use rho=None or leave it out")
        settings |= {"rho": f"{float(rho):g}", "rho_cluster": column}
    elif rho is not None:
        settings |= {"rho": "0"}
    settings |= {f"prior_{p.tau}": p.prior for p in parts}
    if row_level is not None:
        settings |= {"prior_tau": chosen["tau"], "row_level": row_level}
    return _base("multilevel", effects, table, X=np.ones((len(table), 1)),
                 fixed=(FixedBlock("mu", None, ("mu",), chosen["mu"]),), parts=tuple(parts),
                 study_prior=chosen["tau"] if row_level is not None else None, settings=settings,
                 sampling_cov=sampling_cov)


CONSTRUCTORS = {"common_effect": common_effect, "random_effects": random_effects, "by_technique": by_technique,
                "network": network, "meta_regression": meta_regression, "multilevel": multilevel}


def describe(kind: str, effects: pd.DataFrame, priors: dict | None = None, **options) -> GaussianModel:
    """The description of model `kind` for an effect table (KeyError-free: unknown kinds are refused)."""
    if kind not in CONSTRUCTORS:
        raise ValueError(f"model {kind!r} has no Gaussian description; these do: {sorted(CONSTRUCTORS)}")
    return CONSTRUCTORS[kind](effects, priors, **options) if kind != "meta_regression" else \
        meta_regression(effects, options.pop("mods"), priors)
