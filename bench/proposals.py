"""Proposed speed changes to glow_tf, prototyped as monkeypatches so they can be measured side by
side with the current code (glow_tf/ itself is not edited by the benchmarks).

Each proposal computes the same function as the code it replaces; `profile_step.py` checks that the
original release's reference vectors (tests/fixtures/original_glow) are still met to 1e-4 with it
applied and that the loss and gradients match the current code. Apply before building the model
(or at least before the first trace): the patches act when a tf.function is traced.

- matmul_1x1: every 1x1 convolution (the invertible 1x1 conv and the coupling network's `l_2`) as
  a reshape + matmul instead of a Conv2D: the same sums, done by the GEMM kernel, whose gradients
  are two more GEMMs instead of Conv2DBackpropInput/Filter. Adopted in d55b40a as a measured form
  (glow_tf now picks it per shape where it is faster); this forces it everywhere.
- edge_split: `conv(concat(pad(x), border), W)` as `conv(pad(x), W[..., :C, :]) + conv(border,
  W[..., C:, :])`, the second term a [1, h, w, C_out] map broadcast over the batch (no tile, no
  concat, C instead of C + 1 input channels).
- jit_optimizer: the optimiser update (adamax + Polyak) compiled by XLA on its own, inside the
  otherwise uncompiled step: one fused loop over each variable instead of ~10 kernels per variable.
- qr_logdet: `log|det W|` of the plain 1x1 conv from the QR decomposition in float64
  (`sum log|diag R|`) instead of `slogdet`, which XLA cannot compile: with it `--jit 1` works with
  the default (non-LU) invertible conv.

- no_update: a bound, not a change: the step without the update (only `t` advances), i.e. what a
  free update would give.

And, to time what an adopted change buys beside the code that has it, its reversal:

- conv_1x1: every 1x1 convolution as tf.nn.conv2d, the original's form (before d55b40a, where the
  automatic form started measuring 1x1 convolutions against a matmul).
- strided_halves: the interleaved reads of a network's outputs (`networks.interleaved_halves`: the
  affine coupling's shift and scale, a split prior's mean and logs) as two strided slices, whose
  gradients are two zero-filled full-size tensors and their sum (before d55b40a).
- per_variable_update: the Adamax/Adam + Polyak update one parameter at a time, its moments and
  average in three variables of its own (about 20 small kernels a parameter), as before the optimiser
  kept its state flat, in groups updated by one set of kernels each (`glow_tf.optim`, BUCKET_BYTES).
"""

PROPOSALS = ("matmul_1x1", "edge_split", "jit_optimizer", "qr_logdet", "no_update", "conv_1x1",
             "strided_halves", "per_variable_update")
_applied = set()
_own_ema = {}  # id(optimizer) -> per_variable_update's Polyak averages


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

        current_conv = layers.conv

        def conv(x, w):
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

        layers.conv = conv
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

    if "per_variable_update" in names and "per_variable_update" not in _applied:
        from glow_tf.optim import EPSILON
        own = {}

        def _per_variable_update(self, grads, lr):
            state = own.get(id(self))
            if state is None:
                with tf.init_scope():  # created once, from the flat state's values, outside any trace
                    state = own[id(self)] = {name: [tf.Variable(v.read_value(), trainable=False) for v in views]
                                             for name, views in (("m1", self.m1), ("m2", self.m2), ("ema", self.ema))}
                    _own_ema[id(self)] = state["ema"]
            beta1, beta2 = self.beta1, self.beta2
            t = self.t.read_value()
            alpha_t = lr * tf.sqrt(1.0 - tf.pow(beta2, t)) / (1.0 - tf.pow(beta1, t))
            for i, (w, g) in enumerate(zip(self.params, grads)):
                if beta1 > 0:
                    m1_new = beta1 * state["m1"][i] + (1.0 - beta1) * g
                    state["m1"][i].assign(m1_new, read_value=False)
                else:
                    m1_new = g
                if self.kind == "adamax":
                    m2_new = tf.maximum(beta2 * state["m2"][i], tf.abs(g))
                    delta = m1_new / (m2_new + EPSILON)
                else:
                    m2_new = beta2 * state["m2"][i] + (1.0 - beta2) * tf.square(g)
                    delta = m1_new / (tf.sqrt(m2_new) + EPSILON)
                state["m2"][i].assign(m2_new, read_value=False)
                w_new = (w if self.weight_decay == 1.0 else self.weight_decay * w) - alpha_t * delta
                w.assign(w_new, read_value=False)
                if self.polyak:
                    state["ema"][i].assign_sub((state["ema"][i] - w_new) * self._ema_rate, read_value=False)
            self.t.assign_add(1.0, read_value=False)

        Optimizer._update = _per_variable_update

    if "no_update" in names and "no_update" not in _applied:
        def _no_update(self, grads, lr):
            self.t.assign_add(1.0, read_value=False)

        Optimizer._update = _no_update

    if "conv_1x1" in names and "conv_1x1" not in _applied:
        measured_conv = layers.conv  # every layer looks networks.conv up when it is traced
        layers.conv = lambda x, w: layers.edge_conv2d(x, w) if w.shape[0] == 1 else measured_conv(x, w)

    if "strided_halves" in names:
        import glow_tf.bijectors.coupling as coupling
        import glow_tf.bijectors.split as split

        def strided(h):
            return h[..., 0::2], h[..., 1::2]

        coupling.interleaved_halves = split.interleaved_halves = strided
    _applied.update(names)
    return sorted(_applied)


def averages(optimizer):
    """The optimiser's Polyak averages, one array per parameter, wherever the applied proposals keep
    them (per_variable_update keeps them in variables of its own)."""
    return [v.numpy() for v in _own_ema.get(id(optimizer), optimizer.ema)]


def label(names):
    return "+".join(names) if names else "current"

