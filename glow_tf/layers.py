"""The non-invertible layers: openai tfops.conv2d, conv2d_zeros, linear_zeros and model.py:f.

Plain tf.Modules holding tf.Variables (no Keras layers), with the original's variable names and
shapes so that an original checkpoint maps onto them one to one.
"""
import functools

import numpy as np
import tensorflow as tf

from glow_tf.bijectors.actnorm import ActNorm


@functools.lru_cache(maxsize=None)
def _border_indicator(height, width, pad_h, pad_w):
    """[1, H + 2a, W + 2b, 1]: 1 on the zero-padded border, 0 inside (tfops.add_edge_padding)."""
    pad = np.zeros([1, height + 2 * pad_h, width + 2 * pad_w, 1], dtype="float32")
    pad[:, :pad_h, :, 0] = 1.0
    pad[:, -pad_h:, :, 0] = 1.0
    pad[:, :, :pad_w, 0] = 1.0
    pad[:, :, -pad_w:, 0] = 1.0
    return pad


def add_edge_padding(x, filter_size):
    """Zero-pads H and W by (f-1)//2 and appends a channel marking the padding ("edge bias").

    Every 3x3 convolution of the original (in f, the split priors and learntop's `p`) sees this extra
    channel, so its weights are [3, 3, C_in + 1, C_out]; plain 'SAME' padding is a different model.
    """
    a, b = (filter_size - 1) // 2, (filter_size - 1) // 2
    x = tf.pad(x, [[0, 0], [a, a], [b, b], [0, 0]])
    border = _border_indicator(x.shape[1] - 2 * a, x.shape[2] - 2 * b, a, b)
    return tf.concat([x, tf.tile(border, [tf.shape(x)[0], 1, 1, 1])], axis=3)


def _conv(x, w):
    """A convolution of the original's kind: edge-bias padding for filters > 1, then 'VALID'."""
    if w.shape[0] > 1:
        x = add_edge_padding(x, w.shape[0])
    return tf.nn.conv2d(x, w, 1, "VALID")


class Conv2D(tf.Module):
    """tfops.conv2d: conv (no bias, W ~ N(0, 0.05)) followed by actnorm without log-det."""

    def __init__(self, n_in, width, filter_size, rng, name):
        super().__init__(name=name)
        edge = 1 if filter_size > 1 else 0
        shape = [filter_size, filter_size, n_in + edge, width]
        with self.name_scope:
            self.W = tf.Variable((rng.standard_normal(shape) * 0.05).astype("float32"), name="W")
            self.actnorm = ActNorm(width, name="actnorm")

    def __call__(self, x):
        return self.actnorm.encode(_conv(x, self.W))[0]


class Conv2DZeros(tf.Module):
    """tfops.conv2d_zeros: `(conv(x, W) + b) * exp(3 * logs)`, all zero-initialised."""

    def __init__(self, n_in, width, name, filter_size=3, logscale_factor=3.0):
        super().__init__(name=name)
        edge = 1 if filter_size > 1 else 0
        with self.name_scope:
            self.W = tf.Variable(tf.zeros([filter_size, filter_size, n_in + edge, width]), name="W")
            self.b = tf.Variable(tf.zeros([1, 1, 1, width]), name="b")
            self.logs = tf.Variable(tf.zeros([1, width]), name="logs")
        self.logscale_factor = logscale_factor

    def __call__(self, x):
        return (_conv(x, self.W) + self.b) * tf.exp(self.logs * self.logscale_factor)


class LinearZeros(tf.Module):
    """tfops.linear_zeros: `(x @ W + b) * exp(3 * logs)`, all zero-initialised."""

    def __init__(self, n_in, width, name, logscale_factor=3.0):
        super().__init__(name=name)
        with self.name_scope:
            self.W = tf.Variable(tf.zeros([n_in, width]), name="W")
            self.b = tf.Variable(tf.zeros([1, width]), name="b")
            self.logs = tf.Variable(tf.zeros([1, width]), name="logs")
        self.logscale_factor = logscale_factor

    def __call__(self, x):
        return (tf.matmul(x, self.W) + self.b) * tf.exp(self.logs * self.logscale_factor)


class CouplingNetwork(tf.Module):
    """model.py:f, the coupling network: 3x3 conv -> actnorm -> ReLU -> 1x1 conv -> actnorm -> ReLU
    -> zero-initialised 3x3 conv. The original's scopes `l_1`, `l_2`, `l_last`."""

    def __init__(self, n_in, width, n_out, rng, name="f1"):
        super().__init__(name=name)
        with self.name_scope:
            self.l_1 = Conv2D(n_in, width, 3, rng, name="l_1")
            self.l_2 = Conv2D(width, width, 1, rng, name="l_2")
            self.l_last = Conv2DZeros(width, n_out, name="l_last")

    def __call__(self, x):
        h = tf.nn.relu(self.l_1(x))
        h = tf.nn.relu(self.l_2(h))
        return self.l_last(h)
