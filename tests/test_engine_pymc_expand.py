"""engines.pymc_layout.expand (the posterior's variables of build(model) computed in numpy from the free
variables' unconstrained draws, so that numba compiles no expand function) against PyMC's own graph
of the same quantities (its value variables -> untransformed variables and Deterministics, evaluated
by PyTensor's Python linker, no numba), for every model kind, transform and design shape build
writes: log and interval transforms, logstudent_t's exp, one-column, one-hot, contrast and
moderator designs, a multi-arm trial's correlated study effects, nested levels. And
engines.pymc_layout.layout (what a fit's result takes from the pm.Model: coordinates, dims, data,
posterior names, settings) against the pm.Model build makes, for the same kinds."""

import numpy as np
import pandas as pd
import pytest
import pytensor

from evsynth.engines.pymc import build
from evsynth.engines.pymc_layout import expand, layout, model_layout, np_product, one_hot
from evsynth.model import description

from test_engines_agree import network_table, table


def multi_arm_network() -> pd.DataFrame:
    out = network_table(0)
    out["trial"] = [f"t{i}" for i in range(len(out))]
    out.loc[[0, 2], "trial"] = "three-arm"  # A vs control and B vs control from one trial
    return out


def nested() -> pd.DataFrame:
    out = table(12, 0)
    out["cluster"] = np.repeat(np.arange(4), 3)
    return out


CASES = {
    "random_effects": lambda: description.random_effects(table(9, 0)),
    "random_effects, censored row": lambda: description.random_effects(table(9, 1)),
    "common_effect": lambda: description.common_effect(table(6, 0)),
    "uniform priors": lambda: description.random_effects(table(7, 0), {"mu": "uniform(-3, 2)",
                                                                        "tau": "uniform(0, 1.5)"}),
    "logstudent_t prior": lambda: description.random_effects(table(7, 0), {"tau": "logstudent_t(5, -1.5, 0.8)"}),
    "by_technique": lambda: description.by_technique(table(12, 0, technique=list("aaabbbbcccdd"))),
    "meta_regression": lambda: description.meta_regression(table(10, 0, x=np.linspace(-1, 1, 10)), ["x"]),
    "network": lambda: description.network(network_table(0)),
    "network, multi-arm trial": lambda: description.network(multi_arm_network()),
    "multilevel": lambda: description.multilevel(nested(), {"tau_cluster": "halfnormal(0.3)"}, random=["cluster"]),
    "multilevel, shared sampling errors": lambda: description.multilevel(nested(), random=["cluster"], rho=0.5,
                                                                         cluster="cluster"),
}


def pymc_values(pymc_model, points: dict) -> dict:
    """PyMC's own values of every posterior variable at the given value-variable points."""
    names = [rv.name for rv in pymc_model.free_RVs] + [d.name for d in pymc_model.deterministics]
    outputs = pymc_model.replace_rvs_by_values([pymc_model[name] for name in names])
    inputs = pymc_model.value_vars
    function = pytensor.function(inputs, outputs, mode="FAST_COMPILE", on_unused_input="ignore")
    n = len(next(iter(points.values())))
    rows = [function(*[points[v.name][i] for v in inputs]) for i in range(n)]
    return {name: np.stack([row[k] for row in rows]) for k, name in enumerate(names)}


@pytest.mark.parametrize("case", list(CASES))
def test_expand_equals_pymc_graph(case):
    model = CASES[case]()
    pymc_model = build(model)
    rng = np.random.default_rng(3)
    points = {v.name: rng.normal(0, 1.2, (5, *pymc_model.initial_point()[v.name].shape))
              for v in pymc_model.value_vars}
    ours = expand(model, points)
    expected = pymc_values(pymc_model, points)
    assert set(ours) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(ours[name], value, rtol=1e-14, atol=1e-14, err_msg=f"{case}: {name}")
    if case == "network, multi-arm trial":
        assert model.study_correlation is not None
    if case == "multilevel, shared sampling errors":
        assert model.sampling_cov is not None
    if case == "logstudent_t prior":
        assert "log_tau" in ours and np.all(ours["tau"] > 0)


def test_products_as_the_graph_writes_them():
    """np_product (and the graph's _product) by the design's shape: the same as matrix @ vector."""
    rng = np.random.default_rng(0)
    v = rng.normal(size=(4, 3))
    indicator = np.eye(3)[[2, 0, 0, 1, 2]]
    contrast = np.array([[1.0, -1, 0], [0, 1, -1], [1, 0, 0]])
    assert np.array_equal(one_hot(indicator), [2, 0, 0, 1, 2]) and one_hot(contrast) is None
    assert one_hot(np.zeros((3, 0))) is None
    for matrix in (indicator, contrast, np.ones((5, 1)), rng.normal(size=(2, 3))):
        w = v if matrix.shape[1] == 3 else v[:, :1]
        np.testing.assert_allclose(np_product(matrix, w), w @ matrix.T, rtol=1e-15, atol=1e-15)


def test_layout_equals_the_built_model():
    """Every field a fit's result takes from the pm.Model, known from the description alone: equal
    (dtypes included) to what build's pm.Model holds, for every kind; and the posterior names are
    those expand computes."""
    for case, make in CASES.items():
        model = make()
        built, known = model_layout(build(model)), layout(model)
        assert known.coords == built.coords and list(known.coords) == list(built.coords), case
        assert known.dims == built.dims, case
        assert list(known.data) == list(built.data), case
        for name, values in built.data.items():
            assert known.data[name].dtype == values.dtype and np.array_equal(known.data[name], values), (case, name)
        assert known.posterior == built.posterior and known.observed == built.observed, case
        assert known.settings == built.settings, case
        rng = np.random.default_rng(0)
        pymc_model = build(model)
        points = {v.name: rng.normal(size=(2, *pymc_model.initial_point()[v.name].shape)) for v in pymc_model.value_vars}
        assert set(expand(model, points)) == known.posterior, case
