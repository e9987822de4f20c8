"""Invertible 1x1 convolution (Glow paper, sec. 3.2); ports openai model.py:invertible_1x1_conv."""
import numpy as np
import scipy.linalg
import tensorflow as tf

from glow_tf.bijectors import networks
from glow_tf.bijectors.base import FlowBijector


def _random_orthogonal(rng, c):
    """The original's init: Q of the QR decomposition of a standard normal matrix (det = +-1)."""
    return np.linalg.qr(rng.standard_normal((c, c)))[0].astype("float32")


def _channel_matmul(x, w):
    """A 1x1 convolution with kernel w [C_in, C_out]: out[..., j] = sum_i x[..., i] w[i, j]; as
    tf.nn.conv2d (the original's) or as a matmul, whichever `networks.conv_form` picks."""
    return networks.conv(x, tf.reshape(w, [1, 1, w.shape[0], w.shape[1]]))


class InvertibleConv1x1(FlowBijector):
    """Channel mixing by a learned matrix W [C, C] (the original's default, non-LU version).

    Encode: `z = x @ W` per pixel; decode: `x = z @ W^-1`. Log-det of encode: `h * w * log|det W|`.
    As in the original, `log|det W|` is taken in float64 (here via QR); the inverse is also
    computed in float64, where the original inverts in float32 (same value to float32 round-off).
    The variable is the original's `invconv/W`.
    """

    def __init__(self, num_channels, rng, name="invconv"):
        with tf.name_scope(name):
            self.W = tf.Variable(_random_orthogonal(rng, num_channels), name="W")
        self.num_channels = num_channels
        super().__init__(name=name)

    def _log_det(self, x):
        # log|det W| in float64, as the original; as sum(log|R_ii|) of W = QR because XLA has no
        # kernel for determinants (slogdet would make --jit 1 fail) and QR is as exact in float64.
        r = tf.linalg.qr(tf.cast(self.W, tf.float64))[1]
        log_abs_det = tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(r))))
        return tf.cast(log_abs_det, tf.float32) * float(x.shape[1] * x.shape[2])

    def encode(self, x):
        return _channel_matmul(x, self.W), self._log_det(x)

    def decode(self, z):
        w_inv = tf.cast(tf.linalg.inv(tf.cast(self.W, tf.float64)), tf.float32)
        return _channel_matmul(z, w_inv), -self._log_det(z)


class InvertibleConv1x1LU(FlowBijector):
    """The LU-decomposed 1x1 convolution: `W = P L (U + diag(sign_s * exp(log_s)))`.

    The original's switched-off branch (`if True:  # Set to "False" to use the LU-decomposed
    version`), with its variables `P`, `L`, `U`, `sign_S`, `log_S`: P and sign_S are frozen, L and U
    are stored full but only their strictly lower/upper parts are used. W and its inverse
    `U^-1 L^-1 P^-1` are assembled in float64. Log-det of encode: `h * w * sum(log_s)`.
    """

    def __init__(self, num_channels, rng, name="invconv"):
        w = _random_orthogonal(rng, num_channels)
        p, l, u = scipy.linalg.lu(w)
        s = np.diag(u)
        with tf.name_scope(name):
            self.P = tf.Variable(p.astype("float32"), trainable=False, name="P")
            self.L = tf.Variable(l.astype("float32"), name="L")
            self.U = tf.Variable(np.triu(u, k=1).astype("float32"), name="U")
            self.sign_S = tf.Variable(np.sign(s).astype("float32"), trainable=False, name="sign_S")
            self.log_S = tf.Variable(np.log(np.abs(s)).astype("float32"), name="log_S")
        self.num_channels = num_channels
        super().__init__(name=name)

    def _factors(self):
        c = self.num_channels
        lower = np.tril(np.ones([c, c]), -1)
        f64 = lambda v: tf.cast(v, tf.float64)  # noqa: E731
        l = f64(self.L) * lower + tf.eye(c, dtype=tf.float64)
        u = f64(self.U) * lower.T + tf.linalg.diag(f64(self.sign_S) * tf.exp(f64(self.log_S)))
        return f64(self.P), l, u

    def _log_det(self, x):
        return tf.reduce_sum(self.log_S) * float(x.shape[1] * x.shape[2])

    def encode(self, x):
        p, l, u = self._factors()
        w = tf.cast(p @ (l @ u), tf.float32)
        return _channel_matmul(x, w), self._log_det(x)

    def decode(self, z):
        p, l, u = self._factors()
        w_inv = tf.linalg.inv(u) @ (tf.linalg.inv(l) @ tf.linalg.inv(p))
        return _channel_matmul(z, tf.cast(w_inv, tf.float32)), -self._log_det(z)
