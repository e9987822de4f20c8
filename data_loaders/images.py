"""Image-folder discovery and the centre-crop-and-resize used by the folder problem and the
TFRecord writer (openai generate_tfr/lsun.py: centre square crop, then PIL antialiased resize)."""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm",
                    ".pgm")


def is_image(name):
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


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
    loose = [os.path.join(folder, e) for e in entries
             if is_image(e) and os.path.isfile(os.path.join(folder, e))]
    classes = [e for e in entries if not e.startswith(".") and os.path.isdir(os.path.join(folder, e))]
    per_class = [(c, _images_under(os.path.join(folder, c))) for c in classes]
    per_class = [(c, imgs) for c, imgs in per_class if imgs]
    if per_class and loose:
        raise ValueError(f"{folder!r} holds both images ({os.path.basename(loose[0])!r}, ...) and "
                         f"class sub-folders ({per_class[0][0]!r}, ...); put every image in a "
                         f"class sub-folder, or remove the sub-folders")
    if loose:
        return loose, np.zeros(len(loose), np.int32), []
    if not per_class:
        raise FileNotFoundError(f"no images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) found "
                                f"under {folder!r}")
    paths = [p for _, imgs in per_class for p in imgs]
    labels = np.concatenate([np.full(len(imgs), i, np.int32) for i, (_, imgs) in enumerate(per_class)])
    return paths, labels, [c for c, _ in per_class]


def centre_crop_resize(image, size):
    """PIL image -> uint8 [size, size, 3]: RGB (grey, palette, RGBA... converted; alpha dropped),
    centre square crop of side min(H, W), then a Lanczos (antialiased) resize to size x size."""
    image = image.convert("RGB")
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != size:
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8)


def load_image(path, size):
    try:
        with Image.open(path) as image:
            return centre_crop_resize(image, size)
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"cannot read image {path!r}: {e}") from None


def load_images(paths, size, threads=8):
    """uint8 [len(paths), size, size, 3], decoded in a thread pool (PIL releases the GIL)."""
    out = np.empty((len(paths), size, size, 3), np.uint8)
    with ThreadPoolExecutor(threads) as pool:
        for i, image in enumerate(pool.map(lambda p: load_image(p, size), paths)):
            out[i] = image
    return out
