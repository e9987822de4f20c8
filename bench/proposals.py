"""Proposed speed changes to glow_tf, prototyped as monkeypatches so they can be measured side by
side with the current code (glow_tf/ itself is not edited by the benchmarks).

Each proposal computes the same function as the code it replaces; `profile_step.py` checks that the
original release's reference vectors (tests/fixtures/original_glow) are still met to 1e-4 with it
applied and that the loss and gradients match the current code. Apply before building the model
(or at least before the first trace): the patches act when a tf.function is traced.

- matmul_1x1: every 1x1 convolution (the invertible 1x1 conv and the coupling network's `l_2`) as
  a reshape + matmul instead of a Conv2D: the same sums, done by the GEMM kernel, whose gradients
  are two more GEMMs instead of Conv2DBackpropInput/Filter.
- edge_split: `conv(concat(pad(x), border), W)` as `conv(pad(x), W[..., :C, :]) + conv(border,
  W[..., C:, :])`, the second term a [1, h, w, C_out] map broadcast over the batch (no tile, no
  concat, C instead of C + 1 input channels).
- jit_optimizer: the optimiser update (adamax + Polyak) compiled by XLA on its own, inside the
  otherwise uncompiled step: one fused loop over each variable instead of ~10 kernels per variable.
- qr_logdet: `log|det W|` of the plain 1x1 conv from the QR decomposition in float64
  (`sum log|diag R|`) instead of `slogdet`, which XLA cannot compile: with it `--jit 1` works with
  the default (non-LU) invertible conv.
"""
PROPOSALS = ("matmul_1x1", "edge_split", "jit_optimizer", "qr_logdet")
_applied = set()


def _check(names):
    bad = [n for n in names if n not in PROPOSALS]
    if bad:
        raise ValueError(f"unknown proposal(s) {bad}; expected names from {PROPOSALS}")


def apply(names):
    """Monkeypatches glow_tf with the named proposals (idempotent)."""
    names = list(names)
    _check(names)
    import tensorflow as tf

    import glow_tf.bijectors.invertible_conv as invconv
    import glow_tf.bijectors.networks as layers
    from glow_tf.optim import Optimizer

    if "matmul_1x1" in names or "edge_split" in names:
        use_mm = "matmul_1x1" in names or "matmul_1x1" in _applied
        use_split = "edge_split" in names or "edge_split" in _applied

        def _matmul_1x1(x, w):
            c_in, c_out = w.shape[-2], w.shape[-1]
            y = tf.matmul(tf.reshape(x, [-1, c_in]), tf.reshape(w, [c_in, c_out]))
            return tf.reshape(y, tf.concat([tf.shape(x)[:3], [c_out]], axis=0))

        current_conv = layers._conv

        def _conv(x, w):
            if layers.chosen_form(x, w) == "taps":  # the tap form (already in glow_tf) stays where it applies
                return current_conv(x, w)
            if w.shape[0] == 1:
                return _matmul_1x1(x, w) if use_mm else tf.nn.conv2d(x, w, 1, "VALID")
            if not use_split:
                return tf.nn.conv2d(layers.add_edge_padding(x, w.shape[0]), w, 1, "VALID")
            a = (w.shape[0] - 1) // 2
            c = x.shape[-1]
            border = layers._border_indicator(x.shape[1], x.shape[2], a, a)
            inner = tf.nn.conv2d(tf.pad(x, [[0, 0], [a, a], [a, a], [0, 0]]), w[:, :, :c, :], 1, "VALID")
            return inner + tf.nn.conv2d(tf.constant(border), w[:, :, c:, :], 1, "VALID")

        layers._conv = _conv
        if use_mm:
            invconv._channel_matmul = _matmul_1x1

    if "jit_optimizer" in names and "jit_optimizer" not in _applied:
        current = Optimizer._update
        compiled = {}

        def _update(self, grads, lr):
            fn = compiled.get(id(self))
            if fn is None:
                fn = compiled[id(self)] = tf.function(lambda g, r: current(self, g, r), jit_compile=True)
            fn(grads, lr)

        Optimizer._update = _update

    if "qr_logdet" in names:
        def _log_det(self, x):
            r = tf.linalg.qr(tf.cast(self.W, tf.float64))[1]
            log_abs_det = tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(r))))
            return tf.cast(log_abs_det, tf.float32) * float(x.shape[1] * x.shape[2])

        invconv.InvertibleConv1x1._log_det = _log_det
    _applied.update(names)
    return sorted(_applied)


def label(names):
    return "+".join(names) if names else "current"

