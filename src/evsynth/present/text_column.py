"""A column of a table drawn beside a plot: one matplotlib artist for many rows of text.

A forest plot of 1,000 studies had ~5,000 Text artists (label, estimate, interval kind, weight, n
per row); making them took ~1.2 s and drawing them ~1.3 s more than the same text drawn by one
artist (issue 26). TextColumn draws each row with one Text re-used at every row's position, so
the pixels are those of a Text per row (same font, alignment and layout code), and each row keeps
its gid (the SVG group of that row's text). Tests and readers get the rows from `rows`.
"""

from __future__ import annotations

import numpy as np
from matplotlib.artist import Artist
from matplotlib.text import Text
from matplotlib.transforms import Bbox


class TextColumn(Artist):
    """Rows of text at x (in `transform`'s first coordinate) and each row's y, drawn like
    `ax.text(x, y, text, gid=gid, **text_kw)` per row.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> column = TextColumn(ax, 0.5, [(0.0, "a", "row:a"), (1.0, "b", "row:b")], ha="right")
        >>> [text for _, text, _ in column.rows], column.get_text_kw()["ha"]
        (['a', 'b'], 'right')
        >>> plt.close(fig)
    """

    def __init__(self, ax, x: float, rows: list[tuple[float, str, str]], **text_kw):
        super().__init__()
        self.x = x
        self.rows = [(float(y), str(text), gid) for y, text, gid in rows]
        self._text_kw = dict(text_kw)
        self._stamp = Text(x, 0.0, "", **text_kw)
        self._stamp.set_figure(ax.figure)
        self.set_figure(ax.figure)
        self.axes = ax
        self.set_zorder(self._stamp.get_zorder())
        self.set_clip_on(False)  # beside the axes, like the texts it stands for
        if "transform" in text_kw:
            self.set_transform(text_kw["transform"])

    def get_text_kw(self) -> dict:
        """The keywords every row's text is drawn with (font, alignment, colour, transform)."""
        return dict(self._text_kw)

    def text_at(self, i: int) -> Text:
        """Row i as the Text that draws it (position, string and gid set), e.g. for its extent."""
        y, text, gid = self.rows[i]
        self._stamp.set_position((self.x, y))
        self._stamp.set_text(text)
        self._stamp.set_gid(gid)
        return self._stamp

    def draw(self, renderer):
        if not self.get_visible():
            return
        if not self._draw_agg(renderer):
            for i in range(len(self.rows)):
                self.text_at(i).draw(renderer)
        self.stale = False

    def _draw_agg(self, renderer) -> bool:
        """Draw the rows with the Agg renderer's own calls, as Text.draw makes them for a one-line,
        unrotated text (its layout, graphics context, glyph bitmap and pixel position), without
        Text.draw's general path around them (~0.1 ms a row: ~0.4 s of a 1,000-study forest's
        4,000 cells) and drawing a string's glyphs once for its layout and its pixels, not twice.
        A row repeating the previous row's string re-uses its bitmap. Only on matplotlib 3.10,
        whose Text.draw and RendererAgg.draw_text this follows (tests/test_text_column.py compares
        the pixels with a Text per row); False (Text.draw per row) anywhere else: another
        renderer (SVG keeps each row's gid), mathtext, TeX, rotation, path effects, a bbox."""
        import matplotlib
        from matplotlib.backends.backend_agg import RendererAgg, get_hinting_flag

        stamp = self._stamp
        if (not matplotlib.__version__.startswith("3.10.") or type(renderer) is not RendererAgg
                or stamp.get_rotation() != 0 or stamp.get_usetex() or stamp.get_path_effects()
                or stamp.get_bbox_patch() is not None or stamp.get_wrap()):
            return False
        prop = stamp.get_fontproperties()
        _, lp_h, lp_d = renderer.get_text_width_height_descent("lp", prop, False)
        halign, valign = stamp.get_horizontalalignment(), stamp.get_verticalalignment()
        positions = self.get_transform().transform([(self.x, y) for y, _, _ in self.rows])
        gc = renderer.new_gc()
        gc.set_foreground(stamp.get_color())
        gc.set_alpha(stamp.get_alpha())
        gc.set_url(stamp.get_url())
        gc.set_antialiased(stamp._antialiased)
        stamp._set_gc_clip(gc)
        canvas_h = renderer.get_canvas_width_height()[1]
        font = renderer._prepare_font(prop)
        flags, last = get_hinting_flag(), None
        for i, ((_, text, _), (posx, posy)) in enumerate(zip(self.rows, positions)):
            if not text:
                continue
            line, ismath = stamp._preprocess_math(text)
            if ismath or "\n" in text or not (np.isfinite(posx) and np.isfinite(posy)):
                self.text_at(i).draw(renderer)  # Text.draw's own path (it warns about an infinite position)
                font, last = renderer._prepare_font(prop), None  # it drew with the shared font
                continue
            if line != last:
                font.set_text(line, 0, flags=flags)
                w, h = font.get_width_height()
                d = font.get_descent() / 64.0
                w, h = w / 64.0, h / 64.0
                font.draw_glyphs_to_bitmap(antialiased=gc.get_antialiased())
                xo, yo = font.get_bitmap_offset()
                xo, yo = xo / 64.0, yo / 64.0
                last = line
                # Text._get_layout of one line: its box spans x 0..w, y -h'..0 about its baseline
                h_, d_ = max(h, lp_h), max(d, lp_d)
                top = -(h_ - d_)
                ymin = top - d_
                offsetx = {"center": (0.0 + w) / 2, "right": w}.get(halign, 0.0)
                offsety = {"center": (ymin + 0.0) / 2, "top": 0.0, "baseline": ymin + d_,
                           "center_baseline": ymin + (0.0 - ymin) - (h_ - d_) / 2.0}.get(valign, ymin)
                dx, dy = 0.0 - offsetx, top - offsety
            x_at = dx + posx
            y_at = canvas_h - (dy + posy) if renderer.flipy() else dy + posy
            renderer._renderer.draw_text_image(font, round(x_at + xo + 0.0), round(y_at + yo + d) + 1, 0, gc)
        gc.restore()
        return True

    def get_window_extent(self, renderer=None):
        """The union of the rows' extents (what bbox_inches="tight" needs to keep them)."""
        boxes = [self.text_at(i).get_window_extent(renderer) for i in range(len(self.rows))
                 if self.rows[i][1]]
        return Bbox.union(boxes) if boxes else Bbox([[0, 0], [0, 0]])
