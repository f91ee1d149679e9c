"""Writes tests/data/arviz0_result.nc the way evsynth 0.1 saved a fit (ArviZ 0.23 InferenceData.to_netcdf):
run once with Python 3.11 and `pip install "arviz<1" netCDF4` (not by the tests). Synthetic numbers."""
import arviz as az
import numpy as np

rng = np.random.default_rng(0)
idata = az.from_dict(posterior={"mu": rng.normal(0.4, 0.1, (2, 50)), "tau": np.abs(rng.normal(0.2, 0.05, (2, 50)))},
                     constant_data={"yi": np.array([0.3, 0.5]), "sei": np.array([0.2, 0.25])},
                     coords={"study": ["a", "b"]}, dims={"yi": ["study"], "sei": ["study"]})
idata.attrs.update(model="random_effects", prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)",
                   measure="SMD", evsynth_version="0.1.0", sampler="nutpie")
idata.to_netcdf("tests/data/arviz0_result.nc")
print(az.__version__)
