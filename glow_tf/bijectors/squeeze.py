"""Squeeze: space to channels by a factor of 2; ports openai tfops.squeeze2d / unsqueeze2d."""
import tensorflow as tf

from glow_tf.bijectors.base import FlowBijector


def squeeze2d(x):
    """[N, H, W, C] -> [N, H/2, W/2, 4C] with out[n, i, j, c*4 + di*2 + dj] = x[n, 2i+di, 2j+dj, c].

    Channel-major with the 2x2 offset innermost: the original's order, NOT tf.nn.space_to_depth's
    `(di*2 + dj)*C + c`; the difference decides which sub-pixels each split factors out.
    """
    _, h, w, c = x.shape
    x = tf.reshape(x, [-1, h // 2, 2, w // 2, 2, c])
    x = tf.transpose(x, [0, 1, 3, 5, 2, 4])
    return tf.reshape(x, [-1, h // 2, w // 2, c * 4])


def unsqueeze2d(z):
    """The exact inverse of squeeze2d: [N, h, w, C] -> [N, 2h, 2w, C/4]."""
    _, h, w, c = z.shape
    z = tf.reshape(z, [-1, h, w, c // 4, 2, 2])
    z = tf.transpose(z, [0, 1, 4, 2, 5, 3])
    return tf.reshape(z, [-1, h * 2, w * 2, c // 4])


class Squeeze(FlowBijector):
    """Encode = squeeze2d, decode = unsqueeze2d (so TFP's forward unsqueezes); a permutation, log-det 0."""

    def __init__(self, name="squeeze"):
        super().__init__(name=name)

    def encode(self, x):
        if x.shape[1] % 2 or x.shape[2] % 2:
            raise ValueError(f"squeeze needs even height and width, got an input of shape {x.shape}")
        return squeeze2d(x), 0.0

    def decode(self, z):
        if z.shape[-1] % 4:
            raise ValueError(f"unsqueeze needs a channel count divisible by 4, got shape {z.shape}")
        return unsqueeze2d(z), 0.0

    def _forward_event_shape(self, shape):
        return tf.TensorShape([shape[0] * 2, shape[1] * 2, shape[2] // 4])

    def _inverse_event_shape(self, shape):
        return tf.TensorShape([shape[0] // 2, shape[1] // 2, shape[2] * 4])

    def _forward_event_shape_tensor(self, shape):
        return tf.stack([shape[0] * 2, shape[1] * 2, shape[2] // 4])

    def _inverse_event_shape_tensor(self, shape):
        return tf.stack([shape[0] // 2, shape[1] // 2, shape[2] * 4])
