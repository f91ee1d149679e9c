"""The forest plot's layout (columns, headers, marks), read from the artists, not from pixels.

Posteriors are built by hand with arviz.from_dict from normal distributions, so the drawn intervals
are checked against closed forms, not against a fit. The study rows are drawn as one TextColumn
per column and collections of marks (issue 26); `_entries` and `_marks` read every row's text,
position, interval, point, size and fill from them, so a wrong or missing row still fails.
"""

import arviz as az
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from evsynth import compute_effects, load_studies  # noqa: E402
from evsynth import plots  # noqa: E402

from conftest import ROOT  # noqa: E402
from conftest import artists_by_gid as _gid  # noqa: E402
from conftest import synthetic_row as _row  # noqa: E402
from conftest import technique_idata as _shared_technique_idata  # noqa: E402


def technique_idata(effects, **kwargs):
    return _shared_technique_idata(effects, chains=CHAINS, draws=DRAWS, **kwargs)

Z975 = 1.959964
CHAINS, DRAWS = 2, 4000


def make_effects():
    rows = [
        _row("a1", "neck", 0.40, 0.20, rob="low"),
        _row("a2", "neck", 0.10, 0.30, rob="high"),
        _row("b1", "oxytocin", 0.80, 0.25, rob="some concerns"),
        _row("b2", "oxytocin", 0.55, 0.15),
        {"study_id": "pp", "citation": "test row", "source_level": "synthetic", "design": "pre_post",
         "technique": "oxytocin", "outcome": "milk volume", "n": 30, "mean_pre": 10, "mean_post": 12,
         "sd_pre": 4, "sd_post": 4, "synthetic": "true"},
        # a p-value bound on a standardized measure: censored at the bound
        {"study_id": "cens", "citation": "test row", "source_level": "synthetic", "design": "two_group",
         "technique": "neck", "outcome": "milk volume", "n_treat": 15, "n_ctrl": 15, "mean_treat": 14,
         "mean_ctrl": 10, "p_upper": 0.001, "synthetic": "true"},
        _row("h2h", "neck", 0.3, 0.2, comparator="oxytocin"),  # head-to-head: not in a pairwise forest
    ]
    return compute_effects(load_studies(pd.DataFrame(rows)), measure="SMD", p_bound="censor")


@pytest.fixture
def effects():
    return make_effects()


def _normal(rng, mean, sd, *shape):
    return rng.normal(mean, sd, size=(CHAINS, DRAWS, *shape))


def random_effects_idata(effects, mu=(0.5, 0.1), tau=0.2, seed=1, measure="SMD"):
    rng = np.random.default_rng(seed)
    used = effects[effects["used"] & ~effects["head_to_head"]]
    studies = list(used["study_id"])
    posterior = {"mu": _normal(rng, *mu), "tau": np.full((CHAINS, DRAWS), tau),
                 "theta": _normal(rng, 0, 0.01, len(studies)) + used["yi"].to_numpy()}
    idata = az.from_dict({"posterior": posterior}, coords={"study": studies}, dims={"theta": ["study"]})
    idata.attrs["measure"] = measure
    return idata


def _entries(fig, prefix):
    """(gid, text, x, y) of every text whose gid starts with `prefix` (a trailing '=' asks for an
    exact match): the Text artists and each row of the TextColumns, top to bottom (data y)."""
    from evsynth.present.text_column import TextColumn

    exact, key = prefix.endswith("="), prefix.rstrip("=")
    match = (lambda g: g == key) if exact else (lambda g: g.startswith(key))
    ax = fig.axes[0]
    out = [(a.get_gid(), a.get_text(), *a.get_position()) for a in ax.texts if isinstance(a.get_gid(), str)
           and match(a.get_gid())]
    for column in (a for a in ax.get_children() if isinstance(a, TextColumn)):
        out += [(gid, text, column.x, y) for y, text, gid in column.rows if match(gid)]
    return sorted(out, key=lambda e: -e[3]) if all(np.isfinite(e[3]) for e in out) else out


def _texts(fig, prefix):
    return [e[1] for e in _entries(fig, prefix)]


def _marks(fig):
    """{study_id: {"ci": (x0, x1), "point": (x, y), "size": side in points, "face": rgba, "theta": x}}
    read from the collections (the row's y names the study); a censored study (drawn by its own
    arrow and triangle) has only "theta"."""
    ax = fig.axes[0]
    at = {y: gid.split(":", 2)[2] for gid, _, _, y in _entries(fig, "row-label:study:")}
    (lines,) = [c for c in ax.collections if c.get_gid() == "study-ci"]
    (squares,) = [c for c in ax.collections if c.get_gid() == "study"]
    (theta,) = [line for line in ax.lines if line.get_gid() == "theta"]
    out = {}
    for segment in lines.get_segments():
        out.setdefault(at[segment[0, 1]], {})["ci"] = tuple(segment[:, 0])
    faces = squares.get_facecolors()
    for (x, y), size, face in zip(squares.get_offsets(), squares.get_sizes(), faces):
        out[at[y]].update(point=(x, y), size=float(np.sqrt(size)), face=tuple(face))
    for x, y in zip(theta.get_xdata(), theta.get_ydata()):
        out.setdefault(at[y + 0.22], {})["theta"] = x
    return out


def _bcg_effects():
    bcg = pd.read_csv(ROOT / "tests" / "data" / "bcg.csv")
    rows = [{"study_id": f"{a} {y}", "citation": "Colditz et al. 1994", "source_level": "secondary",
             "design": "two_group", "technique": "BCG", "outcome": "tuberculosis", "direction": "lower",
             "events_treat": tp, "n_treat": tp + tn, "events_ctrl": cp, "n_ctrl": cp + cn}
            for a, y, tp, tn, cp, cn in zip(bcg.author, bcg.year, bcg.tpos, bcg.tneg, bcg.cpos, bcg.cneg)]
    return compute_effects(load_studies(pd.DataFrame(rows)), measure="RR"), bcg


# ----------------------------------------------------------------------------- layout


def test_column_headers_and_rows(effects):
    fig = plots.forest(technique_idata(effects), effects)
    assert _texts(fig, "header:") == ["Study", "n", "RoB", "Estimate [95% interval]", "Weight %"]
    labels = _texts(fig, "row-label:")
    assert labels[:-1] == ["neck", "a1", "a2", "cens", "Technique effect", "oxytocin", "b1", "b2", "pp",
                           "Technique effect", "Pooled (mu)", "Prediction, new study"]
    assert labels[-1].startswith("Heterogeneity: tau\u00b2 ")
    assert "h2h" not in labels
    # indentation is visible: studies and subtotals start right of their group's header
    x = {text: x for _, text, x, _ in _entries(fig, "row-label:")}
    assert x["a1"] > x["neck"] and x["Technique effect"] == x["a1"] and x["Pooled (mu)"] == x["neck"]
    assert _texts(fig, "rob:") == ["low", "high", "some"]
    assert {gid: text for gid, text, _, _ in _entries(fig, "n:")} == {"n:cens": "30", "n:pp": "30"}
    # every row's texts on the row's line: label, estimate and interval kind share each study's y
    y = {gid.split(":")[-1]: (text, yy) for gid, text, _, yy in _entries(fig, "row-label:study:")}
    for column in ("estimate:study:", "interval-kind:study:"):
        assert {gid.split(":")[-1]: yy for gid, _, _, yy in _entries(fig, column)} == {k: v[1] for k, v in y.items()}
    # the numbers column starts just right of the plot (within 0.2 inch)
    from evsynth.present.text_column import TextColumn

    (est,) = [a for a in fig.axes[0].get_children() if isinstance(a, TextColumn) and a.rows[0][2].startswith("estimate:")]
    plot_right = fig.axes[0].get_window_extent().x1
    gap = (est.get_window_extent(fig.canvas.get_renderer()).x0 - plot_right) / fig.dpi
    assert 0 < gap < 0.2


def test_no_rob_column_without_judgements(effects):
    plain = effects.assign(rob=None)
    fig = plots.forest(technique_idata(plain), plain)
    assert _texts(fig, "header:") == ["Study", "n", "Estimate [95% interval]", "Weight %"] and not _entries(fig, "rob:")


def test_square_area_follows_precision(effects):
    fig = plots.forest(technique_idata(effects), effects)
    used = effects[effects.used & ~effects.head_to_head & ~effects.censored]
    sizes = {sid: mark["size"] for sid, mark in _marks(fig).items() if "size" in mark}
    assert set(sizes) == set(used["study_id"])
    by_precision = used.sort_values("sei", ascending=False)["study_id"].tolist()  # least precise first
    assert [sizes[s] for s in by_precision] == sorted(sizes[s] for s in by_precision)
    # area proportional to 1/se^2 (above the minimum size)
    a1, b2 = (used.set_index("study_id").loc[s, "sei"] for s in ("a1", "b2"))
    assert (sizes["b2"] / sizes["a1"]) ** 2 == pytest.approx((a1 / b2) ** 2, rel=1e-6)


def test_design_marker(effects):
    fig = plots.forest(technique_idata(effects), effects)
    marks = _marks(fig)
    assert marks["pp"]["face"] == (1.0, 1.0, 1.0, 1.0) and marks["b2"]["face"] == (0.0, 0.0, 0.0, 1.0)
    assert [sid for sid, mark in marks.items() if mark.get("face") == (1.0, 1.0, 1.0, 1.0)] == ["pp"]
    assert set(marks) == {"a1", "a2", "b1", "b2", "pp", "cens"} and set(marks["cens"]) == {"theta"}


def test_censored_row_is_one_sided(effects):
    fig = plots.forest(technique_idata(effects), effects)
    yi = effects.set_index("study_id").loc["cens", "yi"]
    (point,) = _gid(fig, "study:cens=")
    assert point.get_marker() == ">" and point.get_xdata()[0] == pytest.approx(yi)
    (arrow,) = _gid(fig, "study-ci:cens=")  # from the bound to the edge, on the side where the effect lies
    start, end = arrow.xyann[0], arrow.xy[0]
    assert start == pytest.approx(yi) and end > yi and end == pytest.approx(fig.axes[0].get_xlim()[1])
    (text,) = [t for t in _texts(fig, "estimate:study") if "bound" in t]
    assert text.startswith(">") and f"{yi:.2f}" in text and "[" not in text


def test_intervals_match_closed_form(effects):
    idata = technique_idata(effects, mu=(0.5, 0.1), tau=0.2, tau_technique=0.3,
                            technique={"neck": (0.2, 0.05), "oxytocin": (0.7, 0.08)})
    fig = plots.forest(idata, effects)
    (pooled,) = _gid(fig, "diamond:pooled=")
    x = pooled.get_xy()[:, 0]
    assert (x.min(), x.max()) == pytest.approx((0.5 - Z975 * 0.1, 0.5 + Z975 * 0.1), abs=0.01)
    (oxy,) = _gid(fig, "diamond:technique:oxytocin")
    assert oxy.get_xy()[:, 0].max() == pytest.approx(0.7 + Z975 * 0.08, abs=0.01)
    (pred,) = _gid(fig, "prediction")  # mu + tau_technique z1 + tau z2
    sd = np.sqrt(0.1**2 + 0.3**2 + 0.2**2)
    assert pred.get_xdata() == pytest.approx([0.5 - Z975 * sd, 0.5 + Z975 * sd], abs=0.02)
    marks = _marks(fig)
    assert marks["b2"]["ci"] == pytest.approx((0.55 - 1.96 * 0.15, 0.55 + 1.96 * 0.15))
    assert marks["b2"]["point"][0] == pytest.approx(0.55)
    # every study's interval and point are its own (yi +- 1.96 se), and its posterior median beside it
    table = effects.set_index("study_id")
    for sid, mark in marks.items():
        yi, se = table.loc[sid, ["yi", "sei"]]
        if sid != "cens":
            assert mark["ci"] == pytest.approx((yi - 1.96 * se, yi + 1.96 * se)) and mark["point"][0] == pytest.approx(yi)
        theta = np.median(idata.posterior["theta"].sel(study=sid).to_numpy())
        assert mark["theta"] == pytest.approx(theta)


def test_ratio_measure_on_a_back_transformed_log_axis():
    effects, bcg = _bcg_effects()
    fig = plots.forest(random_effects_idata(effects, mu=(-0.71, 0.18), tau=0.56, measure="RR"), effects)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "RR" in ax.get_xlabel()
    assert _gid(fig, "null=")[0].get_xdata()[0] == 1.0
    # Aronson 1948: RR and its CI from the 2x2 counts (escalc "RR"), printed back-transformed
    log_rr = np.log(4 / 123) - np.log(11 / 139)
    se = np.sqrt(1 / 4 - 1 / 123 + 1 / 11 - 1 / 139)
    ci = _marks(fig)["Aronson 1948"]["ci"]
    assert ci == pytest.approx(np.exp([log_rr - 1.96 * se, log_rr + 1.96 * se]))
    first = _texts(fig, "estimate:study")[0]
    assert first.split() == [f"{np.exp(log_rr):.2f}", f"[{np.exp(log_rr - 1.96 * se):.2f},",
                             f"{np.exp(log_rr + 1.96 * se):.2f}]"]
    # fewer TB cases is better: a ratio below 1 favours the vaccine
    assert _texts(fig, "favours:right") == ["favours control \u2192"]
    assert _texts(fig, "favours:left") == ["\u2190 favours BCG"]


def test_favours_follows_the_direction(effects):
    fig = plots.forest(technique_idata(effects), effects)
    assert _texts(fig, "favours:left") == ["\u2190 favours comparator"]
    assert _texts(fig, "favours:right") == ["favours technique \u2192"]
    fig = plots.forest(technique_idata(effects), effects, favours=("usual care better", "massage better"))
    assert _texts(fig, "favours:right") == ["massage better \u2192"]


def test_no_negative_zero(effects):
    idata = technique_idata(effects, mu=(-0.001, 0.001))
    fig = plots.forest(idata, effects)
    pooled = [a.get_text() for a in _gid(fig, "estimate:pooled")][0]
    assert "-0.00" not in pooled and pooled.split()[0] == "0.00"
    fig.canvas.draw()
    assert "-0.00" not in [t.get_text() for t in fig.axes[0].get_xticklabels()]


def test_common_effect_has_no_prediction_row(effects):
    idata = technique_idata(effects)
    common = az.from_dict({"posterior": {"mu": idata.posterior["mu"].to_numpy(),
                                         "theta": idata.posterior["theta"].to_numpy()}},
                          coords={"study": list(idata.posterior["study"].to_numpy())}, dims={"theta": ["study"]})
    fig = plots.forest(common, effects)
    assert _texts(fig, "row-label:")[-2] == "Pooled (mu)" and not _gid(fig, "prediction")
    assert not _gid(fig, "diamond:technique")


def test_refuses_a_table_the_fit_did_not_see(effects):
    idata = technique_idata(effects)
    extra = pd.concat([effects, effects.iloc[[0]].assign(study_id="zz")], ignore_index=True)
    extra.attrs = dict(effects.attrs)
    with pytest.raises(ValueError, match="zz"):
        plots.forest(idata, extra)


# ----------------------------------------------------------------------------- journal layout (issue 27)

def test_journal_columns_on_bcg():
    """Author-year labels, the arms' counts, weights, a heterogeneity line and CI / CrI / PI labels;
    checked against closed forms and metafor's published BCG figures (Q(df = 12) = 152.2330; I² at
    tau² = 0.3132: 92.22%)."""
    effects, bcg = _bcg_effects()
    studies = pd.DataFrame({"study_id": effects["study_id"], "citation": [f"{a.split()[0]} AB, Other C. Title" for a in bcg.author],
                            "year": bcg.year, "design": "two_group", "events_treat": bcg.tpos,
                            "n_treat": bcg.tpos + bcg.tneg, "events_ctrl": bcg.cpos, "n_ctrl": bcg.cpos + bcg.cneg})
    tau = 0.56
    fig = plots.forest(random_effects_idata(effects, mu=(-0.71, 0.18), tau=tau, measure="RR"), effects,
                       studies=studies)
    labels = _texts(fig, "row-label:study")
    assert labels[0] == "Aronson 1948" and labels[-1] == "Comstock 1976"
    assert _texts(fig, "arm-treat:")[0] == "4/123" and _texts(fig, "arm-ctrl:")[0] == "11/139"
    assert "Treatment" in _texts(fig, "header:") and "Comparator" in _texts(fig, "header:")
    # weights: 1/(se^2 + tau^2), in percent, summing to 100
    w = 1 / (effects["sei"].to_numpy() ** 2 + tau**2)
    shown = [float(t) for t in _texts(fig, "weight:")]
    assert shown == pytest.approx(100 * w / w.sum(), abs=0.05) and sum(shown) == pytest.approx(100, abs=0.1)
    (line,) = _texts(fig, "row-label:heterogeneity")
    assert "Q = 152.23, df = 12, p < 0.001" in line
    assert f"tau\u00b2 {tau**2:.2f} [{tau**2:.2f}, {tau**2:.2f}] CrI" in line
    assert "I\u00b2 (between studies) 92% (posterior median)" in line
    kinds = _texts(fig, "interval-kind:")
    assert kinds == ["CI"] * 13 + ["CrI", "PI"]


def test_labels_without_an_author_keep_the_study_id():
    from evsynth.present.plots import author_year

    table = pd.DataFrame({"study_id": ["a", "b", "c", "d"], "year": [2017, None, 2020, 2017],
                          "citation": ["Hesti KY, Pramono N. Effect", "Oxytocin massage, a clinic (2023)",
                                       "(authors not in stored copy) Pengaruh", "Hesti KY. Another"]})
    assert author_year(table) == {"a": "Hesti 2017 (a)", "b": "b", "c": "c", "d": "Hesti 2017 (d)"}


def test_censored_row_has_no_weight_and_says_bound(effects):
    fig = plots.forest(technique_idata(effects), effects)
    weights = {gid.split(":")[1] for gid, _, _, _ in _entries(fig, "weight:")}
    assert "cens" not in weights and {"a1", "a2", "b1", "b2", "pp"} == weights
    assert "bound" in _texts(fig, "interval-kind:study")


def test_tight_bbox_keeps_the_text_columns(effects):
    """The report saves with bbox_inches="tight": the study rows' columns (TextColumn artists)
    report their extent, so the saved figure keeps the labels left of the plot and the weights
    right of it."""
    from evsynth.present.text_column import TextColumn

    fig = plots.forest(technique_idata(effects), effects)
    renderer = fig.canvas.get_renderer()
    tight = fig.get_tightbbox(renderer)  # inches
    columns = [a for a in fig.axes[0].get_children() if isinstance(a, TextColumn)]
    labels = next(c for c in columns if c.rows[0][2].startswith("row-label:study:"))
    weights = next(c for c in columns if c.rows[0][2].startswith("weight:"))
    box_l, box_w = labels.get_window_extent(renderer), weights.get_window_extent(renderer)
    assert box_l.width > 0 and box_w.width > 0 and not labels.get_clip_on()  # outside the axes, not clipped to it
    assert tight.x0 <= box_l.x0 / fig.dpi + 1e-9 and tight.x1 >= box_w.x1 / fig.dpi - 1e-9
    assert box_l.x1 < fig.axes[0].get_window_extent().x0 < fig.axes[0].get_window_extent().x1 < box_w.x0


def test_an_exact_fit_s_forest_quotes_its_summary_table_not_draw_quantiles():
    """The exact engine's summary is exact and its draws carry Monte Carlo error: given the summary,
    the technique, pooled and prediction rows, tau² and the weights are the table's figures (the
    bundled milk-volume forest had printed 0.88 [0.34, 1.38] beside the output's 0.88 [0.32, 1.39])."""
    import re

    import evsynth as es

    effects = es.compute_effects(es.load_studies(ROOT / "studies" / "massage.csv")).query("outcome == 'milk volume'")
    result = es.run_analysis("milk volume", effects, engine="exact", draws=300, chains=2)
    summary = result.summary
    assert "technique: oxytocin" in summary.index  # the by-technique model: technique rows too

    def quoted(row):
        q = summary.loc[row]
        return [f"{q['q50']:.2f}", f"{q['q2.5']:.2f}", f"{q['q97.5']:.2f}"]

    fig = plots.forest(result.idata, result.effects, summary=summary)
    def shown(figure, gid):  # the numbers of the estimate texts of the rows with this gid, top to bottom
        return [re.findall(r"-?\d+\.\d+", text) for text in _texts(figure, f"{gid}=")]

    assert shown(fig, "estimate:pooled") == [quoted("pooled (mu)")]
    assert shown(fig, "estimate:prediction") == [quoted("prediction (new study)")]
    assert shown(fig, "estimate:technique") == [quoted(f"technique: {t}") for t in ("breast massage", "marmet", "oxytocin")]
    tau = summary.loc["tau (between studies)"]
    (line,) = _texts(fig, "row-label:heterogeneity")
    assert f"tau\u00b2 {tau['q50']**2:.2f} [{tau['q2.5']**2:.2f}, {tau['q97.5']**2:.2f}] CrI" in line
    # without the summary the draws are quoted, and they differ here (so the checks above can fail)
    assert shown(plots.forest(result.idata, result.effects), "estimate:pooled") != [quoted("pooled (mu)")]
    matplotlib.pyplot.close("all")


def test_save_png_writes_the_pixels_of_a_default_savefig(effects, tmp_path):
    """The forest is saved by present.png (no per-row filter search, zlib level 1; issue 26): PNG is
    lossless, so the decoded pixels are those of matplotlib's default save, with its metadata."""
    from PIL import Image

    from evsynth.present.png import save_png

    fig = plots.forest(technique_idata(effects), effects)
    save_png(fig, tmp_path / "fast.png", dpi=120)
    fig.savefig(tmp_path / "default.png", dpi=120)
    matplotlib.pyplot.close(fig)
    fast, default = Image.open(tmp_path / "fast.png"), Image.open(tmp_path / "default.png")
    assert fast.format == "PNG" and fast.size == default.size and fast.info == default.info
    assert np.array_equal(np.asarray(fast), np.asarray(default))
