"""The top-level prior; ports openai model.py:prior (learntop, ycond)."""
import tensorflow as tf

from glow_tf.bijectors.base import FlowBijector
from glow_tf.bijectors.networks import Conv2DZeros, LinearZeros


class TopPrior(FlowBijector):
    """Standardises the top latent: encode `eps = (z - mean) / exp(logs)`, decode `z = mean + exp(logs) * eps`.

    `h` starts as zeros [N, h, w, 2C]; with `learntop`, `h = conv2d_zeros('p', h)` (a conv of zeros,
    so only the edge-bias channel and the bias reach the output: the prior differs between border
    and interior positions); with `ycond`, `h += linear_zeros('y_emb', onehot(y))` broadcast over
    space. Then `mean = h[..., :C]`, `logs = h[..., C:]`: CONTIGUOUS halves, unlike the split prior.
    With neither flag the prior is N(0, I). Log-det of encode: `-sum(logs)`. The class (int labels
    [N]) is a conditioning argument named `labels`: `bijector.inverse(z, labels=y)` (TFP's
    `inverse` already names its input `y`).
    """

    def __init__(self, top_shape, learntop=False, ycond=False, n_y=1, name="prior"):
        h, w, c = top_shape
        self.top_shape = tuple(top_shape)
        self.learntop, self.ycond, self.n_y = learntop, ycond, n_y
        self.p = Conv2DZeros(2 * c, 2 * c, name="p") if learntop else None
        self.y_emb = LinearZeros(n_y, 2 * c, name="y_emb") if ycond else None
        super().__init__(name=name)

    def mean_and_logs(self, labels=None):
        """(mean, logs), each broadcastable to [N, h, w, C]."""
        h, w, c = self.top_shape
        out = tf.zeros([1, h, w, 2 * c])
        if self.p is not None:
            out = self.p(out)  # the same for every example: computed once and broadcast
        if self.y_emb is not None:
            if labels is None:
                raise ValueError("this model is class-conditional (ycond=True): pass the labels y")
            onehot = tf.one_hot(tf.cast(labels, tf.int32), self.n_y, dtype=tf.float32)
            out = out + tf.reshape(self.y_emb(onehot), [-1, 1, 1, 2 * c])
        return out[..., :c], out[..., c:]

    def _log_det(self, logs, z):
        # The sum runs over the prior's own shape; broadcast to the batch when it does not depend on y.
        return -tf.reduce_sum(logs, axis=[1, 2, 3]) * tf.ones([tf.shape(z)[0]])

    def encode(self, z, labels=None):
        mean, logs = self.mean_and_logs(labels)
        return (z - mean) / tf.exp(logs), self._log_det(logs, z)

    def decode(self, eps, labels=None):
        mean, logs = self.mean_and_logs(labels)
        return mean + tf.exp(logs) * eps, -self._log_det(logs, eps)
