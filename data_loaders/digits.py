"""scikit-learn's bundled 8x8 handwritten digits (1797 images, no download): the offline problem
of the CPU quick start. Not in openai/glow.

Pixels are 0..16 counts; they become uint8 by x = (v * 255 + 8) // 16, i.e. v * 255/16 rounded
half up (0 -> 0, 1 -> 16, 8 -> 128, 16 -> 255). The grey channel is tiled to RGB. A fixed
permutation (numpy default_rng(0), independent of --seed) puts N_TEST = 300 images in the test
set and 1497 in the train set. Sizes above 8 are made by pixel replication (each pixel becomes an
(s/8)x(s/8) block, so 16 and 32 show the same digits); sizes below 8 are box averages, as for
the other in-memory problems.
"""
import numpy as np

N_TEST = 300


def load_digits(image_size=8):
    """(x_train, y_train, x_test, y_test) uint8 [N, R, R, 3] with R = max(8, image_size)."""
    from sklearn.datasets import load_digits as sklearn_digits
    digits = sklearn_digits()
    v = digits.images.astype(np.int64)  # [1797, 8, 8], values 0..16
    x = ((v * 255 + 8) // 16).astype(np.uint8)
    if image_size > 8:
        f = image_size // 8
        x = np.repeat(np.repeat(x, f, axis=1), f, axis=2)
    x = np.tile(x[..., None], (1, 1, 1, 3))
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(0).permutation(len(x))
    test, train = order[:N_TEST], order[N_TEST:]
    return x[train], y[train], x[test], y[test]
