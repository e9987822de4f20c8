"""Image files in and out: sample grids and strips (openai graphics.py:save_raster) and animated GIFs;
finding and loading image files (centre crop and resize of openai generate_tfr/lsun.py) live in
data_loaders.image_files, the data layer's, and are re-exported here.

Everything here is NumPy + Pillow on uint8 [N, H, W, C] arrays (C = 1 or 3); writes are atomic
(a temporary file in the same folder, then `os.replace`), so an interrupted run never leaves a
half-written image under the final name.
"""
import math
import os

import numpy as np
from PIL import Image

from data_loaders.image_files import (IMAGE_EXTENSIONS, centre_crop_resize, find_images, is_image, list_images,
                                      load_image, load_images)
from glow_tf.io import atomic_path

__all__ = ["grid", "default_columns", "strip", "save_png", "save_grid", "save_images", "save_gif",
           "IMAGE_EXTENSIONS", "is_image", "list_images", "find_images", "centre_crop_resize", "load_image",
           "load_images"]


def _check_batch(images, what="images"):
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 (postprocessed pixels), got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(f"{what} must be a non-empty [N, H, W, C] array with C = 1 or 3, got shape {images.shape}")
    return images


def grid(images, n_cols=None):
    """Tiles uint8 images [N, H, W, C] row-major into one image [rows*H, n_cols*W, C].

    `n_cols` defaults to ceil(sqrt(N)), as openai graphics.py:to_raster. Unlike the original, whose
    `height = int(N / width)` silently drops an incomplete last row, rows = ceil(N / n_cols) and the
    empty cells are black; for a square N (the original's 100 or 16 samples) the two agree.
    """
    images = _check_batch(images)
    n, h, w, c = images.shape
    if n_cols is None:
        n_cols = default_columns(n)
    if isinstance(n_cols, bool) or not isinstance(n_cols, (int, np.integer)) or n_cols < 1:
        raise ValueError(f"n_cols={n_cols!r}; expected a positive integer")
    n_rows = -(-n // n_cols)
    padded = np.zeros((n_rows * n_cols, h, w, c), np.uint8)
    padded[:n] = images
    return padded.reshape(n_rows, n_cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(n_rows * h, n_cols * w, c)


def default_columns(n):
    """ceil(sqrt(n)), the columns of a grid of n images (openai graphics.py:to_raster)."""
    return int(math.ceil(math.sqrt(n)))


def strip(images):
    """One row of images: `grid(images, n_cols=N)`."""
    return grid(images, n_cols=len(images))


def _pil(image):
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"an image must be uint8 [H, W, C] with C = 1 or 3, got {image.dtype} {image.shape}")
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def _atomic_save(pil_image, path, fmt, **kwargs):
    with atomic_path(path) as tmp:
        pil_image.save(tmp, format=fmt, **kwargs)


def save_png(image, path):
    """Writes one uint8 image [H, W, C] as a PNG, atomically."""
    _atomic_save(_pil(image), path, "PNG", optimize=True)


def save_grid(images, path, n_cols=None):
    """Writes `grid(images, n_cols)` as a PNG, atomically (openai graphics.py:save_raster)."""
    save_png(grid(images, n_cols), path)


def save_images(images, folder, prefix="image", start=0):
    """Writes each image as `folder/{prefix}_{index:05d}.png` (index from `start`); returns the paths."""
    images = _check_batch(images)
    paths = [os.path.join(folder, f"{prefix}_{start + i:05d}.png") for i in range(len(images))]
    for image, path in zip(images, paths):
        save_png(image, path)
    return paths


def save_gif(frames, path, duration_ms=100, loop=0, bounce=False):
    """Writes uint8 frames [N, H, W, C] as an animated GIF, atomically.

    `duration_ms` per frame; `loop=0` repeats forever; `bounce=True` plays forwards then backwards
    (the demo's videos.py loops its interpolations this way). GIF colours are quantised to a
    256-colour palette, so use the PNG outputs for exact pixels.
    """
    frames = _check_batch(frames, "frames")
    if bounce and len(frames) > 2:
        frames = np.concatenate([frames, frames[-2:0:-1]])
    pil = [_pil(f) for f in frames]
    _atomic_save(pil[0], path, "GIF", save_all=True, append_images=pil[1:], duration=int(duration_ms),
                 loop=int(loop), disposal=1)
