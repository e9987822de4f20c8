"""The networks beside the bijectors: openai tfops.conv2d, conv2d_zeros, linear_zeros and model.py:f
(the coupling network), used by the couplings, the split and top priors and the classifier head.

They depend only on ActNorm and the data-dependent-init switch, never on the bijectors that use
them, so the package's modules import in one direction. Plain tf.Modules holding tf.Variables (no Keras layers), with the original's variable names and
shapes so that an original checkpoint maps onto them one to one.
"""
import contextlib
import functools
import os

import numpy as np
import tensorflow as tf

from glow_tf.bijectors.actnorm import ActNorm
from glow_tf.bijectors.base import ddi_active


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


def edge_conv2d(x, w):
    """The original's convolution (tfops.conv2d's core): edge-bias padding for filters > 1, then
    'VALID'. `w` is [k, k, C_in + 1, C_out] for k > 1 (the extra input channel reads the border)."""
    if w.shape[0] > 1:
        x = add_edge_padding(x, w.shape[0])
    return tf.nn.conv2d(x, w, 1, "VALID")


def tap_conv2d(x, w):
    """`edge_conv2d` as one matmul per pixel followed by a sum of shifted taps.

    y[p] = sum_{i,j} Z[p + (i, j) - a, (i, j)] + E[p], where Z = x @ W[i, j, :C] for all k*k taps at
    once ([B*H*W, C] @ [C, k*k*C_out]), taken as zero outside the image, and E = conv(border,
    W[:, :, C]) is the edge-bias channel's share, the same for every image. The same sums as
    `edge_conv2d` in another order (float32 round-off apart), but as a GEMM with k*k*C_out columns,
    where TensorFlow's CPU convolution (and its two gradients) is slow for few output channels, as
    in the coupling network's last layer `l_last` (bench/README.md has figures). For a 1x1 filter
    (no edge channel) it is `pixel_matmul`: TensorFlow's MatMul and its two MatMul gradients, where
    oneDNN's 1x1 convolution gradients are slower.
    """
    k, c, c_out = w.shape[0], x.shape[-1], w.shape[-1]
    if k == 1:  # one tap and no edge channel: the 1x1 convolution is the matmul itself
        return pixel_matmul(x, tf.reshape(w, [c, c_out]))
    a = (k - 1) // 2
    h, wd = x.shape[1], x.shape[2]
    taps = tf.reshape(tf.transpose(w[:, :, :c, :], [2, 0, 1, 3]), [c, k * k * c_out])
    z = tf.matmul(tf.reshape(x, [-1, c]), taps)
    z = tf.pad(tf.reshape(z, [-1, h, wd, k * k * c_out]), [[0, 0], [a, a], [a, a], [0, 0]])
    edge = tf.nn.conv2d(tf.constant(_border_indicator(h, wd, a, a)), w[:, :, c:, :], 1, "VALID")
    return edge + _sum_of_shifted_taps(z, k, c_out)


def _reshape_channels(t, like, channels):
    """`t` reshaped to `like`'s shape with its last axis replaced by the axes `channels` (a list);
    static where `like`'s height and width are known, else from its runtime shape."""
    if None in like.shape[1:-1]:
        return tf.reshape(t, tf.concat([tf.shape(like)[:-1], channels], axis=0))
    return tf.reshape(t, [-1, *like.shape[1:-1], *channels])


def pixel_matmul(x, m):
    """`x @ m` at every pixel: x [B, H, W, C] and m [C, C_out] as one [B*H*W, C] @ [C, C_out] GEMM."""
    return _reshape_channels(tf.matmul(tf.reshape(x, [-1, m.shape[0]]), m), x, [m.shape[-1]])


def interleaved_halves(h):
    """`(h[..., 0::2], h[..., 1::2])`: the original's interleaved read of a network's outputs (the
    affine coupling's shift and scale, a split prior's mean and logs). Taken as one Unpack of h seen
    as [..., C/2, 2], whose gradient is one Pack: the two strided slices' gradients were two
    full-size zero-filled tensors and their sum. The same values, moved, not computed."""
    even, odd = tf.unstack(_reshape_channels(h, h, [h.shape[-1] // 2, 2]), axis=-1)
    return even, odd


def _sum_of_shifted_taps(z, k, c_out):
    """y[:, p] = sum_{i,j} z[:, p + (i, j), block (i, j)] for a padded z [B, H + k - 1, W + k - 1,
    k*k*C_out]. Its gradient is written out as nine pads of dy side by side: TensorFlow's own
    (one StridedSliceGrad per tap, each a full-size tensor) took a quarter of the training step."""
    h, wd = z.shape[1] - (k - 1), z.shape[2] - (k - 1)
    blocks = [(i, j) for i in range(k) for j in range(k)]

    @tf.custom_gradient
    def shifted_sum(z):
        y = tf.add_n([z[:, i:i + h, j:j + wd, n * c_out:(n + 1) * c_out] for n, (i, j) in enumerate(blocks)])

        def grad(dy):
            return tf.concat([tf.pad(dy, [[0, 0], [i, k - 1 - i], [j, k - 1 - j], [0, 0]]) for i, j in blocks], axis=3)
        return y, grad

    return shifted_sum(z)


KERNELS = ("gpu", "onednn", "eigen")


@functools.lru_cache(maxsize=None)
def convolution_kernels():
    """Which convolution kernels TensorFlow runs here: "gpu" (cuDNN) if it sees a GPU, else "onednn"
    if its CPU ops are oneDNN's (TF_ENABLE_ONEDNN_OPTS=1, the default on AVX-512 CPUs), else "eigen"."""
    if tf.config.list_logical_devices("GPU"):
        return "gpu"
    try:
        from tensorflow.python.util import _pywrap_util_port
        return "onednn" if _pywrap_util_port.IsMklEnabled() else "eigen"
    except (ImportError, AttributeError):
        return "eigen"


def tap_form_is_faster(x, w, kernels=None):
    """Whether `tap_conv2d` is the faster form for input `x` and filter `w` (tensors or TensorSpecs)
    on `kernels`, one of KERNELS (default: `convolution_kernels()`, those that run here), by a rule
    drawn from earlier measurements; the choice of `conv_form("rule")` (`conv_form("auto")` measures
    instead). Measured on a 2-core CPU (bench/README.md): with TensorFlow's default
    CPU kernels it wins from 8x8 images up when C_out <= 24 and C_in >= 4 C_out
    (forward + gradients 1.3-4.2x, forward alone up to 3.9x for CelebA-HQ's 128x128 `l_last`), and
    loses on 4x4 images, for wider outputs and for few inputs (the split priors).
    oneDNN's convolution has a faster backward pass, so there the tap form is kept for batches of at
    most 4 (and unknown batches), where oneDNN's convolution is slow (20x the tap form at batch 1,
    CelebA-HQ's `l_last`). On a GPU the
    original's form is kept: the tap form was not measured there."""
    if kernels is not None and kernels not in KERNELS:
        raise ValueError(f"kernels {kernels!r}: expected one of {', '.join(map(repr, KERNELS))}")
    k, c_in, c_out = w.shape[0], w.shape[2] - 1, w.shape[3]
    if k == 1 or x.shape[1] is None or x.shape[2] is None:
        return False
    if not (x.shape[1] * x.shape[2] >= 64 and c_out <= 24 and c_in >= 4 * c_out):
        return False
    kernels = kernels or convolution_kernels()
    if kernels == "onednn":
        return x.shape[0] is None or x.shape[0] <= 4
    return kernels == "eigen"


CONV_FORMS = ("auto", "taps", "plain", "rule")
FORM_ENV = "GLOW_TF_CONV_FORM"
_conv_form = None  # set by conv_form(); None: $GLOW_TF_CONV_FORM, else "auto"


def current_conv_form():
    """The form in force: `conv_form`'s block, else $GLOW_TF_CONV_FORM, else "auto"."""
    form = _conv_form or os.environ.get(FORM_ENV) or "auto"
    if form not in CONV_FORMS:
        raise ValueError(f"{FORM_ENV}={form!r}: expected one of {', '.join(map(repr, CONV_FORMS))}")
    return form


@contextlib.contextmanager
def conv_form(form):
    """Within the block, every convolution (the coupling network's `l_1`, `l_2` and `l_last`, the
    invertible 1x1 conv, the split priors, learntop's prior) runs in one form: "taps" (`tap_conv2d`;
    for a 1x1 filter a matmul), "plain" (`edge_conv2d`, the original's), "auto" (the default: the form
    measured faster here, `measured_form`) or "rule" (the tap form where `tap_form_is_faster`, never
    for a 1x1 filter; nothing measured). Outside
    any block the environment variable GLOW_TF_CONV_FORM (same values) sets it, e.g. "rule" or "plain"
    for timings that must not depend on a measurement. The forms compute the same sums (float32
    round-off apart). The form is read when a function is traced: a tf.function traced before the
    block keeps its form. The setting is the process's, not a thread's.

        with networks.conv_form("plain"):
            bits = glow.objective(x)["bits_x"]
    """
    global _conv_form
    if form not in CONV_FORMS:
        raise ValueError(f"conv_form {form!r}: expected one of {', '.join(map(repr, CONV_FORMS))}")
    previous, _conv_form = _conv_form, form
    try:
        yield
    finally:
        _conv_form = previous


def tap_form_is_candidate(x, w):
    """Whether `measured_form` times the tap form for input `x` and filter `w` at all: a known height
    and width, and the matmul's k*k*C_out columns at most 4x the filter's input channels. So the
    coupling network's `l_last` and every 1x1 convolution (`l_2`, the invertible 1x1 conv: there the
    tap form is a plain matmul), not `l_1` or the priors, whose tap-form intermediate would be 9-40x
    their input: slower in every measurement, bench/README.md. Elsewhere the original's form is kept
    without measuring."""
    k, c_in, c_out = w.shape[0], w.shape[2], w.shape[3]
    return x.shape[1] is not None and x.shape[2] is not None and k * k * c_out <= 4 * c_in


UNKNOWN_BATCH_MAX = 16  # an unknown batch is timed at 1 and at up to this many images (see measured_form)
UNKNOWN_BATCH_BYTES = 64 << 20


def _in_xla_context():
    from tensorflow.python.ops import control_flow_util

    return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))


def measured_form(x, w):
    """"taps" or "plain" for input `x` and filter `w` (tensors or TensorSpecs): the form that ran
    faster here, forward + both gradients as training runs them, measured once per shape, dtype,
    kernel library, XLA or not, TensorFlow version and CPU model, and cached on disk
    (`glow_tf.autotune`: $GLOW_TF_CACHE_DIR/autotune.json). The tap form is chosen only when it was
    more than `autotune.MARGIN` faster. When called while a function is traced, the measurement runs
    eagerly outside it (tf.init_scope), under XLA if the function is compiled with XLA. For an
    unknown batch size both forms are timed at batch 1 and at the largest batch up to
    UNKNOWN_BATCH_MAX whose input fits in 64 MB, and compared by the product of the two times (the
    geometric mean of the two ratios)."""
    from glow_tf import autotune

    if not tap_form_is_candidate(x, w):
        return "plain"
    with tf.init_scope():
        if not tf.executing_eagerly():  # a TF1-style graph: nothing can run before the graph does
            return "plain"
    dtype = tf.as_dtype(x.dtype)
    xla = _in_xla_context()
    x_shape, w_shape = list(x.shape), list(w.shape)
    k = autotune.key(op="edge_conv2d", x=x_shape, w=w_shape, dtype=dtype.name, kernels=convolution_kernels(),
                     xla=xla)
    return autotune.decide(k, lambda: _time_forms(x_shape, w_shape, dtype, xla), "plain", ("taps", "plain"))


def _time_forms(x_shape, w_shape, dtype, xla):
    """{"taps": s, "plain": s}: median seconds of forward + both gradients of each form (see
    measured_form)."""
    from glow_tf import autotune

    if x_shape[0] is not None:
        batches = [x_shape[0]]
    else:
        image_bytes = int(np.prod(x_shape[1:])) * dtype.size
        batches = sorted({1, max(1, min(UNKNOWN_BATCH_MAX, UNKNOWN_BATCH_BYTES // image_bytes))})
    total = {"taps": 1.0, "plain": 1.0}
    with tf.init_scope():  # eager, outside any function being traced
        rng = np.random.default_rng(0)
        w = tf.constant(rng.standard_normal(w_shape) * 0.05, dtype)
        for batch in batches:
            x = tf.constant(rng.standard_normal([batch, *x_shape[1:]]), dtype)
            dy = tf.constant(rng.standard_normal([batch, *x_shape[1:3], w_shape[3]]), dtype)

            def make(conv):
                # the inputs are arguments, not captured constants, so that nothing is constant-folded;
                # tf.gradients, not a tape: tf.init_scope pauses the tapes
                @tf.function(jit_compile=xla, autograph=False)
                def forward_backward(x, w, dy):
                    return tf.gradients(conv(x, w), [x, w], grad_ys=dy)
                return lambda: forward_backward(x, w, dy)

            seconds = autotune.time_interleaved({"plain": make(edge_conv2d), "taps": make(tap_conv2d)})
            total = {form: total[form] * seconds[form] for form in total}
    return {form: t ** (1.0 / len(batches)) for form, t in total.items()}


def chosen_form(x, w):
    """"taps" or "plain": the form `conv` computes input `x` and filter `w` in, under the form in force
    (`conv_form`, $GLOW_TF_CONV_FORM, else "auto": measured)."""
    form = current_conv_form()
    if form == "auto":
        return measured_form(x, w)
    if form == "rule":
        return "taps" if tap_form_is_faster(x, w) else "plain"
    return form


def conv(x, w):
    """`edge_conv2d(x, w)` (the original's convolution, any filter size) in the form `conv_form`
    selects (by default the faster): what every layer of the model convolves with."""
    return tap_conv2d(x, w) if chosen_form(x, w) == "taps" else edge_conv2d(x, w)


def folded_filter(x, w, scale):
    """`w * scale` (a filter with its actnorm folded in), computed only once the layer's input `x` exists.

    It depends on variables alone, so in a graph TensorFlow's executor may compute it as soon as the
    step starts, for every layer of every flow step at once, and hold each filter-sized copy until its
    convolution runs: memory that grows with depth whatever the backprop mode (measured: +0.3 MB per
    flow step on the bench configuration, a third of its forward pass at K=8). The control dependency
    makes it just in time; the numbers are unchanged."""
    with tf.control_dependencies([x]):
        return w * scale


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
        actnorm = self.actnorm
        if ddi_active() and not bool(actnorm.initialized):
            return actnorm.encode(conv(x, self.W))[0]  # the init's statistics are of the bare convolution
        # (conv(x, W) + b) * s == conv(x, W * s) + b * s, s = exp(logs): the actnorm folded into the
        # filter and a bias, so that TensorFlow fuses conv, bias and the ReLU after it into one kernel
        # (1.05-1.3x faster per layer, forward and backward; float32 round-off apart, the same numbers).
        scale = tf.exp(actnorm.logs)
        return tf.nn.bias_add(conv(x, folded_filter(x, self.W, scale)), tf.reshape(actnorm.b * scale, [-1]))


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
        scale = tf.exp(self.logs * self.logscale_factor)  # folded like Conv2D's actnorm: conv(x, W * s) + b * s
        return tf.nn.bias_add(conv(x, folded_filter(x, self.W, scale)), tf.reshape(self.b * scale, [-1]))


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
