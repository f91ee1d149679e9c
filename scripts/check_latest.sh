#!/usr/bin/env bash
# The newest-releases check (run on a schedule, not on every change): install evsynth with the
# newest release of every dependency (no constraints.txt) into a temporary venv, print what it
# got beside the pinned versions, and run the tests. Extra arguments go to pytest, e.g.
#   bash scripts/check_latest.sh -m "not slow"        # the fast tests only
# Exit status: pytest's. A failure here and a pass in .ci/run means an upstream release changed
# something: update constraints.txt only after fixing or understanding it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=python3.12
"$PYTHON" -c "" 2>/dev/null || PYTHON=python3.13
venv=$(mktemp -d /tmp/evsynth_latest.XXXXXX)
trap 'rm -rf "$venv"' EXIT
"$PYTHON" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet --upgrade -e ".[test]"
echo "newest releases vs constraints.txt (only the differences):"
"$venv/bin/python" -m pip freeze --exclude evsynth --exclude-editable 2>/dev/null > "$venv/latest.txt"
awk -F'==' 'NR == FNR { if (NF == 2) pinned[tolower($1)] = $2; next }
            NF == 2 && tolower($1) in pinned && pinned[tolower($1)] != $2 {
              print "  " $1 ": pinned " pinned[tolower($1)] ", newest " $2; changed++ }
            END { if (!changed) print "  none: the pinned set is the newest" }' constraints.txt "$venv/latest.txt"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
