"""Write docs/commands.md: every `evsynth` command with its --help, from the parser itself
(tests/test_docs.py checks the page is up to date). Run: python scripts/make_command_docs.py"""

import argparse
import io
import os
import sys
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from evsynth.cli.main import build_parser  # noqa: E402

HEAD = """# Commands

Generated from the parser by `python scripts/make_command_docs.py` (do not edit by hand). Exit
status of every command: 0 ok; 2 bad input; 3 a fit failed its diagnostics (unless
`--accept-failed`); 4 nothing was analysed.
"""


def help_text(parser: argparse.ArgumentParser) -> str:
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        parser.print_help()
    return buffer.getvalue()


def page() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps help at the terminal width: fix it
    parser = build_parser()
    parts = [HEAD, "## evsynth\n", "```text\n" + help_text(parser) + "```\n"]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                parts += [f"## evsynth {name}\n", "```text\n" + help_text(sub) + "```\n"]
    return "\n".join(parts)


if __name__ == "__main__":
    (ROOT / "docs" / "commands.md").write_text(page(), encoding="utf-8")
    print("wrote docs/commands.md")
