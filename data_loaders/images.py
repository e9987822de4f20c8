"""The data loaders' names for glow_tf.images (the one images module): every image is converted to
RGB, centre-cropped to a square and resized (openai generate_tfr/lsun.py)."""
from glow_tf import images
from glow_tf.images import IMAGE_EXTENSIONS, find_images, is_image  # noqa: F401  (re-exported)


def centre_crop_resize(image, size):
    """PIL image -> uint8 [size, size, 3]: RGB, then `glow_tf.images.centre_crop_resize`."""
    return images.centre_crop_resize(image.convert("RGB"), size)


def load_image(path, size):
    return images.load_image(path, size, resize=True)


def load_images(paths, size, threads=8):
    """uint8 [len(paths), size, size, 3], decoded in a thread pool."""
    return images.load_images(paths, size, resize=True, threads=threads)
