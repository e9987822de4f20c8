"""Split with the learned conditional prior; ports openai model.py:split2d / split2d_prior.

The original factors out the second half z2 of the channels and scores it under
N(mean(z1), exp(logs(z1))), keeping the first half z1. Written as a bijector, the factored-out half
is standardised in place: `eps = (z2 - mean) / exp(logs)`, z1 unchanged, so the bijector keeps the
shape [h, w, C] and the model reads the original's `eps` from the second half of the channels.
Under a standard normal, `log N(eps) - sum(logs)` is the original's `pz.logp(z2)`.
"""
import tensorflow as tf

from glow_tf.bijectors.base import FlowBijector
from glow_tf.bijectors.networks import Conv2DZeros, interleaved_halves


class Split(FlowBijector):
    """Encode: `[z1, z2] -> [z1, (z2 - mean) / exp(logs)]`; decode: `[z1, eps] -> [z1, mean + exp(logs) * eps]`.

    `(mean, logs)` come from `conv2d_zeros(z1)` with C outputs read INTERLEAVED
    (`mean = h[..., 0::2]`, `logs = h[..., 1::2]`): the original's `pool{i}/conv`. Log-det of
    encode: `-sum(logs)`. Zero-initialised, so the prior starts as N(0, I).
    """

    def __init__(self, num_channels, name="split"):
        if num_channels % 2:
            raise ValueError(f"Split needs an even channel count to halve, got num_channels={num_channels}")
        self.conv = Conv2DZeros(num_channels // 2, num_channels, name="conv")
        self.num_channels = num_channels
        super().__init__(name=name)

    def prior(self, z1):
        """(mean, logs) of the factored-out half given the kept half: split2d_prior."""
        return interleaved_halves(self.conv(z1))

    def standardise(self, z1, z2):
        """(eps, log-det): the original's `pz.get_eps(z2)` and the log-det of that map."""
        mean, logs = self.prior(z1)
        return (z2 - mean) / tf.exp(logs), -tf.reduce_sum(logs, axis=[1, 2, 3])

    def unstandardise(self, z1, eps):
        """(z2, log-det): the original's `pz.sample2(eps)`, and the log-det of that map."""
        mean, logs = self.prior(z1)
        return mean + tf.exp(logs) * eps, tf.reduce_sum(logs, axis=[1, 2, 3])

    def encode(self, x):
        z1, z2 = tf.split(x, 2, axis=-1)
        eps, log_det = self.standardise(z1, z2)
        return tf.concat([z1, eps], axis=-1), log_det

    def decode(self, z):
        z1, eps = tf.split(z, 2, axis=-1)
        z2, log_det = self.unstandardise(z1, eps)
        return tf.concat([z1, z2], axis=-1), log_det
