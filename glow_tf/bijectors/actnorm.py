"""Activation normalisation (Glow paper, sec. 3.1); ports openai tfops.actnorm."""
import tensorflow as tf

from glow_tf.bijectors.base import FlowBijector, ddi_active, reduce_statistics


class ActNorm(FlowBijector):
    """Per-channel affine map with data-dependent initialisation.

    Encode (the original's reverse=False): `z = (x + b) * exp(logs)`, with `logs = 3 * logs_var`;
    decode: `x = z * exp(-logs) - b`. Log-det of encode: `h * w * sum(logs)`.

    Variables keep the original's names and shapes: `b` is `actnorm_center/b` and `logs_var` is
    `actnorm_scale/logs` ([1, 1, 1, C]), stored divided by `logscale_factor` (3), which changes the
    step Adamax takes on it. `initialized` is a checkpointed flag: once set (by `initialize`, by a
    data-dependent-init pass, or by restoring a checkpoint), the init is never redone.
    """

    def __init__(self, num_channels, logscale_factor=3.0, name="actnorm"):
        with tf.name_scope(name):
            self.b = tf.Variable(tf.zeros([1, 1, 1, num_channels]), name="b")
            self.logs_var = tf.Variable(tf.zeros([1, 1, 1, num_channels]), name="logs")
            self.initialized = tf.Variable(False, trainable=False, name="initialized")
        self.num_channels = num_channels
        self.logscale_factor = logscale_factor
        super().__init__(name=name)

    @property
    def logs(self):
        return self.logs_var * self.logscale_factor

    def initialize(self, x, scale=1.0):
        """b = -mean(x), logs = log(scale / (std(x + b) + 1e-6)): tfops.actnorm_center/_scale, init=True.

        Means and the (biased) std are over batch, height and width; 1e-6 is added to the std. Both
        means go through the active `statistics_reducer` (by default none), so that under Horovod they
        can be averaged over workers: for equal batches, the init on all workers' batches together.
        """
        mean = reduce_statistics([tf.reduce_mean(x, axis=[0, 1, 2], keepdims=True)])[0]
        var = reduce_statistics([tf.reduce_mean(tf.square(x - mean), axis=[0, 1, 2], keepdims=True)])[0]
        self.b.assign(-mean)
        self.logs_var.assign(tf.math.log(scale / (tf.sqrt(var) + 1e-6)) / self.logscale_factor)
        self.initialized.assign(True)

    def _log_det(self, x):
        h, w = x.shape[1], x.shape[2]
        return tf.reduce_sum(self.logs) * float(h * w)

    def encode(self, x):
        if ddi_active() and not bool(self.initialized):
            self.initialize(x)
        return (x + self.b) * tf.exp(self.logs), self._log_det(x)

    def decode(self, z):
        return z * tf.exp(-self.logs) - self.b, -self._log_det(z)
