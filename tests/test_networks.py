"""The non-invertible layers (openai tfops.add_edge_padding, conv2d, conv2d_zeros, linear_zeros and
model.py:f), each against a NumPy restatement of the original."""
import numpy as np
import pytest
import tensorflow as tf

from bijector_checks import perturb, random_normal
from glow_tf.bijectors.networks import Conv2D, Conv2DZeros, CouplingNetwork, LinearZeros, add_edge_padding


def _np_edge_pad(x):
    """tfops.add_edge_padding for a 3x3 filter: zero-pad by 1 and append a border-indicator channel."""
    n, h, w, _ = x.shape
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    indicator = np.ones([n, h + 2, w + 2, 1], dtype=x.dtype)
    indicator[:, 1:-1, 1:-1] = 0.0
    return np.concatenate([padded, indicator], axis=-1)


def _np_conv_valid(x, w):
    kh, kw = w.shape[:2]
    n, h, wd, _ = x.shape
    out = np.zeros([n, h - kh + 1, wd - kw + 1, w.shape[-1]])
    for di in range(kh):
        for dj in range(kw):
            out += np.einsum("nhwc,co->nhwo", x[:, di:di + h - kh + 1, dj:dj + wd - kw + 1], w[di, dj])
    return out


def _np_actnorm(x, actnorm):
    return (x + actnorm.b.numpy()) * np.exp(3.0 * actnorm.logs_var.numpy())


def test_edge_padding_appends_a_border_indicator():
    x = random_normal([2, 3, 4, 2], seed=0)
    padded = add_edge_padding(x, 3).numpy()
    assert padded.shape == (2, 5, 6, 3)
    np.testing.assert_array_equal(padded, _np_edge_pad(x.numpy()))
    # the indicator by hand: 1 on the padded ring, 0 on the 3x4 interior
    expected = np.ones([5, 6])
    expected[1:4, 1:5] = 0
    np.testing.assert_array_equal(padded[1, :, :, 2], expected)


def test_conv2d_zeros_is_conv_plus_bias_times_exp_3_logs_and_starts_at_zero():
    layer = Conv2DZeros(2, 5, name="conv")
    x = random_normal([2, 4, 4, 2], seed=1)
    np.testing.assert_array_equal(layer(x), 0.0)
    assert layer.W.shape == (3, 3, 3, 5) and layer.b.shape == (1, 1, 1, 5) and layer.logs.shape == (1, 5)
    perturb(layer, 0.3, seed=2)
    expected = (_np_conv_valid(_np_edge_pad(x.numpy()), layer.W.numpy()) + layer.b.numpy()) * np.exp(
        3.0 * layer.logs.numpy())  # the scale multiplies the bias too
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_edge_bias_makes_a_conv_of_zeros_border_dependent():
    layer = Conv2DZeros(1, 1, name="conv")
    w = np.zeros([3, 3, 2, 1], np.float32)
    w[:, :, 1, 0] = 1.0  # count the taps that read padding
    layer.W.assign(w)
    out = layer(tf.zeros([1, 4, 4, 1])).numpy()[0, :, :, 0]
    expected = np.array([[5, 3, 3, 5], [3, 0, 0, 3], [3, 0, 0, 3], [5, 3, 3, 5]])
    np.testing.assert_array_equal(out, expected)


def test_linear_zeros():
    layer = LinearZeros(3, 4, name="lin")
    x = random_normal([2, 3], seed=3)
    np.testing.assert_array_equal(layer(x), 0.0)
    perturb(layer, 0.3, seed=4)
    expected = (x.numpy() @ layer.W.numpy() + layer.b.numpy()) * np.exp(3.0 * layer.logs.numpy())
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5)


def test_conv2d_has_no_bias_and_is_followed_by_actnorm():
    layer = Conv2D(2, 64, 3, np.random.RandomState(5), name="l_1")
    assert layer.W.shape == (3, 3, 3, 64)
    assert {v.name.split("/")[-1].split(":")[0] for v in layer.trainable_variables} == {"W", "b", "logs"}
    assert abs(layer.W.numpy().std() - 0.05) < 0.005  # N(0, 0.05)
    perturb(layer.actnorm, 0.3, seed=6)
    x = random_normal([2, 4, 4, 2], seed=7)
    expected = _np_actnorm(_np_conv_valid(_np_edge_pad(x.numpy()), layer.W.numpy()), layer.actnorm)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-4, atol=1e-5)
    one_by_one = Conv2D(4, 8, 1, np.random.RandomState(5), name="l_2")
    assert one_by_one.W.shape == (1, 1, 4, 8)  # no edge channel for 1x1 filters


def test_coupling_network_is_conv_actnorm_relu_twice_then_conv_zeros():
    f = CouplingNetwork(2, 8, 4, np.random.RandomState(8))
    x = random_normal([2, 4, 4, 2], seed=9)
    np.testing.assert_array_equal(f(x), 0.0)  # l_last is zero-initialised
    perturb(f, 0.3, seed=10)
    h = np.maximum(_np_actnorm(_np_conv_valid(_np_edge_pad(x.numpy()), f.l_1.W.numpy()), f.l_1.actnorm), 0)
    h = np.maximum(_np_actnorm(_np_conv_valid(h, f.l_2.W.numpy()), f.l_2.actnorm), 0)
    last = f.l_last
    out = (_np_conv_valid(_np_edge_pad(h), last.W.numpy()) + last.b.numpy()) * np.exp(3.0 * last.logs.numpy())
    np.testing.assert_allclose(f(x), out, rtol=1e-4, atol=1e-5)


def _conv_and_grads(conv, x, w):
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = conv(tf.identity(x), tf.identity(w))
        loss = tf.reduce_sum(y * tf.sin(y))  # a non-linear read-out, so the gradients depend on y
    return (y, *tape.gradient(loss, [x, w]))


def test_tap_conv_equals_the_edge_padded_conv_with_gradients():
    """tap_conv2d (matmul + shifted taps + the edge channel's map) against the literal form and
    NumPy, on shapes where it is used and where it is not (odd sizes, k = 5 too)."""
    from glow_tf.bijectors.networks import edge_conv2d, tap_conv2d
    for shape, k, c_out in (([2, 16, 16, 40], 3, 4), ([3, 5, 7, 9], 3, 1), ([1, 9, 6, 30], 5, 2)):
        x = random_normal(shape, seed=11)
        w = random_normal([k, k, shape[-1] + 1, c_out], seed=12) * 0.1
        taps, plain = _conv_and_grads(tap_conv2d, x, w), _conv_and_grads(edge_conv2d, x, w)
        for a, b in zip(taps, plain):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(tf.reduce_max(tf.abs(b))))
        if k == 3:
            np.testing.assert_allclose(taps[0], _np_conv_valid(_np_edge_pad(x.numpy()), w.numpy()), rtol=1e-4,
                                       atol=1e-5)


def test_the_automatic_form_by_shape_and_kernel_library():
    """The tap form was measured on CPUs only: on a GPU the original's convolution is kept for every
    shape; with oneDNN the tap form only for batches of at most 4 (or unknown); with Eigen by shape
    alone: from 8x8 images, C_out <= 24 and C_in >= 4 C_out, never for 1x1 filters."""
    from glow_tf.bijectors.networks import tap_form_is_faster
    l_last = tf.TensorSpec([3, 3, 129, 12])  # a level-1 coupling network's last layer, 128 -> 12 channels
    for kernels, batches in (("eigen", {1: True, 4: True, 64: True, None: True}),
                             ("onednn", {1: True, 4: True, 5: False, 64: False, None: True}),
                             ("gpu", {1: False, 4: False, 64: False, None: False})):
        for batch, taps in batches.items():
            assert tap_form_is_faster(tf.TensorSpec([batch, 16, 16, 128]), l_last, kernels) == taps, (kernels, batch)
    for x, w in (([4, 4, 4, 128], [3, 3, 129, 12]),      # 4x4 images
                 ([4, 16, 16, 128], [3, 3, 129, 48]),    # a wide output
                 ([4, 16, 16, 40], [3, 3, 41, 12]),      # few inputs (C_in < 4 C_out)
                 ([4, 16, 16, 128], [1, 1, 128, 12]),    # a 1x1 filter
                 ([4, None, 16, 128], [3, 3, 129, 12])):  # an unknown height
        assert not tap_form_is_faster(tf.TensorSpec(x), tf.TensorSpec(w), "eigen"), (x, w)
    assert tap_form_is_faster(tf.TensorSpec([4, 8, 8, 48]), tf.TensorSpec([3, 3, 49, 12]), "eigen")
    with pytest.raises(ValueError, match="kernels 'cpu': expected one of 'gpu', 'onednn', 'eigen'"):
        tap_form_is_faster(tf.TensorSpec([4, 16, 16, 128]), l_last, "cpu")


def test_conv_form_selects_the_form_the_network_runs(monkeypatch):
    """networks.conv_form: "taps" runs every 3x3 convolution of a coupling network (l_1, l_last) in the
    tap form, "plain" none, "auto" l_last where tap_form_is_faster says so for the kernels found
    here; the output is the same in every form."""
    import glow_tf.bijectors.networks as layers
    calls = []
    tap_conv2d = layers.tap_conv2d
    monkeypatch.setattr(layers, "tap_conv2d", lambda x, w: calls.append(w.shape[-1]) or tap_conv2d(x, w))
    f = CouplingNetwork(6, 128, 12, np.random.RandomState(13))
    perturb(f, 0.3, seed=14)
    x = random_normal([2, 16, 16, 6], seed=15)
    outputs = {}
    for form, expected in (("plain", []), ("taps", [128, 12]),
                           ("auto", [12] if layers.tap_form_is_faster(tf.zeros([2, 16, 16, 128]), f.l_last.W) else [])):
        calls.clear()
        with layers.conv_form(form):
            outputs[form] = f(x)
        assert calls == expected, form
    for form in ("taps", "auto"):
        np.testing.assert_allclose(outputs[form], outputs["plain"], rtol=1e-5,
                                   atol=1e-5 * float(tf.reduce_max(tf.abs(outputs["plain"]))))
    with pytest.raises(ValueError, match="conv_form 'fast': expected one of 'auto', 'taps', 'plain'"):
        with layers.conv_form("fast"):
            pass
    calls.clear()
    f(x)  # the block left the automatic choice behind it
    assert calls == expected


def test_coupling_network_with_taps_equals_the_literal_convolutions():
    """A level-1 coupling network of the bench shape (16x16, 6 -> 128 -> 12), whose l_last takes
    the tap form, against the same network forced through tf.nn.conv2d: output and all gradients."""
    import glow_tf.bijectors.networks as layers
    f = CouplingNetwork(6, 128, 12, np.random.RandomState(13))
    perturb(f, 0.3, seed=14)
    x = random_normal([2, 16, 16, 6], seed=15)
    f.l_last.W.assign(random_normal(f.l_last.W.shape, seed=16) * 0.05)
    f.l_2.W.assign(f.l_2.W * 2.0)

    def run():
        with tf.GradientTape() as tape:
            out = f(tf.identity(x))
            loss = tf.reduce_sum(out * out)
        return [out, *tape.gradient(loss, f.trainable_variables)]

    assert layers.tap_form_is_faster(tf.zeros([2, 16, 16, 128]), f.l_last.W)
    with_taps = run()
    with layers.conv_form("plain"):
        literal = run()
    for a, b in zip(with_taps, literal):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(tf.reduce_max(tf.abs(b))))
