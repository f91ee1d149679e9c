"""Node splits derive each split model from one network description (model.description.split_network,
issue 26: no pandas per split). The derived model must be the one network(..., split=) builds."""

import sys

import numpy as np
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))


def test_every_derived_split_is_the_model_network_builds():
    import evsynth as es
    from bench_network import simulate
    from evsynth.model.description import network, split_network
    from evsynth.model.network_graph import prepare_network, splittable_comparisons

    effects = es.compute_effects(es.load_studies(simulate()))
    splittable = splittable_comparisons(prepare_network(effects, "control", False))
    base = network(effects)
    assert len(splittable) == 20
    for split in splittable + [(b, a) for a, b in splittable[:3]]:  # either orientation
        built, derived = network(effects, split=split), split_network(base, split, splittable)
        for name in built.__dataclass_fields__:
            a, b = getattr(built, name), getattr(derived, name)
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b, err_msg=f"{split} {name}")
            else:
                assert repr(a) == repr(b), (split, name)
    with pytest.raises(ValueError, match="cannot be split"):
        split_network(base, ("T1", "T9x"), splittable)
