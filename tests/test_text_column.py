"""present.text_column.TextColumn: a column of rows drawn by one artist must give the pixels of a
matplotlib Text per row. Its Agg path (issue 26) makes the renderer's calls itself, so it is
checked here against ax.text per row, pixel for pixel, over alignments, fonts, colours, repeated
and empty strings, and the rows it hands back to Text.draw (mathtext, a line break)."""

import io

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from evsynth.present.text_column import TextColumn

ROWS = ["Hesti 2017", "0.1", "0.1", "", "-1.26 [-0.66,  1.87]", "Wang (s12) ü²", "$x^2$ math", "two\nlines",
        "CI", "CI", "SYNTHETIC (sim0999)", "(bound)", "0.10", "n/i"]
STYLES = [dict(ha="left", va="center"), dict(ha="right", va="center", family="monospace"),
          dict(ha="center", va="center", fontweight="bold", color="#c62828"),
          dict(ha="left", va="bottom", fontsize=11, alpha=0.6), dict(ha="right", va="top", fontstyle="italic"),
          dict(ha="center", va="baseline"), dict(ha="left", va="center_baseline", color="0.2")]


def _figure(draw_rows, dpi=120):
    fig, ax = plt.subplots(figsize=(6, 4), dpi=dpi)
    ax.set_ylim(-1, len(ROWS))
    where = ax.get_yaxis_transform()
    for k, style in enumerate(STYLES):
        kw = dict(transform=where, fontsize=8, clip_on=False) | style
        draw_rows(ax, 0.02 + 0.14 * k, [(len(ROWS) - 1 - i + 0.13 * k, text, f"c{k}:{i}") for i, text in enumerate(ROWS)], kw)
    return fig


def _pixels(fig) -> np.ndarray:
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba()).copy()
    plt.close(fig)
    return pixels


def _as_column(ax, x, rows, kw):
    ax.add_artist(TextColumn(ax, x, rows, **kw))


def _as_texts(ax, x, rows, kw):
    for y, text, gid in rows:
        ax.text(x, y, text, gid=gid, **kw)


@pytest.mark.parametrize("dpi", [72, 120])
def test_the_column_draws_the_pixels_of_a_text_per_row(dpi):
    column, texts = _pixels(_figure(_as_column, dpi)), _pixels(_figure(_as_texts, dpi))
    assert column.shape == texts.shape and (texts[..., :3] < 128).sum() > 2000  # text was drawn
    assert np.array_equal(column, texts)


def test_the_agg_path_is_the_one_taken_on_matplotlib_3_10():
    """So the comparison above tests it: on 3.10 (constraints.txt) the column draws itself; on other
    versions it falls back to Text.draw per row (and the comparison holds trivially)."""
    fig = _figure(_as_column)
    fig.canvas.draw()
    column = next(a for a in fig.axes[0].get_children() if isinstance(a, TextColumn))
    taken = column._draw_agg(fig.canvas.get_renderer())
    plt.close(fig)
    assert taken == matplotlib.__version__.startswith("3.10.")


def test_a_different_string_changes_the_pixels():
    """The other side: the comparison can fail (one row's text changed by one character)."""
    def changed(ax, x, rows, kw):
        _as_column(ax, x, [(y, "Hesti 2018" if text == "Hesti 2017" else text, gid) for y, text, gid in rows], kw)

    assert not np.array_equal(_pixels(_figure(changed)), _pixels(_figure(_as_texts)))


def test_svg_keeps_each_row_s_gid():
    fig = _figure(_as_column)
    out = io.StringIO()
    fig.savefig(out, format="svg")
    plt.close(fig)
    assert 'id="c0:0"' in out.getvalue() and 'id="c6:10"' in out.getvalue()
