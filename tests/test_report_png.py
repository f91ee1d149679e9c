"""present.report.tight_png: the report's figures drawn once, with the pixels and metadata of
`savefig(format="png", dpi=100, bbox_inches="tight")` (read back by Pillow, compared pixel for
pixel), and savefig itself where the single draw does not apply."""

import io
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from evsynth import compute_effects, load_studies
from evsynth.methods.analysis import run_analysis, split_by_outcome
from evsynth.methods.classical import classical
from evsynth.present import classical_plots, plots
from evsynth.present.report import SINGLE_DRAW_MATPLOTLIB, _drawn_once, tight_png

ROOT = Path(__file__).resolve().parents[1]
single_draw = pytest.mark.skipif(
    tuple(matplotlib.__version_info__[:2]) not in SINGLE_DRAW_MATPLOTLIB,
    reason=f"matplotlib {matplotlib.__version__}: the report saves by savefig itself")


def _once(fig) -> bytes | None:
    """The single draw's PNG (None: tight_png would call savefig)."""
    return _drawn_once(fig, 100, matplotlib)


def _savefig(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _read(data: bytes | None):
    """(pixels, metadata) of a PNG, its chunk checksums verified."""
    assert data is not None, "the single draw did not apply"
    Image.open(io.BytesIO(data)).verify()
    image = Image.open(io.BytesIO(data))
    return np.asarray(image), image.info


def same_png(a: bytes | None, b: bytes) -> bool:
    (pixels_a, info_a), (pixels_b, info_b) = _read(a), _read(b)
    return pixels_a.shape == pixels_b.shape and np.array_equal(pixels_a, pixels_b) and info_a == info_b


def _odd(fig) -> bool:
    """Whether the tight box leaves an odd number of rows of the canvas (the shifted case)."""
    renderer = fig.canvas.get_renderer()
    box = fig.get_tightbbox(renderer).padded(matplotlib.rcParams["savefig.pad_inches"])
    return (int(renderer.height) - int(box.height * 100)) % 2 == 1


@pytest.fixture(scope="module")
def report_figures():
    """Builders of every kind of figure the report embeds, on the bundled data (exact engine)."""
    studies = load_studies(ROOT / "studies" / "massage.csv")
    runnable, _ = split_by_outcome(compute_effects(studies), False, False)
    figures = []
    for label, table in runnable.items():
        result = run_analysis(label, table, engine="exact", draws=500, chains=2, bias=False)
        figures += [lambda r=result: plots.forest(r.idata, r.effects, studies=studies, summary=r.summary),
                    lambda r=result: plots.funnel(r.effects, center=0.5),
                    lambda r=result: plots.prior_posterior(r.idata, "tau")]
    res = classical(runnable["milk volume"], studies, label="milk volume")
    figures += [lambda: classical_plots.baujat_plot(res.baujat),
                lambda: classical_plots.filled_funnel(res.trimfill["L0"], res.measure)]
    if res.cumulative is not None:
        figures.append(lambda: classical_plots.cumulative_forest(res.cumulative, res.measure,
                                                                 bayesian=res.bayesian_cumulative))
    return figures


@single_draw
def test_the_report_figures_are_savefigs_bytes(report_figures):
    for build in report_figures:
        fig = build()
        expected = _savefig(build())  # a fresh figure: savefig as the report called it before
        assert same_png(_once(fig), expected)
        plt.close("all")
    assert len(report_figures) >= 8


def _texts(height: float):
    """A figure of many short texts at finely spaced heights: some positions round half to even."""
    fig = plt.figure(figsize=(3, height), dpi=100)
    for i in range(120):
        fig.text((10 + (i % 6) * 45) / 300, (20 + i * 2.0625 + (i % 7) / 8) / (100 * height), "Hg", fontsize=7)
    return fig


@single_draw
def test_both_row_parities_are_exact():
    """An odd offset between the canvas and savefig's box is drawn one row lower and cut there: without
    that, every odd case below differs from savefig (checked by removing it)."""
    parities = []
    for k in range(12):
        height = 3.0 + k * 0.0125
        fig = _texts(height)
        parities.append(_odd(fig))
        assert same_png(_once(fig), _savefig(_texts(height))), f"height {height}"
        plt.close("all")
    assert any(parities) and not all(parities)


def test_what_the_single_draw_does_not_cover_goes_through_savefig():
    # a legend far right of the axes: the tight box is wider than the canvas
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1], label="a line with a long legend entry " * 3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.05, 1))
    fig.canvas.get_renderer()
    assert fig.get_tightbbox().width > 3
    expected = _savefig(fig)
    assert _once(fig) is None and tight_png(fig) == expected
    # an image, another dpi
    for make in (lambda: plt.subplots(figsize=(3, 2))[0], lambda: plt.figure(figsize=(3, 2), dpi=72)):
        fig = make()
        ax = fig.axes[0] if fig.axes else fig.add_subplot()
        ax.imshow(np.arange(12.0).reshape(3, 4))
        assert _once(fig) is None and tight_png(fig) == _savefig(fig)
    plt.close("all")
