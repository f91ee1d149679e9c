"""Mutation testing of the numerical core with mutmut 3 (for developers; slow, not run by CI).

    python scripts/mutation_test.py                 # every module below, one after the other
    python scripts/mutation_test.py effects exact   # some of them
    python scripts/mutation_test.py --survivors effects   # also print each surviving mutant's diff

Each module is mutated on its own in a scratch copy of the repository (.mutation/<module>/, git-ignored)
and judged only by its fast test files (seconds per run), so a module's kill rate says how well *those*
tests pin it down. mutmut keeps its verdicts in the scratch copy: a second run only re-tests mutants of
functions whose code (or tests) changed. One worker process by default (--max-children).

Kill rate = killed / (mutants - equivalent). Killed includes timeouts (an infinite loop is noticed);
mutants no selected test reaches ("no tests") count as survivors. EQUIVALENT lists mutants that cannot
change any result, with the reason; docs/mutation.md explains them and the run that measured the rates.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = Path(sys.executable).with_name("mutmut")
TARGET = 0.90

# module: (source file, test selection: files and pytest options, kept to seconds per run[, the
# mutants judged: fnmatch patterns of mutmut's names, for one part of a file])
MODULES: dict[str, tuple] = {
    "effects": ("src/evsynth/effects/table.py", ["tests/test_effects.py", "tests/test_effects_binary.py"]),
    "effects.continuous": ("src/evsynth/effects/continuous.py", ["tests/test_effects.py", "tests/test_effects_binary.py"]),
    "effects.binary": ("src/evsynth/effects/binary.py", ["tests/test_effects.py", "tests/test_effects_binary.py"]),
    "normal_normal": ("src/evsynth/engines/normal_normal.py", ["tests/test_exact.py", "-k", "not mcmc and not wrong_prior"]),
    "frequentist": ("src/evsynth/methods/frequentist.py", ["tests/test_frequentist.py", "tests/test_metaregression.py"]),
    "engines.exact": ("src/evsynth/engines/exact.py", [
        "tests/test_engine_exact.py", "tests/test_engine_exact_more.py", "tests/test_orthant.py",
        "tests/test_description.py", "tests/test_network.py", "tests/test_conflict.py",
        *[f"tests/test_compare.py::test_exact_{name}" for name in (
            "loo_equals_the_posterior_predictive_by_quad", "stacking_weights_maximize_the_log_score",
            "loo_of_a_censored_study_is_its_predictive_probability_beyond_the_bound", "loo_compare_refusals")],
        "tests/test_heterogeneity.py::test_exact_engine_analysis_lists_i2_before_the_prediction",
        "-k", "not recovers_technique_effects and not test_node_split_flags"]),  # no MCMC: seconds
    "description": ("src/evsynth/model/description.py", ["tests/test_description.py", "tests/test_engine_exact.py",
                                                    "tests/test_network.py", "-k", "not recovers_technique_effects "
                                                    "and not test_node_split_flags"]),  # those two sample with PyMC
    "marginal": ("src/evsynth/engines/marginal.py", ["tests/test_selection.py", "-k", "not pymc"]),
    "diagnostics": ("src/evsynth/methods/diagnostics.py", ["tests/test_diagnostics.py"]),
    # the verdict modules (issue 28): what the user reads as a rating, a flag or PASS/FAIL
    # test_sof.py's exact fits and bias ensembles took ~40 s a run: the table from constructed fits instead
    "present.sof": ("src/evsynth/present/sof.py", ["tests/test_sof_table.py", "tests/test_verdicts_sof.py"]),
    "methods.certainty": ("src/evsynth/methods/certainty.py", [
        "tests/test_verdicts_sof.py", "tests/test_certainty.py"]),  # the GRADE rules (moved here from present/sof.py)
    "methods.riskofbias": ("src/evsynth/methods/riskofbias.py", [
        "tests/test_riskofbias.py", "tests/test_verdicts_sof.py", "tests/test_verdict_references.py",
        "-k", "not bayesian and not exclusion_rule and not prediction"]),
    "methods.regression": ("src/evsynth/methods/regression.py", [
        "tests/test_regression.py", "tests/test_verdict_references.py", "tests/test_regression_reference.py",
        "-k", "not pymc and not known_slope and not subgroups and not prediction and not takes_mods"]),
    "methods.conflict": ("src/evsynth/methods/conflict.py", ["tests/test_conflict.py", "tests/test_conflict_boundaries.py",
                                                             "-k", "not rarely_raise"]),
    "methods.network": ("src/evsynth/methods/network.py", [
        "tests/test_network.py", "tests/test_node_split_reference.py", "tests/test_network_reference.py",
        "tests/test_network_multi_arm.py",
        "-k", "not recovers_technique_effects and not test_node_split_flags"]),  # those two sample with PyMC
    # (the PyMC path is judged by test_network_reference's stand-in fit: its arithmetic on known draws)
    "model.network_graph": ("src/evsynth/model/network_graph.py", [
        "tests/test_network.py", "tests/test_node_split_reference.py", "tests/test_network_reference.py",
        "tests/test_network_graph.py", "tests/test_honest_labels.py::test_network_refuses_mixed_outcomes",
        "tests/test_honest_labels.py::test_comparisons_in_one_order_reference_last",
        "-k", "not recovers_technique_effects and not test_node_split_flags"]),
    "methods.sensitivity": ("src/evsynth/methods/sensitivity.py", [
        "tests/test_cache_keys.py", "tests/test_sensitivity.py", "tests/test_sensitivity_wiring.py", "-k",
        "not weights_zero and not shipped_massage_spec and not processes and not reuse_ and not leave_one_out_has and not cli_counts and not resume_skips and "
        "not dask and not cli_runs and not threads_compile and not worker_processes and not draws_do_not and "
        "not interrupted and not cli_refuses_a_malicious and not spec_engine_key"]),  # those sample with PyMC (the
    # shipped-spec test runs 12 s of exact sweeps; test_sensitivity_wiring runs the PyMC path on constructed fits);
    # the last two read the CLI's stderr/stdout with capsys, which came back empty under mutmut (and once under
    # plain pytest in this selection) though pytest's own capture held the text
    # only the agreement check of engines/exact.py (the module's other mutants: "engines.exact" above)
    "engines.exact.agreement": ("src/evsynth/engines/exact.py", [
        "tests/test_agreement_verdict.py", "tests/test_engine_exact_more.py", "-k", "agreement or verdict or Verdict"],
        ["*.x_agreement__mutmut_*", "*.x_agreement_line__mutmut_*", "*ExactVerdict*"]),
}

# mutant name (as `mutmut show` names it) -> why it cannot change a result. Names follow mutmut's
# numbering of the current source: a stale entry (mutant gone or killed) is reported by the run.
EQUIVALENT: dict[str, str] = {}
# Equivalent by construction, recognised in a surviving mutant's changed line (regex) and checked by
# hand (docs/mutation.md): (pattern, reason).
EQUIVALENT_PATTERNS: list[tuple[str, str]] = [
    (r"np\.errstate\(", "numpy floating-point warning settings: warnings only, never a value"),
    (r"np\.asarray\((tau|t|p|yi|sei|x|vi|X|X_new), (dtype=None)?\s*\)",
     "dtype=float dropped: the argument is float already or promoted by the float arithmetic that follows"),
    (r'az\.mcse\(idata, (var_names=None, |var_names=\[name\], )?(method="(mean|MEAN)"|method="(quantile|QUANTILE)", prob=p|)\)\[name\]\)',
     "ArviZ's mcse: method is case-insensitive and 'mean' is its default; var_names=None computes the same value"),
    (r"max_iter: int = 101\)", "REML scoring cap 100 -> 101: scoring that has not settled by then is bracketed to the same root"),
    (r"if abs\(new - tau2\) <= threshold:|if score\(0\.0\) < 0:|while score\(high\) >= 0:",
     "< against <= where equality has probability zero (a float score or step exactly at the limit)"),
    (r"high = max\(float\(np\.var\(yi\)\), 1\.00000001\)|high \*= 3|brentq\(score, 0\.0, high, (rtol=4|xtol=threshold, \)|"
     r"xtol=threshold, rtol=5)",
     "REML bracketing: the start of the bracket, its growth factor and brentq's own default tolerances (2e-12) "
     "move the root by < 1e-12 (checked by hand on the k = 9 example at two scales)"),
    (r"tested = slice\((1, None|None, p|0, None|p)\)|tested = slice\(1, p\) if has_intercept else slice\((None, p|0, None|p)\)",
     "slice(1, None) is slice(1, p) and slice(None, p), slice(0, None), slice(p) are slice(0, p) on the p coefficients"),
    (r"if abs\(t_of_p - abs\(t\)\) >= T_AGREEMENT|if p_of_t >= row\[\"p_upper\"\]|p_of_t - row\[\"p_upper\"\] >= 1e-3|"
     r"if abs\(expected - sc\) >= R_AGREEMENT",
     "a consistency flag's tolerance compared with >= instead of >: equality of two computed floats has "
     "probability zero"),
    (r'np\.einsum\("IJ,JK,IK->I"', "einsum subscripts are labels: upper case names the same contraction"),
    (r'if \(np\.isinf\(df\)\) and False else stats\.t\.',
     "scipy's t distribution at df = inf is the normal (ppf and sf agree to 1e-16)"),
    (r"i2 = max\(0\.0, 100 \* \(q - q_df\) / q\) if q > 1 else 0\.0",
     "for 0 < Q <= 1 <= df, (Q - df) / Q <= 0: I^2 is 0 either way"),
    (r'\{"used", "head_to_head"\} < set\(effects\.columns\)',
     "an effect table has more columns than used and head_to_head: subset and proper subset agree"),
    (r"float\((\'NAN\'|\"NAN\")\)", "float() parses 'nan' case-insensitively: the same NaN"),
    # methods.sensitivity
    (r"cores = None if n_jobs <= 1 else max\(1, \(os\.cpu_count\(\) or 2\) // n_jobs\)",
     "only reached with n_jobs >= 2, where 1 // n_jobs and 2 // n_jobs are both at most 1: max(1, .) is 1 either way"),
    (r"if scenario\.exclude or rule_warning\(context, scenario\.exclude, cache\):",
     "rule_warning returns '' for an empty rule, so 'or' reaches the same falsy result when there is no exclusion"),
    (r'"warnings": rec\["settings"\]\.get\("warnings", (None)?\s*\)\}',
     "records_table fills missing text columns with '' (fillna), warnings among them: None becomes ''"),
    (r"self\.rule_warnings = \[w for w in \(rule_warning\(context, rule, (None)?\s*\) for rule in self\.exclude\) if w\]",
     "the cache only saves recomputing the effects: rule_warning with a fresh cache gives the same text"),
    (r"one_row_per_sample\(effects, (by_outcome=(None|False))?\s*\)\), keep",
     "the table was cut to the sweep's one outcome just before: grouping by (outcome, sample) or by sample alone "
     "is the same grouping (by_outcome's only use in one_row_per_sample)"),
    # methods.regression
    (r'"P\(>0\)": float\(\(draws >= 0\)\.mean\(\)\) if signed else np\.nan',
     "> against >= on continuous posterior draws: a draw exactly 0 has probability zero"),
    (r"return table\.astype\(None\)", "pandas' astype(None) is float64, the dtype astype(float) gives"),
    (r"_summarize\(tau, signed=None\)|_summarize\(values, signed=None\)", "None is falsy: signed=None is signed=False"),
    (r'return da\.transpose\("chain", "draw", \*other\)\.to_numpy\(\)\.reshape\(-2, ',
     "numpy's reshape takes any negative size as the one to infer (-2 is -1)"),
    (r'pd\.option_context\("(display\.width|DISPLAY\.WIDTH)", (160|161|None), "(display\.float_format|'
     r'DISPLAY\.FLOAT_FORMAT)", "\{:\.4[fF]\}"\.format\)',
     "RegressionResult's text: pandas matches option names case-insensitively; the printed tables have fixed "
     "columns (6 and 8) well under 160 characters, so a width of 161 or None wraps nothing either; '{:.4F}' "
     "differs from '{:.4f}' only for inf (pandas prints NaN itself), and these summaries of finite draws hold none"),
    (r'tau = _flat\(result\.idata, "tau"\)\.reshape\((None|-2)\)',
     "_flat of tau (dims chain, draw) is 1-D already: reshape(None) keeps it and numpy infers any negative size"),
    (r"X_new = np\.atleast_2d\(np\.asarray\(X_new, (dtype=None)?\s*\)\)",
     "X_new holds numbers: integers are promoted by the float matrix product with the draws, the same values"),
    # present.sof
    (r'if not \{"events_ctrl", "n_ctrl"\} < set\(studies\.columns\):',
     "median_control_risk also reads study_id: a table holding events_ctrl and n_ctrl has a third column, so "
     "subset and proper subset agree (a table without study_id fails on the next line either way)"),
    # marginal (docs/mutation.md)
    (r"np\.atleast_1d\(np\.asarray\((x|p), None\)\)|self\.cens = np\.asarray\(censored, (None)?\s*\)|"
     r"\(x >= 0\)\.astype\(None\)",
     "dtype dropped: censored is bool from study_data; x and p are only compared or mixed with floats; "
     "astype(None) is float64"),
    (r"study_data\(effects, \)", "study_data's default min_k is 1, the value passed"),
    (r"np\.flatnonzero\(w\.sum\(axis=0\) >= 1e-16\)|lo, hi = np\.where\(F <= p, mid, lo\), np\.where\(F < p, hi, mid\)|"
     r"lo, hi = np\.where\(F < p, mid, lo\), np\.where\(F <= p, hi, mid\)",
     "< against <= where equality of two computed floats has probability zero"),
    (r"for _ in range\(61\):|\[e\.mu_parts\[0\]\.(min\(\) - 41|max\(\) \+ 41) \* e\.mu_parts\[1\]\.max\(\)",
     "mixture_quantile's bisection: a bracket 41 instead of 40 posterior sds beyond every centre (the CDF is 0 "
     "or 1 to double precision at both) or a 61st halving moves the quantile by < bracket * 2^-60 (1e-16 sd)"),
    (r'az\.summary\(idata, var_names=names, (kind="diagnostics", round_to="(XXnoneXX|NONE)"|kind="diagnostics", |round_to="none")\)',
     "ArviZ 1.3's summary keeps the unrounded values under any round_to (only its display rounds), and "
     "kind='all' holds the same r_hat/ess columns as kind='diagnostics' (computed the same way, plus others)"),
    # engines.exact
    (r'labels = \[\("intercept \(mu\)" if k\[1\] == "mu"',
     "mu's row key is ('mu', 'mu'): its label equals its variable"),
    (r"np\.eye\(M\.shape\[2\]\)", "M is a stack of square matrices: shape[2] is shape[1]"),
    (r"ok = np\.all\(direction / \(y - bounds\) > 0, axis=1\)",
     "censoring directions are +1 or -1: d / x > 0 exactly when d x > 0"),
    (r"ok = np\.all\(direction \* \(y - bounds\) >= 0, axis=1\)|pick = \(cum <= rng\.random",
     "< against <= where equality of a continuous draw with a bound has probability zero"),
    (r"cond = conditionals\(model, taus, (orthant=None|orthant=True|)\)",
     "sample reads no log-likelihood: the orthant term only adds to cond.loglik"),
    (r'mcse\(draws, (method="MEAN")?\s*\)|mcse\(draws, method="QUANTILE", prob=p\)',
     "arviz_stats.mcse lower-cases its method and 'mean' is its default"),
    (r'col\.replace\("(XX%XX|%)", "(XXXX)?"\)',
     "no column of the exact summary (mean, sd, q2.5, q50, q97.5, P(>0)) contains '%': the replace is a no-op"),
    (r"np\.full\(\(G, N_LATENT\), (1 \* N_LATENT|2 / N_LATENT)\)",
     "the latent pieces are equally likely: a common factor on their weights is removed when _mixture_row "
     "normalises the weights"),
    (r'np\.einsum\("[A-Z]+(,[A-Z]+)*->[A-Z]*"', "einsum subscripts are labels: upper case names the same contraction"),
    (r"D = direction\[:, None\] / direction\[None, :\]|rho = cov\[:, 0, 1\] / D\[0, 1\]|cov=cov\[g\] / D,|"
     r"np\.linalg\.cholesky\(cov / D\[None\]\)",
     "censoring directions are +1 or -1 (GaussianModel.censoring_direction): d_i / d_j = d_i d_j and x / D = x D"),
    (r"\(a \* b == 0\) & \(a \+ b <= 0\)", "differs from < 0 only at a = b = 0, where Sheppard's formula replaces the result"),
    (r"np\.asarray\(v, (None)?\s*\) for v in \(a, b, rho\)",
     "dtype=float dropped: integer arguments are promoted by the float arithmetic (r, ndtr, owens_t) that follows"),
    (r"keep\[i\] = None|keep = np\.ones\(model\.n, (None)?\s*\)",
     "None stored in a bool array is False; float ones with 0.0 at i: GaussianModel.subset takes np.asarray(keep, bool)"),
    (r"frame = pd\.DataFrame\(\{name: t\.to_numpy\(\) for name, t in terms\.items\(\)\}, (index=None)?\s*\)",
     "the frame's row index is never read (sums, var and to_numpy ignore it; both operands of sub share it)"),
    (r'posterior = idata\["posterior"\]\.to_dataset\(\) if (\(hasattr\(idata\["posterior"\], "to_dataset"\)\) and False|'
     r'hasattr\(None, "to_dataset"\)|hasattr\(idata\["posterior"\], "(XXto_datasetXX|TO_DATASET)"\)) else idata\.posterior',
     "agreement always reading idata.posterior: for a DataTree (every fit in ArviZ 1) tree.posterior is the node "
     "tree['posterior'], and indexing it by a variable gives the DataArray its dataset gives"),
    # methods.riskofbias
    (r"SEVERITY\.get\(v, np\.nan\) if isinstance\(v, str\) else np\.nan\)\.astype\(None\)|"
     r"SEVERITY\.get\(v, (None)?\s*\) if isinstance\(v, str\) else np\.nan\)\.astype\(float\)",
     "severity: pandas' astype(None) is float64, and a None from SEVERITY.get becomes NaN under astype(float)"),
    # methods.certainty
    (r'return da\.to_numpy\(\)\.reshape\((-1|None|-2)\) if (\(da\.ndim == 2\) (and False|or True)|da\.ndim (==|!=) [23]) '
     r'else da\.stack\(sample=(\("chain", "draw"\)|None|\("(XXchainXX|CHAIN)", "draw"\)|\("chain", "(XXdrawXX|DRAW)"\))\)',
     "certainty's _draws feeds np.quantile only, which flattens: for mu of dims (chain, draw) (every fit) "
     "reshape(-1), reshape(-2), reshape(None) (the array as it is) and stacking (chain, draw) give the same "
     "values; the stack branch, renamed dims included, is reached only by a mu with other dims, which no model has"),
    (r'w = 2\.0 / table\["vi"\]\.to_numpy\(float\)|w = 1\.0 / table\["vi"\]\.to_numpy\(None\)',
     "the weights are normalised next (a factor cancels); vi is a float column (to_numpy(None) keeps float64)"),
    (r"else pd\.Series\((None, )?index=table\.index\)",
     "a Series of None is missing exactly as one of NaN: isna and fillna treat both alike, and the map gives 'unclear'"),
    (r'value = col\.map\(lambda v: str\(v\)\.strip\(\)\.lower\(\) if (\(isinstance\(v, str\) and str\(v\)\.strip\(\)\) or True|'
     r'isinstance\(v, str\) or str\(v\)\.strip\(\)|isinstance\(v, str\) and str\(None\)\.strip\(\)) else "unclear"\)|'
     r'else "(XXunclearXX|UNCLEAR)"\)|value\.isin\(\["yes", "no", "(XXunclearXX|UNCLEAR)"\]\), "unclear"\)',
     "randomised: the next line maps every value other than yes/no/unclear to 'unclear', so a NaN read as 'nan', "
     "a blank as '' or 'unclear' spelt otherwise all end as 'unclear'"),
    (r'table\["censored"\]\.astype\(None\)\.any\(\)', "censored is bool; astype(None) gives float 0/1: any() is the same"),
    (r"test\.pval <= EGGER_ALPHA",
     "< against <= where equality of a computed p-value with 0.10 has probability zero (both sides tested at 1e-6)"),
    # methods.network
    (r'reference: str = "CONTROL"',
     "control labels are matched case-insensitively: network_table lower-cases the reference ('CONTROL' is 'control')"),
    (r'color="TAB:BLUE", lw=|color="BLACK" if n == ref|else "TAB:ORANGE", zorder|"boxstyle": "CIRCLE"|"fc": "WHITE"|'
     r'"ec": "TAB:BLUE"|ax\.axis\("OFF"\)',
     "matplotlib lower-cases colour names, box-style names and axis('off') (3.11: colors._colors_full_map[c.lower()], "
     "BoxStyle's name.lower(), Axes.axis's arg.lower())"),
    (r'"ec": "tab:blue"\}, (zorder=None)?\s*\)$', "a Text's default zorder is 3, the value given"),
    (r"counts = pd\.Series\(pairs, (dtype=None)?\s*\)\.value_counts\(\)",
     "pandas 3 gives a list of tuples (and an empty list) object dtype without being told: the same Series"),
    (r"splittable = candidates if \(split is None\) and False else splittable_comparisons\(table\)",
     "with split None the candidates are splittable_comparisons(table): computing it again gives the same list"),
    (r'np\.argsort\(\[order\[s\] for s in out\["study_id"\]\], (kind=None|kind="STABLE")?\s*\)',
     "multi_arm_trials' sort keys are distinct (load_studies refuses a repeated study_id), so every sort "
     "algorithm gives the same order; numpy reads kind case-insensitively"),
    (r'studies\.drop_duplicates\(None\)\.set_index',
     "study ids are unique in a study table (load_studies refuses a repeat): no row is a duplicate either way"),
    (r'pd\.to_numeric\(out\["study_id"\]\.map\(lookup\[column\]\), \)',
     "n_ctrl and sd_ctrl are numbers in a study table (load_studies refuses any other value, naming the study "
     "and field): errors='coerce' has nothing to coerce"),
    # methods.conflict
    (r"return array\.reshape\(-2, \*array\.shape\[2:\]\)",
     "numpy's reshape takes any negative size as the one to infer (-2 is -1; checked with numpy 2.5)"),
    (r'attrs = dict\(getattr\(idata, "attrs", None\) or \{\}\)',
     "getattr's default None or {} is {}, as the default {} itself"),
    (r"table = used_effects\(effects\)\.reset_index\(drop=(None|False)\)",
     "reset_index keeps the old index as an 'index' column that nothing reads; the new index is 0..n-1 either way"),
    (r'np\.full\(k, 1 / k\), method=(None|"slsqp"),|"type": "EQ"',
     "scipy.optimize.minimize picks SLSQP when there are constraints and lower-cases the method and the "
     "constraint type"),
]

# What a test run needs besides src/ and tests/ (mutmut copies those two itself).
ALSO_COPY = ["studies/", "models/", "notebooks/"]
# 2: pytest's "interrupted": the mutant itself raised KeyboardInterrupt (sensitivity's _check_complete), so
# the run did not pass: killed
STATUS = {1: "killed", 2: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
          -11: "segfault", -9: "segfault", None: "not checked"}


def prepare(module: str, work: Path) -> Path:
    """A scratch copy of the repository for one module; mutmut's cache (mutants/) is kept."""
    source, tests = MODULES[module][:2]
    scratch = work / module
    scratch.mkdir(parents=True, exist_ok=True)
    for name in ("src", "tests", *[p.rstrip("/") for p in ALSO_COPY]):
        if (ROOT / name).exists():
            shutil.rmtree(scratch / name, ignore_errors=True)
            shutil.copytree(ROOT / name, scratch / name, ignore=shutil.ignore_patterns("__pycache__"))
    shared = scratch / "shared"  # tests find the reference data sets at ../shared beside the checkout
    if not shared.exists() and (ROOT.parent / "shared").exists():
        shared.symlink_to(ROOT.parent / "shared")
    pytest_ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    config = {
        "source_paths": ["src/"],
        "only_mutate": [source],
        "also_copy": [p for p in ALSO_COPY if (ROOT / p).exists()],
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": ["-p", "no:randomly", "-p", "no:cacheprovider", "-q"],
        "use_git_change_detection": False,
    }
    lines = ["[tool.pytest.ini_options]"] + [f"{k} = {json.dumps(v)}" for k, v in pytest_ini.items()]
    lines += ["", "[tool.mutmut]"] + [f"{k} = {json.dumps(v)}" for k, v in config.items()]
    (scratch / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return scratch


def run(module: str, scratch: Path, max_children: int, names: list[str] = ()) -> None:
    """mutmut run: every mutant without a verdict, and those named (re-tested even if judged)."""
    log = scratch / "mutmut.log"
    names = list(names) or _patterns(module)
    print(f"[{module}] mutmut run{f' of {len(names)} named mutants (or patterns)' if names else ''} (log: {log})",
          flush=True)
    with open(log, "w") as out:
        code = subprocess.call([str(MUTMUT), "run", "--max-children", str(max_children), *names], cwd=scratch,
                               stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        sys.exit(f"[{module}] mutmut failed (exit {code}); see {log}")


def verdicts(module: str, scratch: Path) -> dict[str, str]:
    """mutant name -> status, read from mutmut's per-file metadata."""
    meta = scratch / "mutants" / (MODULES[module][0] + ".meta")
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    # mutmut keeps the verdicts of mutants that an edit of their function removed: count only current ones
    mutated = (scratch / "mutants" / MODULES[module][0]).read_text()
    patterns = _patterns(module)
    return {name: STATUS.get(code, "suspicious") for name, code in codes.items()
            if f"def {name.rpartition('.')[2]}(" in mutated
            and (not patterns or any(fnmatch.fnmatch(name, p) for p in patterns))}


def _patterns(module: str) -> list[str]:
    return list(MODULES[module][2]) if len(MODULES[module]) > 2 else []


def changed_line(scratch: Path, name: str) -> str:
    """The mutant's added lines, without the diff's '+'. Every added line counts: a mutated `def`
    (a default argument) or other unindented line is '+def ...', not '+ ...'."""
    return added_lines(show(scratch, name))


def added_lines(diff: str) -> str:
    return "\n".join(line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++"))


def equivalent_by_pattern(scratch: Path, names: list[str]) -> dict[str, str]:
    out = {}
    for name in names:
        line = changed_line(scratch, name)
        for pattern, reason in EQUIVALENT_PATTERNS:
            if re.search(pattern, line):
                out[name] = reason
    return out


def rate_row(module: str, status: dict[str, str], scratch: Path | None = None) -> dict:
    killed = sum(s in ("killed", "timeout", "segfault") for s in status.values())
    alive = [n for n, s in status.items() if s == "survived"]
    by_pattern = equivalent_by_pattern(scratch, alive) if scratch is not None else {}
    equivalent = [n for n in EQUIVALENT if n in status and status[n] != "killed"] + list(by_pattern)
    stale = [n for n in EQUIVALENT if n.startswith(_prefix(module)) and n not in equivalent]
    survivors = [n for n, s in status.items() if s not in ("killed", "timeout", "segfault") and n not in equivalent]
    counted = len(status) - len(equivalent)
    return dict(module=module, mutants=len(status), equivalent=len(equivalent), killed=killed,
                survived=len(survivors), unchecked=sum(s == "not checked" for s in status.values()), rate=killed / counted if counted else float("nan"),
                survivors=survivors, stale=stale, equivalent_names=equivalent)


def _prefix(module: str) -> str:
    return "evsynth." + module + "."


def show(scratch: Path, name: str) -> str:
    """The mutant's diff, as `mutmut show` prints it (read in this process: a `mutmut show` per
    survivor took a second each)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    source = next(spec[0] for spec in MODULES.values() if name.startswith(_prefix(_module_of(spec[0]))))
    here = os.getcwd()
    try:
        os.chdir(scratch)
        return get_diff_for_mutant(name, path=source)
    finally:
        os.chdir(here)


def _module_of(source: str) -> str:
    return source.removeprefix("src/evsynth/").removesuffix(".py").replace("/", ".")


def _exact_battery() -> np.ndarray:
    """Every printed number of evsynth.engines.normal_normal on data sets and priors that reach each branch: the
    posterior summaries, theta, tau's CDF and quantiles, mixture quantiles deep in both tails."""
    from evsynth.engines.normal_normal import exact_posterior

    rng = np.random.default_rng(17)
    out = []
    for k, prior, mu_prior in [(7, "halfnormal(0.5)", None), (13, "halfcauchy(0.5)", "normal(0, 5)"),
                               (1, "halfcauchy(1)", "normal(0, 1)"), (5, "uniform(0, 10)", None),
                               (5, "uniform(4, 10)", "normal(0, 2)"), (4, "uniform", None), (20, "exponential(2)", None)]:
        sei = rng.uniform(0.1, 0.5, k)
        yi = rng.normal(0.3, np.sqrt(0.2**2 + sei**2))
        post = exact_posterior(yi, sei, tau_prior=prior, mu_prior=mu_prior)
        finite = [v for v in post.summary().to_numpy(float).ravel() if np.isfinite(v)]
        out += finite + post.theta.to_numpy(float).ravel()[np.isfinite(post.theta.to_numpy(float).ravel())].tolist()
        p = np.array([1e-10, 1e-4, 0.025, 0.3, 0.5, 0.9, 0.975, 1 - 1e-6])
        out += post.mu_mixture.ppf(p).tolist() + post.tau_quantile(p[1:-1]).tolist()
        out += post.tau_cdf(post.tau_quantile(np.array([0.1, 0.5, 0.9]))).tolist()
    return np.array(out)


BATTERIES = {"normal_normal": _exact_battery}


def deviations(module: str, scratch: Path, names: list[str]) -> dict[str, float]:
    """Largest change of the module's battery of results under each mutant, relative to the
    result's scale (1 + |value|), in a child process that imports the mutated source."""
    code = ("import json, os, sys, numpy as np; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
            "import mutation_test as mt; base = getattr(mt, sys.argv[3])(); out = {}\n"
            "for name in json.loads(sys.argv[4]):\n"
            "    os.environ['MUTANT_UNDER_TEST'] = name\n"
            "    try: out[name] = float(np.max(np.abs(getattr(mt, sys.argv[3])() - base) / (1 + np.abs(base))))\n"
            "    except Exception as e: out[name] = float('inf')\n"
            "print(json.dumps(out))")
    result = subprocess.run([sys.executable, "-c", code, str(scratch / "mutants" / "src"), str(ROOT / "scripts"),
                             BATTERIES[module].__name__, json.dumps(names)],
                            capture_output=True, text=True, env=os.environ | {"MUTANT_UNDER_TEST": ""})
    if result.returncode:
        sys.exit(f"[{module}] deviation check failed:\n{result.stderr}")
    return json.loads(result.stdout.splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", metavar="module", help=f"any of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--max-children", type=int, default=1, help="mutmut worker processes (default 1)")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".mutation")
    parser.add_argument("--survivors", action="store_true", help="print the diff of every surviving mutant")
    parser.add_argument("--no-run", action="store_true", help="only report the verdicts of the last run")
    parser.add_argument("--equivalents", action="store_true", help="list the mutants counted as equivalent")
    parser.add_argument("--deviation", action="store_true",
                        help=f"for each survivor, the largest change it makes to a battery of results "
                             f"(modules {', '.join(BATTERIES)}): checks an equivalence claim by hand")
    parser.add_argument("--retest", action="store_true",
                        help="re-test only the last run's survivors (after adding tests: mutmut keeps old verdicts)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.modules) - set(MODULES))
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    rows = []
    for module in args.modules or list(MODULES):
        scratch = args.workdir / module if args.no_run else prepare(module, args.workdir)
        if args.retest and not args.no_run:
            names = rate_row(module, verdicts(module, scratch))["survivors"]
            if names:
                run(module, scratch, args.max_children, names)
        elif not args.no_run:
            run(module, scratch, args.max_children)
        row = rate_row(module, verdicts(module, scratch), scratch)
        rows.append(row)
        if args.equivalents:
            for name in sorted(set(row["equivalent_names"])):
                print(f"equivalent: {name}: {changed_line(scratch, name).strip()}")
        if args.deviation and module in BATTERIES:
            for name, dev in sorted(deviations(module, scratch, row["survivors"]).items(), key=lambda kv: kv[1]):
                print(f"deviation {dev:.2e}: {name}: {changed_line(scratch, name).strip()}")
        if args.survivors:
            for name in row["survivors"]:
                print(f"--- survived: {name} ({verdicts(module, scratch)[name]})\n{show(scratch, name)}")
        for name in row["stale"]:
            print(f"[{module}] EQUIVALENT entry {name} is stale (gone or killed): update the list")
    print(f"\n{'module':<25}{'mutants':>8}{'equiv':>7}{'killed':>8}{'survived':>9}{'kill rate':>11}"
          "   (survived includes 'no tests' and not yet checked)")
    for r in rows:
        flag = "" if r["rate"] >= TARGET else f"  < {TARGET:.0%}"
        print(f"{r['module']:<25}{r['mutants']:>8}{r['equivalent']:>7}{r['killed']:>8}{r['survived']:>9}"
              f"{r['rate']:>10.1%}{flag}" + (f"  ({r['unchecked']} not checked)" if r["unchecked"] else ""))
    return 0 if all(r["rate"] >= TARGET for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
