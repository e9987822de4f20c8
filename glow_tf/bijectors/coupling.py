"""Additive and affine coupling (Glow paper, sec. 3.3); ports openai model.py:revnet2d_step.

As in the original's code (not the paper's table), the FIRST half of the channels conditions the
second half, and the first half passes through unchanged.
"""
import tensorflow as tf

from glow_tf.bijectors.base import FlowBijector
from glow_tf.bijectors.networks import CouplingNetwork, interleaved_halves


def _check_even(num_channels, what):
    if num_channels % 2:
        raise ValueError(f"{what} needs an even channel count to halve, got num_channels={num_channels}")


class AdditiveCoupling(FlowBijector):
    """Encode: `z2 = x2 + f(x1)`; decode: `x2 = z2 - f(z1)`; log-det 0 (flow_coupling 0).

    f has C/2 outputs; its variables are the original's `f1/...`.
    """

    def __init__(self, num_channels, width, rng, name="additive_coupling"):
        _check_even(num_channels, "AdditiveCoupling")
        self.f1 = CouplingNetwork(num_channels // 2, width, num_channels // 2, rng, name="f1")
        self.num_channels = num_channels
        super().__init__(name=name)

    def encode(self, x):
        x1, x2 = tf.split(x, 2, axis=-1)
        return tf.concat([x1, x2 + self.f1(x1)], axis=-1), 0.0

    def decode(self, z):
        z1, z2 = tf.split(z, 2, axis=-1)
        return tf.concat([z1, z2 - self.f1(z1)], axis=-1), 0.0


class AffineCoupling(FlowBijector):
    """Encode: `z2 = (x2 + shift) * scale`; decode: `x2 = z2 / scale - shift` (flow_coupling 1).

    `h = f(x1)` has C outputs, read interleaved: `shift = h[..., 0::2]`,
    `scale = sigmoid(h[..., 1::2] + 2)` (not exp; 0.8808 when f outputs zeros, so this coupling is
    not the identity at init). Log-det of encode: `sum(log(scale))`.
    """

    def __init__(self, num_channels, width, rng, name="affine_coupling"):
        _check_even(num_channels, "AffineCoupling")
        self.f1 = CouplingNetwork(num_channels // 2, width, num_channels, rng, name="f1")
        self.num_channels = num_channels
        super().__init__(name=name)

    def _shift_and_scale(self, x1):
        shift, pre_scale = interleaved_halves(self.f1(x1))
        return shift, tf.sigmoid(pre_scale + 2.0)

    def encode(self, x):
        x1, x2 = tf.split(x, 2, axis=-1)
        shift, scale = self._shift_and_scale(x1)
        z2 = (x2 + shift) * scale  # shift, then scale: the original's order
        return tf.concat([x1, z2], axis=-1), tf.reduce_sum(tf.math.log(scale), axis=[1, 2, 3])

    def decode(self, z):
        z1, z2 = tf.split(z, 2, axis=-1)
        shift, scale = self._shift_and_scale(z1)
        x2 = z2 / scale - shift
        return tf.concat([z1, x2], axis=-1), -tf.reduce_sum(tf.math.log(scale), axis=[1, 2, 3])
