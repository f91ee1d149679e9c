"""scripts/mutation_test.py's own logic (no mutmut run): a mutant's changed lines include a mutated
`def` line (issue 28: '+def f(...)' was skipped, so an equivalence pattern on a default argument
never matched), and a module limited to some functions judges only their mutants."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def script():
    spec = importlib.util.spec_from_file_location("mutation_test", ROOT / "scripts" / "mutation_test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DIFF = """--- src/evsynth/methods/frequentist.py
+++ src/evsynth/methods/frequentist.py
@@ -1,3 +1,3 @@
-def tau2_reml(yi, vi, X=None, threshold: float = 1e-12, max_iter: int = 100) -> float:
+def tau2_reml(yi, vi, X=None, threshold: float = 1e-12, max_iter: int = 101) -> float:
     x = 1
-    y = x + 1
+    y = x - 1
"""


def test_added_lines_keep_a_mutated_def_line_and_the_indented_ones():
    mt = script()
    lines = mt.added_lines(DIFF).splitlines()
    assert lines == ["def tau2_reml(yi, vi, X=None, threshold: float = 1e-12, max_iter: int = 101) -> float:",
                     "    y = x - 1"]


def test_a_def_line_mutant_is_matched_against_the_equivalence_patterns(monkeypatch):
    mt = script()
    monkeypatch.setattr(mt, "show", lambda scratch, name: DIFF)
    found = mt.equivalent_by_pattern(Path("."), ["evsynth.methods.frequentist.x_tau2_reml__mutmut_1"])
    assert "REML scoring cap" in found["evsynth.methods.frequentist.x_tau2_reml__mutmut_1"]
    monkeypatch.setattr(mt, "show", lambda scratch, name: DIFF.replace("101", "7"))
    assert mt.equivalent_by_pattern(Path("."), ["x"]) == {}


def test_every_verdict_module_is_listed_and_the_agreement_entry_is_limited_to_its_functions():
    mt = script()
    for module in ("present.sof", "methods.certainty", "methods.riskofbias", "methods.regression", "methods.conflict",
                   "methods.network", "model.network_graph", "methods.sensitivity", "engines.exact.agreement"):
        source = mt.MODULES[module][0]
        assert (ROOT / source).exists(), module
        assert all(Path(ROOT, t.split("::")[0]).exists() for t in mt.MODULES[module][1] if t.startswith("tests/"))
    patterns = mt._patterns("engines.exact.agreement")
    import fnmatch

    judged = [n for n in ("evsynth.engines.exact.x_agreement__mutmut_3", "evsynth.engines.exact.x_agreement_line__mutmut_1",
                          "evsynth.engines.exact.xǁExactVerdictǁ__str____mutmut_2", "evsynth.engines.exact.x_loo__mutmut_1")
              if any(fnmatch.fnmatch(n, p) for p in patterns)]
    assert judged == ["evsynth.engines.exact.x_agreement__mutmut_3", "evsynth.engines.exact.x_agreement_line__mutmut_1",
                      "evsynth.engines.exact.xǁExactVerdictǁ__str____mutmut_2"]
    assert mt._patterns("present.sof") == []


def test_network_equivalence_patterns_match_the_mutant_and_never_the_source():
    """A pattern that matched the unmutated line would count any other mutant of that line as
    equivalent: the network patterns must match only the mutated spellings."""
    import re

    mt = script()
    mutated = ['def node_split(effects, priors=None, reference: str = "CONTROL",',
               '        ax.plot([x0, x1], [y0, y1], color="TAB:BLUE", lw=EDGE_WIDTH * e.studies, alpha=0.6,',
               '                bbox={"boxstyle": "circle", "fc": "white", "ec": "tab:blue"}, )',
               '    counts = pd.Series(pairs, ).value_counts()',
               '    out = out.iloc[np.argsort([order[s] for s in out["study_id"]], kind=None)].reset_index(drop=True)',
               '    lookup = studies.drop_duplicates(None).set_index("study_id")',
               '        splittable = candidates if (split is None) and False else splittable_comparisons(table)']
    for line in mutated:
        assert any(re.search(p, line) for p, _ in mt.EQUIVALENT_PATTERNS), line
    for source in ("src/evsynth/methods/network.py", "src/evsynth/model/network_graph.py"):
        for line in (ROOT / source).read_text().splitlines():
            assert not any(re.search(p, line) for p, _ in mt.EQUIVALENT_PATTERNS), (source, line)
