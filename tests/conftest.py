from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture
def reference_dir() -> Path:
    path = SHARED / "reference"
    if not path.is_dir():
        pytest.skip(f"reference data not found at {path} (../shared/reference beside the checkout)")
    return path


@pytest.fixture
def write_csv(tmp_path):
    """Write rows (list of dicts) to a CSV and return its path."""
    import pandas as pd

    def _write(rows, name="studies.csv"):
        path = tmp_path / name
        pd.DataFrame(rows).to_csv(path, index=False)
        return path

    return _write
