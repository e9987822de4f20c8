"""scikit-learn's bundled 8x8 handwritten digits (1797 images, no download), offline problems for the CPU.
Not in openai/glow. Two preparations of the same images, labels and split:

`digits` (unchanged since the first release): pixels are 0..16 counts; they become uint8 by
x = (v * 255 + 8) // 16, i.e. v * 255/16 rounded half up (0 -> 0, 1 -> 16, 8 -> 128, 16 -> 255). Sizes
above 8 are made by pixel replication (each pixel becomes an (s/8)x(s/8) block, so 16 and 32 show the same
digits).

`digits_4bit` (the CPU quick start): made for `--n_bits_x 4`. The counts are first enlarged to the asked
size by bilinear interpolation (pixel centres aligned, edges clamped; size 8 is left as is), then put on 16
evenly spaced levels, level = round(v * 15 / 16) in 0..15, stored as x = 17 * level (0, 17, ..., 255).
So the model's 4-bit floor, floor(x / 16), gives back exactly `level`, every one of the 16 bins is used
(at 8 bits the 17 counts would fill 17 of 256 bins and a model spends its capacity on those spikes), and
16x16 images hold smooth strokes rather than 2x2 blocks.

Both: the grey channel is tiled to RGB; a fixed permutation (numpy default_rng(0), independent of --seed)
puts N_TEST = 300 images in the test set and 1497 in the train set; sizes below 8 are box averages, as for
the other in-memory problems.
"""
import numpy as np

N_TEST = 300
LEVELS_4BIT = 16


def _sklearn_digits():
    """(counts float64 [1797, 8, 8] in 0..16, labels int32 [1797])."""
    from sklearn.datasets import load_digits as sklearn_digits
    digits = sklearn_digits()
    return digits.images.astype(np.float64), digits.target.astype(np.int32)


def _split(x, y):
    """(x_train, y_train, x_test, y_test) of the fixed split, grey tiled to RGB."""
    x = np.tile(x[..., None], (1, 1, 1, 3))
    order = np.random.default_rng(0).permutation(len(x))
    test, train = order[:N_TEST], order[N_TEST:]
    return x[train], y[train], x[test], y[test]


def load_digits(image_size=8):
    """`digits`: (x_train, y_train, x_test, y_test), uint8 [N, R, R, 3] with R = max(8, image_size)."""
    v, y = _sklearn_digits()
    x = ((v.astype(np.int64) * 255 + 8) // 16).astype(np.uint8)
    if image_size > 8:
        f = image_size // 8
        x = np.repeat(np.repeat(x, f, axis=1), f, axis=2)
    return _split(x, y)


def bilinear_matrix(n_in, n_out):
    """[n_out, n_in] weights of 1-D linear interpolation with pixel centres aligned and edges clamped:
    output pixel i samples the input at (i + 0.5) * n_in / n_out - 0.5. Rows sum to 1."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    w = np.zeros((n_out, n_in))
    np.add.at(w, (np.arange(n_out), lo), 1 - frac)
    np.add.at(w, (np.arange(n_out), hi), frac)
    return w


def to_4bit(v):
    """Counts in [0, 16] -> uint8 17 * round(v * 15 / 16), so that floor(x / 16) is the 4-bit level."""
    v = np.asarray(v, np.float64)
    if v.min() < 0 or v.max() > 16:
        raise ValueError(f"digit counts must lie in [0, 16], got [{v.min()}, {v.max()}]")
    return (17 * np.round(v * (LEVELS_4BIT - 1) / 16)).astype(np.uint8)


def load_digits_4bit(image_size=8):
    """`digits_4bit`: (x_train, y_train, x_test, y_test), uint8 [N, R, R, 3] with R = max(8, image_size),
    values in {0, 17, ..., 255} (see the module docstring)."""
    v, y = _sklearn_digits()
    size = max(8, image_size)
    if size > 8:
        w = bilinear_matrix(8, size)
        v = np.einsum("ij,njk,lk->nil", w, v, w)
    return _split(to_4bit(v), y)
