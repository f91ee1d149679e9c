"""Saved fits: written and read back on ArviZ 1; a file saved by evsynth 0.1 (ArviZ 0.23) loads;
anything else is refused with what was expected and found."""

from pathlib import Path

import arviz as az
import numpy as np
import pytest
import xarray as xr

from evsynth.present.results import ResultFileError, load_result, save_result

DATA = Path(__file__).parent / "data"


def test_round_trip_keeps_draws_data_and_settings(tmp_path):
    rng = np.random.default_rng(1)
    idata = az.from_dict({"posterior": {"mu": rng.normal(size=(2, 30))},
                          "constant_data": {"yi": np.array([0.1, 0.2])}}, dims={"yi": ["study"]},
                         coords={"study": ["s1", "s2"]})
    idata.attrs.update(model="random_effects", evsynth_version="0.2.0")
    back = load_result(save_result(idata, tmp_path / "fit.nc"))
    np.testing.assert_array_equal(back["posterior"]["mu"].to_numpy(), idata["posterior"]["mu"].to_numpy())
    assert list(back["constant_data"]["study"].to_numpy()) == ["s1", "s2"]
    assert back.attrs["model"] == "random_effects"


def test_the_netcdf4_file_reads_back_as_h5netcdf_wrote_it(tmp_path):
    """save_result writes with the netCDF4 library (issue 26: 4x faster than h5netcdf): every group,
    variable, dtype, string coordinate and attribute reads back as the file h5netcdf writes."""
    rng = np.random.default_rng(2)
    idata = az.from_dict({"posterior": {"mu": rng.normal(size=(2, 30)), "theta": rng.normal(size=(2, 30, 3))},
                          "log_likelihood": {"y": rng.normal(size=(2, 30, 3))},
                          "constant_data": {"yi": np.array([0.1, 0.2, -0.3]), "censored": np.array([True, False, False])}},
                         dims={"theta": ["study"], "y": ["study"], "yi": ["study"], "censored": ["study"]},
                         coords={"study": ["s1", "s2", "caf\u00e9 \u00b2"]})
    idata.attrs.update(model="random_effects", evsynth_version="0.2.0", prior_tau="halfnormal(0.5)")
    idata["posterior"].attrs["seconds"] = "0.112"
    save_result(idata, tmp_path / "fit.nc")
    idata.to_netcdf(tmp_path / "h5.nc", engine="h5netcdf")
    ours, theirs = load_result(tmp_path / "fit.nc"), load_result(tmp_path / "h5.nc")
    assert ours.identical(theirs)
    assert ours["constant_data"]["censored"].dtype == bool and list(ours["constant_data"]["study"].to_numpy())[-1] == "caf\u00e9 \u00b2"


def test_result_saved_by_evsynth_0_1_with_arviz_0_loads():
    # tests/data/make_arviz0_result.py wrote it with ArviZ 0.23.4 (InferenceData.to_netcdf)
    old = load_result(DATA / "arviz0_result.nc")
    assert isinstance(old, xr.DataTree)
    assert old.attrs["evsynth_version"] == "0.1.0" and old.attrs["prior_tau"] == "halfnormal(0.5)"
    assert old["posterior"]["mu"].shape == (2, 50)
    assert float(old["posterior"]["mu"].mean()) == pytest.approx(0.4, abs=0.05)
    np.testing.assert_array_equal(old["constant_data"]["yi"].to_numpy(), [0.3, 0.5])


def test_other_files_are_refused_by_name(tmp_path):
    text = tmp_path / "notes.nc"
    text.write_text("not netcdf")
    with pytest.raises(ResultFileError, match="not a netCDF4 file"):
        load_result(text)
    other = tmp_path / "other.nc"
    xr.DataTree.from_dict({"foo": xr.Dataset({"x": ("i", [1.0])})}).to_netcdf(other, engine="h5netcdf")
    with pytest.raises(ResultFileError, match="not an evsynth result.*found foo"):
        load_result(other)
    with pytest.raises(ResultFileError, match="no such file"):
        load_result(tmp_path / "missing.nc")
