"""evsynth.model.moderators.design_matrix: formulaic-built X with metafor's column names, clear refusals."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evsynth.model.moderators import ModeratorError, design_matrix

DATA = Path(__file__).parent / "data"


@pytest.fixture
def bcg():
    # metadat's dat.bcg, written by Rscript -e 'write.csv(dat.bcg, "bcg.csv", row.names=FALSE)'
    return pd.read_csv(DATA / "bcg.csv").assign(study_id=lambda d: d.trial.astype(str))


def test_continuous_moderator_has_intercept_first(bcg):
    X, names = design_matrix(bcg, "~ ablat")
    assert names == ["intrcpt", "ablat"]
    np.testing.assert_array_equal(X[:, 0], 1.0)
    np.testing.assert_array_equal(X[:, 1], bcg.ablat.to_numpy(float))


def test_list_of_columns_equals_the_formula(bcg):
    X_list, names_list = design_matrix(bcg, ["ablat", "year"])
    X_formula, names_formula = design_matrix(bcg, "~ ablat + year")
    assert names_list == names_formula == ["intrcpt", "ablat", "year"]
    np.testing.assert_array_equal(X_list, X_formula)
    # a list is built without formulaic: the order given, a repeated column once, as formulaic does
    X_list, names_list = design_matrix(bcg, ["year", "ablat", "year"])
    X_formula, names_formula = design_matrix(bcg, "~ year + ablat")
    assert names_list == names_formula == ["intrcpt", "year", "ablat"]
    np.testing.assert_array_equal(X_list, X_formula)


def test_categorical_moderator_is_treatment_coded(bcg):
    # metafor's mods = ~ factor(alloc): reference level "alternate", dummies for random, systematic.
    X, names = design_matrix(bcg, "~ C(alloc)")
    assert names == ["intrcpt", "C(alloc)[T.random]", "C(alloc)[T.systematic]"]
    np.testing.assert_array_equal(X[:, 1], (bcg.alloc == "random").to_numpy(float))
    np.testing.assert_array_equal(X[:, 2], (bcg.alloc == "systematic").to_numpy(float))


def test_text_column_in_a_list_is_refused_a_categorical_is_declared(bcg):
    # issue 25: a category is never inferred from text cells; C(alloc) declares it
    with pytest.raises(ModeratorError, match=r"column 'alloc', study '1': 'random' is not a number.*C\(alloc\)"):
        design_matrix(bcg, ["alloc"])


def test_formula_without_intercept_says_so(bcg):
    X, names = design_matrix(bcg, "~ 0 + C(alloc)")
    # metafor's mods = ~ 0 + factor(alloc): one indicator per level, no intercept
    assert names == ["C(alloc)[alternate]", "C(alloc)[random]", "C(alloc)[systematic]"]
    for j, level in enumerate(("alternate", "random", "systematic")):
        np.testing.assert_array_equal(X[:, j], (bcg.alloc == level).to_numpy(float))


def test_missing_column_is_named(bcg):
    with pytest.raises(ModeratorError, match="'latitude'"):
        design_matrix(bcg, "~ latitude")


def test_empty_cell_names_study_and_column(bcg):
    bcg.loc[3, "ablat"] = np.nan
    with pytest.raises(ModeratorError, match=r"'ablat' is empty for used studies '4'"):
        design_matrix(bcg, ["ablat"])


def test_blank_text_cell_is_empty(bcg):
    bcg.loc[0, "alloc"] = " "
    with pytest.raises(ModeratorError, match=r"'alloc' is empty for used studies '1'"):
        design_matrix(bcg, "~ C(alloc)")


def test_constant_column_is_refused(bcg):
    bcg["year"] = 1990
    with pytest.raises(ModeratorError, match="'year' is constant"):
        design_matrix(bcg, "~ ablat + year")


def test_collinear_columns_are_refused(bcg):
    bcg["ablat2"] = 2 * bcg.ablat
    with pytest.raises(ModeratorError, match="'ablat2'"):
        design_matrix(bcg, "~ ablat + ablat2")


def test_left_hand_side_is_refused(bcg):
    with pytest.raises(ModeratorError, match="left-hand side"):
        design_matrix(bcg, "yi ~ ablat")


@pytest.mark.parametrize("bad", [[], "", 3, [""]])
def test_bad_mods_type_is_refused(bcg, bad):
    with pytest.raises(ModeratorError):
        design_matrix(bcg, bad)


def test_more_coefficients_than_studies_is_refused(bcg):
    with pytest.raises(ModeratorError, match="only 2 studies"):
        design_matrix(bcg.head(2), "~ ablat + year")
