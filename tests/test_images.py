"""Tests for glow_tf.images: grids as openai graphics.py:to_raster, atomic PNG/GIF writes, image loading."""
import os

import numpy as np
import pytest
from PIL import Image

from glow_tf import images as img


def _tiles(n, h=2, w=3, c=3):
    """n images, image k filled with the value 10 * (k + 1) (so every tile is recognisable)."""
    return np.stack([np.full((h, w, c), 10 * (k + 1), np.uint8) for k in range(n)])


def _original_to_raster(x, width=None):
    """openai graphics.py:to_raster's loop, restated: height = int(n / width), tile (i, j) = x[width*i + j]."""
    n, th, tw, _ = x.shape
    width = width or int(np.ceil(np.sqrt(n)))
    height = int(n / width)
    out = np.zeros((height * th, width * tw, 3), np.uint8)
    for i in range(height):
        for j in range(width):
            out[i * th:(i + 1) * th, j * tw:(j + 1) * tw] = x[width * i + j]
    return out


@pytest.mark.parametrize("n", [1, 4, 9, 16])
def test_grid_equals_the_originals_raster_for_square_counts(n):
    x = np.random.default_rng(n).integers(0, 256, (n, 3, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(img.grid(x), _original_to_raster(x))


def test_grid_is_row_major_and_pads_the_last_row_with_black():
    g = img.grid(_tiles(5))  # ceil(sqrt(5)) = 3 columns, 2 rows; the original would drop images 4 and 5
    assert g.shape == (4, 9, 3)
    expected_tile_values = [[10, 20, 30], [40, 50, 0]]
    for i in range(2):
        for j in range(3):
            assert (g[2 * i:2 * i + 2, 3 * j:3 * j + 3] == expected_tile_values[i][j]).all()


def test_grid_n_cols_and_strip():
    x = _tiles(4)
    np.testing.assert_array_equal(img.grid(x, n_cols=4), img.strip(x))
    assert img.strip(x).shape == (2, 12, 3)
    assert img.grid(x, n_cols=1).shape == (8, 3, 3)
    assert img.grid(_tiles(3, c=1)).shape == (4, 6, 1)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 4, 4, 3), np.float32), "uint8"),
    (np.zeros((4, 4, 3), np.uint8), r"\[N, H, W, C\]"),
    (np.zeros((2, 4, 4, 2), np.uint8), "C = 1 or 3"),
    (np.zeros((0, 4, 4, 3), np.uint8), "non-empty"),
])
def test_grid_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        img.grid(bad)


def test_grid_rejects_bad_n_cols():
    with pytest.raises(ValueError, match="n_cols=0"):
        img.grid(_tiles(2), n_cols=0)


def test_save_grid_writes_the_grid_exactly_and_leaves_no_temporary_file(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (7, 4, 4, 3), dtype=np.uint8)
    path = tmp_path / "sub" / "grid.png"
    img.save_grid(x, path, n_cols=4)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), img.grid(x, 4))
    img.save_grid(x[:1], path)  # overwrite in place
    np.testing.assert_array_equal(np.asarray(Image.open(path)), x[0])
    assert os.listdir(tmp_path / "sub") == ["grid.png"]


def test_save_grid_grey(tmp_path):
    x = _tiles(2, c=1)
    img.save_grid(x, tmp_path / "g.png")
    with Image.open(tmp_path / "g.png") as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), img.grid(x)[..., 0])


def test_save_images_names_and_contents(tmp_path):
    x = _tiles(3)
    paths = img.save_images(x, tmp_path, prefix="s", start=5)
    assert [os.path.basename(p) for p in paths] == ["s_00005.png", "s_00006.png", "s_00007.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(paths[2])), x[2])


def test_save_gif_frames_and_bounce(tmp_path):
    frames = np.stack([np.full((4, 4, 3), v, np.uint8) for v in (0, 255)] + [np.full((4, 4, 3), [255, 0, 0], np.uint8)])
    img.save_gif(frames, tmp_path / "a.gif", duration_ms=50)
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == 3
        got = []
        for k in range(im.n_frames):
            im.seek(k)
            got.append(np.asarray(im.convert("RGB")))
    np.testing.assert_array_equal(np.stack(got), frames)  # three exact palette colours
    img.save_gif(frames, tmp_path / "b.gif", bounce=True)  # 0, 1, 2, then 1
    with Image.open(tmp_path / "b.gif") as im:
        assert im.n_frames == 4
        im.seek(3)
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), frames[1])
    assert sorted(os.listdir(tmp_path)) == ["a.gif", "b.gif"]


def _write(path, array, mode=None):
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return str(path)


def test_load_images_from_a_folder_sorted_and_converted_to_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    rgba = np.dstack([rgb, np.full((8, 8), 7, np.uint8)])
    _write(tmp_path / "b_grey.png", grey)
    _write(tmp_path / "a_rgb.png", rgb)
    _write(tmp_path / "c_rgba.png", rgba)
    (tmp_path / "notes.txt").write_text("not an image")
    x = img.load_images(tmp_path, 8)
    assert x.shape == (3, 8, 8, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[0], rgb)
    np.testing.assert_array_equal(x[1], np.repeat(grey[..., None], 3, axis=2))
    np.testing.assert_array_equal(x[2], rgb)  # alpha dropped
    assert img.load_images(tmp_path / "b_grey.png", 8, channels=1).shape == (1, 8, 8, 1)
    # an explicit list keeps its order
    y = img.load_images([tmp_path / "c_rgba.png", tmp_path / "a_rgb.png"], 8)
    np.testing.assert_array_equal(y, x[[2, 0]])


def test_load_images_refuses_a_wrong_size_unless_asked_to_resize(tmp_path):
    wide = np.zeros((8, 16, 3), np.uint8)
    wide[:, 4:12] = 200  # the centre 8x8 square
    path = _write(tmp_path / "wide.png", wide)
    with pytest.raises(ValueError, match=r"wide.png.* is 16x8 .*expects 8x8.*--resize"):
        img.load_images(path, 8)
    x = img.load_images(path, 8, resize=True)  # centre crop, no resampling needed
    assert (x == 200).all()
    assert img.load_images(path, 4, resize=True).shape == (1, 4, 4, 3)


def test_list_images_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        img.list_images(tmp_path / "missing.png")
    with pytest.raises(FileNotFoundError, match="no image files"):
        img.list_images(tmp_path)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        img.load_images(tmp_path, 8)
