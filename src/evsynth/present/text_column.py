"""A column of a table drawn beside a plot: one matplotlib artist for many rows of text.

A forest plot of 1,000 studies had ~5,000 Text artists (label, estimate, interval kind, weight, n
per row); making them took ~1.2 s and drawing them ~1.3 s more than the same text drawn by one
artist (issue 26). TextColumn draws each row with one Text re-used at every row's position, so
the pixels are those of a Text per row (same font, alignment and layout code), and each row keeps
its gid (the SVG group of that row's text). Tests and readers get the rows from `rows`.
"""

from __future__ import annotations

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
        for i in range(len(self.rows)):
            self.text_at(i).draw(renderer)
        self.stale = False

    def get_window_extent(self, renderer=None):
        """The union of the rows' extents (what bbox_inches="tight" needs to keep them)."""
        boxes = [self.text_at(i).get_window_extent(renderer) for i in range(len(self.rows))
                 if self.rows[i][1]]
        return Bbox.union(boxes) if boxes else Bbox([[0, 0], [0, 0]])
