"""docs/literature_comparison.md is what scripts/compare_reviews.py writes today: the committed page
must not drift from the data and the code (the script once broke unnoticed when the effect table
gained source_level). tests/data/literature/reviews.csv is a copy of ../shared/literature/reviews.csv
(published pooled SMDs, each with its DOI)."""

import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow  # one by-technique MCMC fit (~25 s)
def test_committed_literature_comparison_is_what_the_script_writes(tmp_path):
    out = tmp_path / "literature_comparison.md"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare_reviews.py"), "--reviews",
                           str(ROOT / "tests" / "data" / "literature" / "reviews.csv"), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    committed = (ROOT / "docs" / "literature_comparison.md").read_text()
    assert out.read_text() == committed, "docs/literature_comparison.md is stale: run scripts/compare_reviews.py"
