"""Binary outcomes: log RR, log OR and RD from 2x2 counts (metafor's escalc) with continuity
corrections, ratios given with their CI, and the logit conversion of a log OR to the SMD scale."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..data.vocabulary import BINARY_MEASURES
from .distributions import norm_ppf
from .errors import EffectSizeError


CONTINUITY_TO = ("only0", "all", "if0all", "none")


@dataclass(frozen=True)
class Continuity:
    """Zero-cell handling of 2x2 tables, as metafor's escalc/rma arguments add, to and drop00."""

    add: float = 0.5
    to: str = "only0"  # "only0": studies with a zero cell; "all"; "if0all": all if any has one; "none"
    # A study with no events (or only events) in both arms carries no information on a ratio (RR, OR);
    # None: drop it for RR and OR, keep it for RD (an RD of 0 is an estimate: escalc's drop00=FALSE).
    drop00: bool | None = None

    def drops(self, measure: str) -> bool:
        """Whether double-zero studies are left out under `measure` (None: all but RD)."""
        return measure.upper() != "RD" if self.drop00 is None else self.drop00

    def __post_init__(self):
        if self.to not in CONTINUITY_TO:
            raise EffectSizeError(f"continuity to={self.to!r} unknown; choose one of {CONTINUITY_TO}")
        if not (math.isfinite(self.add) and self.add >= 0):
            raise EffectSizeError(f"continuity add={self.add} must be a finite number >= 0")


def _cells(row) -> tuple[float, float, float, float]:
    """(ai, bi, ci, di): events and non-events in the treatment, then the comparator arm."""
    a, c = row["events_treat"], row["events_ctrl"]
    return a, row["n_treat"] - a, c, row["n_ctrl"] - c


def _has_zero_cell(row) -> bool:
    return min(_cells(row)) == 0


def _double_zero(row) -> bool:
    """No events (or only events) in both arms."""
    a, b, c, d = _cells(row)
    return (a == 0 and c == 0) or (b == 0 and d == 0)


def _binary_effect(row, measure: str, add: float) -> tuple[float, float]:
    """(yi, vi) of a 2x2 table after adding `add` to every cell (metafor escalc formulas)."""
    a, b, c, d = (x + add for x in _cells(row))
    n1, n2 = a + b, c + d
    if measure == "RR":
        return math.log((a / n1) / (c / n2)), 1 / a - 1 / n1 + 1 / c - 1 / n2
    if measure == "OR":
        return math.log(a * d / (b * c)), 1 / a + 1 / b + 1 / c + 1 / d
    p1, p2 = a / n1, c / n2  # RD, metafor's large-sample variance (vtype="LS")
    return p1 - p2, p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2


def logit_to_smd(log_or: float, vi: float) -> tuple[float, float]:
    """Chinn (2000): a log odds ratio as a standardized mean difference (logistic latent scale)."""
    return log_or * math.sqrt(3) / math.pi, vi * 3 / math.pi**2


def _binary_row(row, out: dict, measure: str, add: float, continuity: Continuity, binary_to_smd: bool) -> dict:
    study = row["study_id"]
    if measure not in BINARY_MEASURES and not (measure == "SMD" and binary_to_smd):
        hint = " (or SMD by the logit conversion: --binary-to-smd; in Python binary_to_smd=True)" if measure == "SMD" else ""
        out["why_not"] = f"binary outcome (2x2 counts): analyse with {', '.join(BINARY_MEASURES)}{hint}, not {measure}"
        return out
    if continuity.drops(measure) and _double_zero(row):
        out["why_not"] = ("no events (or all events) in both arms: the 2x2 table carries no information on a "
                          "relative effect (metafor drop00)")
        return out
    a, b, c, d = _cells(row)
    if add == 0 and min(a, b, c, d) == 0 and measure != "RD":
        raise EffectSizeError(f"study {study!r}, field 'events_treat': a zero cell without continuity correction "
                              f"gives an infinite {measure}; use add > 0 or to='only0'")
    yi, vi = _binary_effect(row, "OR" if measure == "SMD" else measure, add)
    route = "counts"
    if measure == "SMD":
        (yi, vi), route = logit_to_smd(yi, vi), "counts_logit"
    if vi <= 0:
        raise EffectSizeError(f"study {study!r}, field 'events_treat': the risk difference has zero variance "
                              "(no events or all events in both arms); use a continuity correction")
    out.update(yi=yi, vi=vi, sei=math.sqrt(vi), se_route=route, n_total=row["n_treat"] + row["n_ctrl"], used=True)
    return out


def _ratio_row(row, out: dict, measure: str, binary_to_smd: bool) -> dict:
    """A ratio (RR/OR) printed with its 95% CI: log scale, SE = log-CI width / (2 z_0.975)."""
    given = row["measure"].upper()
    yi = math.log(row["ratio"])
    sei = (math.log(row["ci_high"]) - math.log(row["ci_low"])) / (2 * norm_ppf(0.975))
    route = "ci"
    if measure == "SMD" and given == "OR" and binary_to_smd:
        (yi, vi), route = logit_to_smd(yi, sei**2), "ci_logit"
        sei = math.sqrt(vi)
    elif given != measure:
        out["why_not"] = f"ready-made effect is on the {given} scale, the analysis uses {measure}"
        return out
    out.update(yi=yi, sei=sei, vi=sei**2, se_route=route, used=True)
    return out
