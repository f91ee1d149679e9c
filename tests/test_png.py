"""present.png: the forest's PNG written without Pillow's filter search (issue 26). Pillow reads
the files back: the same pixels as the image given (and as a PNG savefig of the figure), its
checksums valid, the metadata savefig writes (Software, dpi)."""

import io

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from evsynth.present import png


def _read(data: bytes) -> Image.Image:
    Image.open(io.BytesIO(data)).verify()  # chunk CRCs and structure
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (700, 600)])  # 700 x 600: two blocks of rows
def test_the_file_holds_the_image_s_pixels(shape):
    rgba = np.random.default_rng(sum(shape)).integers(0, 256, shape + (4,), dtype=np.uint8)
    image = _read(b"".join(png.png_bytes(rgba, 120, {"Software": "test"})))
    assert image.format == "PNG" and image.mode == "RGBA" and image.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(image), rgba)
    assert image.info["Software"] == "test" and image.info["dpi"] == pytest.approx((120, 120), abs=0.02)


def test_a_changed_pixel_is_read_back_changed():
    """The other side: the comparison above can fail."""
    rgba = np.zeros((4, 4, 4), np.uint8)
    data = b"".join(png.png_bytes(rgba, 72, {}))
    rgba[2, 3, 1] = 7
    assert not np.array_equal(np.asarray(_read(data)), rgba)


def test_save_png_gives_savefig_s_pixels_and_metadata(tmp_path):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1, 2], [1, 0, 2], color="tab:red")
    ax.text(0.5, 0.5, "Hesti 2017  0.88 [0.32, 1.39]", family="monospace")
    ax.scatter([0.5, 1.5], [1, 1], s=40, marker="s", alpha=0.5)
    png.save_png(fig, tmp_path / "ours.png", dpi=110)
    fig.savefig(tmp_path / "savefig.png", dpi=110)
    plt.close(fig)
    ours, theirs = _read((tmp_path / "ours.png").read_bytes()), _read((tmp_path / "savefig.png").read_bytes())
    assert np.array_equal(np.asarray(ours), np.asarray(theirs)) and ours.size == (440, 330)
    assert ours.info == theirs.info and ours.info["Software"].startswith(f"Matplotlib version{matplotlib.__version__}")


def test_only_rgba_images():
    with pytest.raises(ValueError, match="RGBA"):
        list(png.png_bytes(np.zeros((2, 2, 3), np.uint8), 100, {}))
