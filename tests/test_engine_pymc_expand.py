"""engines.pymc.expand (the posterior's variables of build(model) computed in numpy from the free
variables' unconstrained draws, so that numba compiles no expand function) against PyMC's own graph
of the same quantities (its value variables -> untransformed variables and Deterministics, evaluated
by PyTensor's Python linker, no numba), for every model kind, transform and design shape build
writes: log and interval transforms, logstudent_t's exp, one-column, one-hot, contrast and
moderator designs, a multi-arm trial's correlated study effects, nested levels."""

import numpy as np
import pandas as pd
import pytest
import pytensor

from evsynth.engines.pymc import _np_product, _one_hot, build, expand
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
    if case == "logstudent_t prior":
        assert "log_tau" in ours and np.all(ours["tau"] > 0)


def test_products_as_the_graph_writes_them():
    """_np_product (and the graph's _product) by the design's shape: the same as matrix @ vector."""
    rng = np.random.default_rng(0)
    v = rng.normal(size=(4, 3))
    one_hot = np.eye(3)[[2, 0, 0, 1, 2]]
    contrast = np.array([[1.0, -1, 0], [0, 1, -1], [1, 0, 0]])
    assert np.array_equal(_one_hot(one_hot), [2, 0, 0, 1, 2]) and _one_hot(contrast) is None
    assert _one_hot(np.zeros((3, 0))) is None
    for matrix in (one_hot, contrast, np.ones((5, 1)), rng.normal(size=(2, 3))):
        w = v if matrix.shape[1] == 3 else v[:, :1]
        np.testing.assert_allclose(_np_product(matrix, w), w @ matrix.T, rtol=1e-15, atol=1e-15)
