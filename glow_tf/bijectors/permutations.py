"""Fixed channel permutations; port openai tfops.reverse_features and shuffle_features."""
import numpy as np
import tensorflow as tf

from glow_tf.bijectors.base import FlowBijector


class ReverseChannels(FlowBijector):
    """`z = x[..., ::-1]` (RealNVP's permutation, the original's flow_permutation 0); its own inverse."""

    def __init__(self, num_channels, name="reverse"):
        self.num_channels = num_channels
        super().__init__(name=name)

    def encode(self, x):
        return x[..., ::-1], 0.0

    def decode(self, z):
        return z[..., ::-1], 0.0


class ShuffleChannels(FlowBijector):
    """`z = x[..., indices]`, a fixed random permutation (the original's flow_permutation 1).

    The indices are non-trainable int32 variables with the original's names (`shuffle/indices`,
    `shuffle/indices_inverse`), so an original checkpoint's permutation loads. The original drew them
    from `RandomState(hash(scope name))`, which Python's hash randomisation makes irreproducible; here
    they come from the model's seeded generator.
    """

    def __init__(self, num_channels, rng, name="shuffle"):
        indices = rng.permutation(num_channels).astype("int32")
        with tf.name_scope(name):
            self.indices = tf.Variable(indices, trainable=False, name="indices")
            self.indices_inverse = tf.Variable(np.argsort(indices).astype("int32"), trainable=False,
                                               name="indices_inverse")
        self.num_channels = num_channels
        super().__init__(name=name)

    def encode(self, x):
        return tf.gather(x, self.indices, axis=-1), 0.0

    def decode(self, z):
        return tf.gather(z, self.indices_inverse, axis=-1), 0.0
