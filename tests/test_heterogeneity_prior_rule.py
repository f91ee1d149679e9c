"""The heterogeneity prior's rule (issue 23): every fit states the tau prior it used and where it
comes from; where an empirically informed prior applies to the measure (Rhodes et al. 2015 for SMD,
Turner et al. 2015 for log OR) the pooled effect under it is printed beside, as a sensitivity; for
the other measures the output says why there is none. Both sides of the rule, for every measure."""

import pytest

from evsynth.cli.main import main
from evsynth.data.studies import load_studies
from evsynth.data.vocabulary import MEASURES
from evsynth.effects.table import compute_effects
from evsynth.engines.exact import summary_table
from evsynth.model.description import describe
from evsynth.model.priors import informed_tau_prior

FAST = ["--engine", "exact", "--draws", "200", "--chains", "2", "--quiet"]
BCG = ["studies/bcg.csv", "--extra-column", "ablat", "--extra-column", "alloc"]


@pytest.mark.parametrize("measure", MEASURES)
def test_the_rule_for_every_measure(measure):
    prior, why = informed_tau_prior(measure)
    expected = {"SMD": "rhodes2015()", "OR": "turner2015()"}.get(measure)
    assert prior == expected
    if prior is None:
        assert why  # the reason is printed
    else:  # the source: distribution and citation
        assert ("Rhodes KM" if measure == "SMD" else "Turner RM") in why
        assert ("t_5(-3.44, 2.59)" if measure == "SMD" else "N(-2.56, 1.74^2)") in why


def _flat(text):
    return " ".join(text.split())


def _pooled(effects, model, tau):
    row = summary_table(describe(model, effects, {"tau": tau})).loc["pooled (mu)"]
    return f"{row['q50']:.2f} [{row['q2.5']:.2f}, {row['q97.5']:.2f}]"


@pytest.mark.parametrize("measure, informed", [("OR", "turner2015()"), ("RR", None)])
def test_binary_side_of_the_rule(tmp_path, capsys, measure, informed):
    assert main(["fit"] + BCG + ["--measure", measure, "--out", str(tmp_path)] + FAST) == 0
    text = _flat(capsys.readouterr().out)
    assert "heterogeneity prior: tau ~ halfnormal(0.5) (evsynth's default, weakly informative)" in text
    if informed is None:
        assert "no empirically informed tau prior for RR: Turner et al.'s distributions are for log odds ratios" in text
        assert "sensitivity to the tau prior" not in text
    else:
        effects = compute_effects(load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"]), measure=measure)
        assert (f"with the empirically informed {informed} (Turner et al. 2015, log OR; log(tau^2) ~ N(-2.56, 1.74^2), "
                f"i.e. tau ~ lognormal(-1.28, 0.87)) pooled {_pooled(effects, 'random_effects', informed)} vs "
                f"{_pooled(effects, 'random_effects', 'halfnormal(0.5)')} with halfnormal(0.5)") in text


def test_smd_side_of_the_rule(tmp_path, capsys):
    assert main(["fit", "--outcome", "milk volume", "--out", str(tmp_path)] + FAST) == 0
    text = _flat(capsys.readouterr().out)
    assert "heterogeneity prior: tau ~ halfnormal(0.5) (evsynth's default, weakly informative)" in text
    assert "sensitivity to the tau prior: with the empirically informed rhodes2015() (Rhodes et al. 2015, SMD;" in text
    assert "the informed prior is a sensitivity, not the default" in text


def test_a_named_prior_is_printed_with_its_source(tmp_path, capsys):
    """(On bcg as log OR: with a log-t Rhodes prior as the main prior the bias-adjusted ensemble's
    quadrature takes minutes, see README: heterogeneity prior.)"""
    base = ["fit"] + BCG + ["--measure", "OR", "--out", str(tmp_path)] + FAST
    assert main(base + ["--prior", "tau=turner2015(infection, pharma_vs_placebo)"]) == 0
    text = _flat(capsys.readouterr().out)
    assert ("heterogeneity prior: tau ~ turner2015(infection, pharma_vs_placebo) (turner2015(infection, "
            "pharma_vs_placebo): log(tau^2) ~ N(-2.49, 1.52^2), i.e. tau ~ lognormal(-1.245, 0.76); Turner RM") in text
    assert "Table IV (log odds ratios)" in text
    assert "sensitivity to the tau prior: with the empirically informed turner2015()" in text
    # the informed prior itself: no sensitivity against itself
    assert main(base + ["--prior", "tau=turner2015()"]) == 0
    text = _flat(capsys.readouterr().out)
    assert "heterogeneity prior: tau ~ turner2015() (turner2015(): log(tau^2) ~ N(-2.56, 1.74^2)" in text
    assert "p. 993, all outcome and comparison types (log odds ratios)" in text
    assert "sensitivity to the tau prior" not in text


def _sensitivity_line(text):
    start = text.index("sensitivity to the tau prior")
    return text[start:text.index("the informed prior is a sensitivity", start)]


def test_a_sampled_fit_s_sensitivity_line_compares_exact_figures_on_both_sides(tmp_path, capsys):
    """The line says "(median [95% CrI], exact engine)": after a PyMC fit its default-prior figure
    must be the exact engine's too, not the sampled one (whose Monte Carlo error the line would
    pass off as the prior's effect). The same line as an --engine exact fit prints, word for word."""
    base = ["fit", "--outcome", "milk volume", "--quiet"]
    assert main(base + ["--out", str(tmp_path / "exact"), "--engine", "exact"]) == 0
    exact = _sensitivity_line(_flat(capsys.readouterr().out))
    main(base + ["--out", str(tmp_path / "pymc"), "--engine", "pymc", "--draws", "300", "--chains", "2"])
    sampled = _flat(capsys.readouterr().out)
    assert "divergences" in sampled and "divergences" not in _flat(exact)  # it was a sampled fit
    assert _sensitivity_line(sampled) == exact
