"""A figure saved as PNG without Pillow's search for each row's filter (issue 26).

savefig(format="png") hands the drawn RGBA buffer to Pillow, whose PNG encoder tries the PNG row
filters on every row and keeps the one that looks smallest (libpng's heuristic), with no option to
choose one: on a 1,000-study forest (984 x 29,105 px, 115 MB of RGBA) that search is ~0.3 s CPU of
its ~0.4-0.5 s encode at zlib level 1. A figure's rows are mostly runs of one colour, which deflate
compresses as well without a filter (that forest: 4.20 MB from Pillow, 3.83 MB here). save_png
draws the figure as savefig does (savefig(format="raw"): the same draw, the same pixels) and writes
the buffer with filter type 0 (None) on every row at zlib level 1, with the chunks matplotlib has
Pillow write: IHDR, tEXt Software, pHYs (the dpi), IDAT, IEND.

Example:
    >>> import matplotlib.pyplot as plt, tempfile, os
    >>> fig, ax = plt.subplots(figsize=(2, 1))
    >>> path = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> save_png(fig, path, dpi=50)
    >>> open(path, "rb").read(8) == PNG_SIGNATURE
    True
    >>> plt.close(fig)
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LEVEL = 1  # zlib's fastest level (Pillow's default is 6): on a figure, files no larger than level 6's
BLOCK = 1 << 20  # bytes of rows compressed per call: no copy of the whole image


class _Buffer:
    """What savefig(format="raw") writes to: it keeps the renderer's RGBA buffer (no copy)."""

    rgba: memoryview | None = None

    def seek(self, *args) -> int:  # matplotlib takes an object with seek and write for a file
        return 0

    def write(self, data) -> int:
        self.rgba = data
        return len(data)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(rgba: np.ndarray, dpi: float, text: dict[str, str]):
    """The PNG file of an (height, width, 4) uint8 image as a sequence of byte strings: IHDR,
    tEXt per entry of `text` (latin-1), pHYs for `dpi`, IDAT chunks, IEND."""
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
    height, width, depth = rgba.shape
    if depth != 4:
        raise ValueError(f"png_bytes: an RGBA image (height, width, 4), not {rgba.shape}")
    yield PNG_SIGNATURE
    yield _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))  # 8-bit RGBA
    for key, value in text.items():
        yield _chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
    per_metre = int(dpi / 0.0254 + 0.5)  # as Pillow rounds it
    yield _chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1))
    deflate = zlib.compressobj(LEVEL)
    rows = max(1, BLOCK // (4 * width + 1))
    lines = np.zeros((min(rows, height), 4 * width + 1), np.uint8)  # column 0: each row's filter byte, 0
    for start in range(0, height, rows):
        block = rgba[start:start + rows].reshape(-1, 4 * width)
        lines[:len(block), 1:] = block
        data = deflate.compress(lines[:len(block)])
        if data:
            yield _chunk(b"IDAT", data)
    yield _chunk(b"IDAT", deflate.flush())
    yield _chunk(b"IEND", b"")


def savefig_text() -> dict[str, str]:
    """The tEXt entries matplotlib's savefig writes into a PNG."""
    import matplotlib

    return {"Software": f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/"}


def save_png(fig, path, dpi: float = 120) -> None:
    """Save `fig` as a PNG at `dpi`: savefig's pixels and metadata, written by png_bytes (the
    forest of `evsynth fit`: the 1,000-study forest's encode ~0.5 -> ~0.15 s)."""
    drawn = _Buffer()
    fig.savefig(drawn, format="raw", dpi=dpi)
    with open(path, "wb") as out:
        for part in png_bytes(np.asarray(drawn.rgba), dpi, savefig_text()):
            out.write(part)
