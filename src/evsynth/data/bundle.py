"""The data and spec files that ship inside the package (src/evsynth/data/bundled/: copies of the
repository's studies/ and models/, kept identical by tests/test_packaging.py), so that `evsynth fit`
works outside the repository: without a path it reads ./studies/massage.csv when there is one,
else the bundled copy."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_STUDIES = "studies/massage.csv"


def bundled(relative: str) -> Path:
    """The path of a bundled file, e.g. bundled("studies/massage.csv").

    Example:
        >>> bundled("studies/massage.csv").name
        'massage.csv'
    """
    path = Path(str(resources.files("evsynth.data") / "bundled" / relative))
    if not path.is_file():
        raise FileNotFoundError(f"{relative}: not bundled with evsynth (bundled: studies/*.csv, models/*.toml)")
    return path


def default_studies() -> Path:
    """./studies/massage.csv when it exists (a clone of the repository), else the bundled copy.

    Example:
        >>> default_studies().name
        'massage.csv'
    """
    here = Path(DEFAULT_STUDIES)
    return here if here.is_file() else bundled(DEFAULT_STUDIES)
