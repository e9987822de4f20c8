"""The original's data augmentation: Keras 2.2 ImageDataGenerator.random_transform, restated.

openai/glow data_loaders/get_mnist_cifar.py builds `ImageDataGenerator(width_shift_range=0.1,
height_shift_range=0.1)` for dal=1 (mnist, cifar10) and adds `horizontal_flip=True,
rotation_range=15, zoom_range=0.1, shear_range=0.02` for dal=2 (cifar10). Keras 2.2 /
keras_preprocessing 1.0 draws per image, in this order:

  theta = deg2rad(U(-rotation, rotation)), tx = U(-0.1, 0.1) * H, ty = U(-0.1, 0.1) * W,
  shear = deg2rad(U(-shear, shear)), (zx, zy) = U(1 - zoom, 1 + zoom, 2), flip = U(0, 1) < 0.5,

composes M = R(theta) @ T(tx, ty) @ Shear(shear) @ Zoom(zx, zy), centres it on
o = (H/2 + 0.5, W/2 + 0.5) (Keras' transform_matrix_offset_center; the +0.5 rather than -0.5
is Keras' and is kept), and resamples each channel with
scipy.ndimage.affine_transform(order=1, mode='nearest'): output[p] = bilinear(input, M p + off),
edges filled with the nearest pixel. The horizontal flip comes after the resampling. The output
is float32, continuous-valued; the loaders floor it to uint8 after the box-average downsampling.

Random numbers come from a numpy Generator passed in (Keras used the global numpy state, which
cannot be reproduced or skipped ahead).
"""
import dataclasses

import numpy as np
from scipy import ndimage


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """ImageDataGenerator's geometric arguments (ranges as Keras: shifts as fractions of the
    size, rotation and shear in degrees, zoom z meaning [1 - z, 1 + z])."""
    width_shift_range: float = 0.0
    height_shift_range: float = 0.0
    rotation_range: float = 0.0
    shear_range: float = 0.0
    zoom_range: float = 0.0
    horizontal_flip: bool = False


SHIFTS = Augmentation(width_shift_range=0.1, height_shift_range=0.1)
EXTRA = Augmentation(width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True,
                     rotation_range=15, zoom_range=0.1, shear_range=0.02)


def augmentation_for(problem, dal):
    """The Augmentation for a problem at level dal (None for no augmentation).

    As get_mnist_cifar.py: dal=0 none; dal=1 shifts; dal=2 shifts + flip, rotation, zoom, shear
    for cifar10, but plain shifts for mnist (the original's mnist branch ignores the level).
    This port applies the same rule to its own in-memory problems: folder follows cifar10,
    digits follows mnist (a flipped digit is another digit).
    """
    if dal == 0:
        return None
    if dal == 2 and problem in ("cifar10", "folder"):
        return EXTRA
    return SHIFTS


def sample_params(rng, n, height, width, aug):
    """Per-image random parameters, drawn in Keras' order; returns a dict of [n] arrays."""
    p = {k: np.zeros(n) for k in ("theta", "tx", "ty", "shear")}
    p["zx"], p["zy"], p["flip"] = np.ones(n), np.ones(n), np.zeros(n, bool)
    for i in range(n):
        if aug.rotation_range:
            p["theta"][i] = np.deg2rad(rng.uniform(-aug.rotation_range, aug.rotation_range))
        if aug.height_shift_range:
            p["tx"][i] = rng.uniform(-aug.height_shift_range, aug.height_shift_range) * height
        if aug.width_shift_range:
            p["ty"][i] = rng.uniform(-aug.width_shift_range, aug.width_shift_range) * width
        if aug.shear_range:
            p["shear"][i] = np.deg2rad(rng.uniform(-aug.shear_range, aug.shear_range))
        if aug.zoom_range:
            p["zx"][i], p["zy"][i] = rng.uniform(1 - aug.zoom_range, 1 + aug.zoom_range, 2)
        if aug.horizontal_flip:
            p["flip"][i] = rng.random() < 0.5
    return p


def transform_matrix(height, width, theta=0.0, tx=0.0, ty=0.0, shear=0.0, zx=1.0, zy=1.0):
    """Keras' 3x3 homogeneous map from output (row, col) to input (row, col) coordinates."""
    rotation = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0],
                         [0, 0, 1]])
    shift = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    shear_m = np.array([[1, -np.sin(shear), 0], [0, np.cos(shear), 0], [0, 0, 1]])
    zoom = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
    m = rotation @ shift @ shear_m @ zoom
    o_x, o_y = height / 2 + 0.5, width / 2 + 0.5  # keras transform_matrix_offset_center
    offset = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    reset = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    return offset @ m @ reset


def apply_transform(image, matrix):
    """Resamples one float32 [H, W, C] image: bilinear (order=1), edges 'nearest'.

    Keras resamples channel by channel; one 3-D call whose channel coordinate is the identity
    gives bit-identical values (integer channel coordinates put all the weight on one channel).
    """
    m3 = np.eye(3)
    m3[:2, :2] = matrix[:2, :2]
    offset = np.array([matrix[0, 2], matrix[1, 2], 0.0])
    return ndimage.affine_transform(image, m3, offset, order=1, mode="nearest", cval=0.0)


def augment_batch(x, rng, aug):
    """Randomly transforms a batch [N, H, W, C] (any dtype) to float32, as Keras' flow() did."""
    x = x.astype(np.float32)
    n, height, width = x.shape[:3]
    p = sample_params(rng, n, height, width, aug)
    out = np.empty_like(x)
    for i in range(n):
        m = transform_matrix(height, width, p["theta"][i], p["tx"][i], p["ty"][i], p["shear"][i],
                             p["zx"][i], p["zy"][i])
        out[i] = apply_transform(x[i], m)
        if p["flip"][i]:
            out[i] = out[i, :, ::-1]
    return out
