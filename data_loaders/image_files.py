"""Finding and reading image files: the folder problem's and the TFRecord writer's input, and the
latent tools' (glow_tf.images re-exports these names). Centre crop and Lanczos resize as openai
generate_tfr/lsun.py. NumPy + Pillow only; images come back as uint8 [N, H, W, C] (C = 1 or 3).
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")


def is_image(name):
    """Whether a file name is a visible image file (by its extension)."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def list_images(paths_or_folder):
    """Image file paths from a folder (its image files, sorted by name, not recursive), a single
    file, or a list of files and folders (in the given order). Raises FileNotFoundError naming the
    missing path, or a folder holding no images."""
    items = [paths_or_folder] if isinstance(paths_or_folder, (str, os.PathLike)) else list(paths_or_folder)
    if not items:
        raise ValueError("no image paths given")
    found = []
    for item in map(os.fspath, items):
        if os.path.isdir(item):
            names = sorted(n for n in os.listdir(item) if is_image(n) and os.path.isfile(os.path.join(item, n)))
            if not names:
                raise FileNotFoundError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {item!r}")
            found.extend(os.path.join(item, n) for n in names)
        elif os.path.isfile(item):
            found.append(item)
        else:
            raise FileNotFoundError(f"no such image file or folder: {item!r}")
    return found


def _images_under(folder):
    found = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(os.path.join(root, f) for f in sorted(files) if is_image(f))
    return found


def find_images(folder):
    """(paths, labels, class_names) of the images under `folder`.

    With class sub-folders (immediate sub-folders holding images, at any depth below them) the
    label is the sub-folder's index in sorted name order; without sub-folders every label is 0
    and class_names is []. Images directly in `folder` next to class sub-folders are an error,
    as their label would be ambiguous.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder {folder!r} does not exist")
    entries = sorted(os.listdir(folder))
    loose = [os.path.join(folder, e) for e in entries if is_image(e) and os.path.isfile(os.path.join(folder, e))]
    classes = [e for e in entries if not e.startswith(".") and os.path.isdir(os.path.join(folder, e))]
    per_class = [(c, imgs) for c, imgs in ((c, _images_under(os.path.join(folder, c))) for c in classes) if imgs]
    if per_class and loose:
        raise ValueError(f"{folder!r} holds both images ({os.path.basename(loose[0])!r}, ...) and "
                         f"class sub-folders ({per_class[0][0]!r}, ...); put every image in a "
                         f"class sub-folder, or remove the sub-folders")
    if loose:
        return loose, np.zeros(len(loose), np.int32), []
    if not per_class:
        raise FileNotFoundError(f"no images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) found under {folder!r}")
    paths = [p for _, imgs in per_class for p in imgs]
    labels = np.concatenate([np.full(len(imgs), i, np.int32) for i, (_, imgs) in enumerate(per_class)])
    return paths, labels, [c for c, _ in per_class]


def centre_crop_resize(pil, size):
    """PIL image -> uint8 array [size, size(, C)]: the centre square crop of side min(H, W), then a
    Lanczos (antialiased) resize to size x size (openai generate_tfr/lsun.py)."""
    w, h = pil.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    pil = pil.crop((left, top, left + side, top + side))
    if side != size:
        pil = pil.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(pil, dtype=np.uint8)


def load_image(path, image_size, channels=3, resize=False):
    """One image file -> uint8 [image_size, image_size, channels].

    Grey, palette and RGBA images are converted (alpha dropped) to RGB, or to grey when
    `channels=1`. An image of another size is an error unless `resize=True`, which takes
    `centre_crop_resize` (as the data loaders do).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels={channels!r}; expected 1 or 3")
    try:
        with Image.open(path) as pil:
            pil.load()
            pil = pil.convert("L" if channels == 1 else "RGB")
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"cannot read image {path!r}: {e}") from None
    if pil.size != (image_size, image_size) and not resize:
        raise ValueError(f"image {path!r} is {pil.size[0]}x{pil.size[1]} (WxH); the model expects "
                         f"{image_size}x{image_size}. Resize it, or ask for a centre crop + resize "
                         f"(resize=True, --resize on the command line)")
    x = centre_crop_resize(pil, image_size)
    return x[..., None] if x.ndim == 2 else x


def load_images(paths_or_folder, image_size, channels=3, resize=False, threads=8):
    """uint8 [N, image_size, image_size, channels] from files or folders (see `list_images` and
    `load_image`), in `list_images`' order; decoded in a thread pool (PIL releases the GIL)."""
    paths = list_images(paths_or_folder)
    out = np.empty((len(paths), image_size, image_size, channels), np.uint8)
    with ThreadPoolExecutor(threads) as pool:
        for i, x in enumerate(pool.map(lambda p: load_image(p, image_size, channels, resize), paths)):
            out[i] = x
    return out
