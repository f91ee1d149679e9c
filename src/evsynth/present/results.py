"""Saved fits: netCDF files of an ArviZ 1 DataTree with the settings in the root attrs.

A result saved by evsynth 0.1 (ArviZ 0.x InferenceData.to_netcdf) has the same layout (one netCDF
group per InferenceData group, settings in the root attrs), so it loads; a file that is not an
evsynth fit is refused with what was expected and what was found.
"""

from __future__ import annotations

from pathlib import Path

import xarray as xr

REQUIRED_GROUPS = ("posterior",)


class ResultFileError(ValueError):
    """A file that cannot be read as an evsynth result."""


def save_result(idata: xr.DataTree, path) -> Path:
    """Write `idata` to `path` (netCDF4) and return the path. Written by the netCDF4 library: the
    same file contents as h5netcdf writes (read back identical, load_result reads either), in a
    quarter of the time (h5netcdf's per-variable dimension-scale bookkeeping took ~0.1 s per fit
    of the bundled data, issue 26)."""
    path = Path(path)
    idata.to_netcdf(path, engine="netcdf4")
    return path


def load_result(path) -> xr.DataTree:
    """Read a saved fit (from this version or evsynth 0.1 / ArviZ 0.x) fully into memory."""
    path = Path(path)
    if not path.is_file():
        raise ResultFileError(f"{path}: no such file")
    try:
        tree = xr.open_datatree(path, engine="h5netcdf")
    except (OSError, ValueError) as exc:
        raise ResultFileError(f"{path}: not a netCDF4 file ({exc})") from None
    with tree:
        tree = tree.load()
    missing = [g for g in REQUIRED_GROUPS if g not in tree.children]
    if missing or "evsynth_version" not in tree.attrs:
        found = ", ".join(tree.children) or "no groups"
        raise ResultFileError(f"{path}: not an evsynth result (expected a 'posterior' group and an "
                              f"'evsynth_version' attribute; found {found})")
    return tree
