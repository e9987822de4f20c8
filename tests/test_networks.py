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


def test_the_tap_form_of_a_1x1_convolution_is_a_matmul_equal_to_the_convolution():
    """For a 1x1 filter tap_conv2d is one MatMul (no convolution, no shifted taps): the same output and
    gradients as tf.nn.conv2d and NumPy's einsum, also for an unknown height and width."""
    from glow_tf.bijectors.networks import edge_conv2d, tap_conv2d
    x = random_normal([3, 5, 7, 16], seed=21)
    w = random_normal([1, 1, 16, 12], seed=22) * 0.2
    taps, plain = _conv_and_grads(tap_conv2d, x, w), _conv_and_grads(edge_conv2d, x, w)
    for a, b in zip(taps, plain):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(tf.reduce_max(tf.abs(b))))
    np.testing.assert_allclose(taps[0], np.einsum("bhwc,cd->bhwd", x.numpy(), w.numpy()[0, 0]), rtol=1e-5, atol=1e-5)
    for spec in (tf.TensorSpec([None, 5, 7, 16]), tf.TensorSpec([None, None, None, 16])):
        fn = tf.function(tap_conv2d, input_signature=[spec, tf.TensorSpec(w.shape)])
        ops = {op.type for op in fn.get_concrete_function().graph.get_operations()}
        assert "MatMul" in ops and not ops & {"Conv2D", "AddN", "Pad"}, ops
        np.testing.assert_allclose(fn(x, w), taps[0], rtol=1e-6, atol=1e-6)


def test_interleaved_halves_are_the_even_and_odd_channels_with_their_gradient():
    """interleaved_halves(h) == (h[..., 0::2], h[..., 1::2]) bit for bit, and its gradient puts each
    half's gradient back on its own channels (against the strided slices' gradient), with known and
    unknown spatial sizes."""
    from glow_tf.bijectors.networks import interleaved_halves
    h = random_normal([2, 3, 5, 8], seed=23)
    g_even, g_odd = random_normal([2, 3, 5, 4], seed=24), random_normal([2, 3, 5, 4], seed=25)

    def grads(split):
        with tf.GradientTape() as tape:
            tape.watch(h)
            even, odd = split(tf.identity(h))
            loss = tf.reduce_sum(even * g_even) + tf.reduce_sum(odd * tf.sin(odd) * g_odd)
        return even, odd, tape.gradient(loss, h)

    expected = grads(lambda t: (t[..., 0::2], t[..., 1::2]))
    for split in (interleaved_halves, tf.function(interleaved_halves, input_signature=[tf.TensorSpec([None] * 3 + [8])])):
        for a, b in zip(grads(split), expected):
            np.testing.assert_array_equal(a, b)


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
    """networks.conv_form: "taps" runs every convolution of a coupling network (l_1, l_2 as a matmul,
    l_last) in the tap form, "plain" none, "rule" l_last where tap_form_is_faster says so for the kernels found
    here ("auto", measured, is tested below); the output is the same in every form."""
    import glow_tf.bijectors.networks as layers
    calls = []
    tap_conv2d = layers.tap_conv2d
    monkeypatch.setattr(layers, "tap_conv2d", lambda x, w: calls.append(w.shape[-1]) or tap_conv2d(x, w))
    f = CouplingNetwork(6, 128, 12, np.random.RandomState(13))
    perturb(f, 0.3, seed=14)
    x = random_normal([2, 16, 16, 6], seed=15)
    outputs = {}
    for form, expected in (("plain", []), ("taps", [128, 128, 12]),
                           ("rule", [12] if layers.tap_form_is_faster(tf.zeros([2, 16, 16, 128]), f.l_last.W) else [])):
        calls.clear()
        with layers.conv_form(form):
            outputs[form] = f(x)
        assert calls == expected, form
    for form in ("taps", "rule"):
        np.testing.assert_allclose(outputs[form], outputs["plain"], rtol=1e-5,
                                   atol=1e-5 * float(tf.reduce_max(tf.abs(outputs["plain"]))))
    with pytest.raises(ValueError, match="conv_form 'fast': expected one of 'auto', 'taps', 'plain', 'rule'"):
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


# --- conv_form("auto"): the form measured once per shape and machine, cached on disk -------------------
@pytest.fixture
def autotune_cache(tmp_path, monkeypatch):
    """An empty autotune cache folder for the test (GLOW_TF_CACHE_DIR), the automatic form in force, and
    no decision of the process carried in or out."""
    from glow_tf import autotune
    monkeypatch.setenv("GLOW_TF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GLOW_TF_CONV_FORM", "auto")
    autotune.forget()
    yield tmp_path / "cache"
    autotune.forget()


def _fake_timer(monkeypatch, seconds):
    """networks._time_forms replaced by one that returns `seconds` ({form: s}, or a function of the
    filter's shape giving it) and records each measured filter shape."""
    import glow_tf.bijectors.networks as layers
    measured = []

    def timer(x_shape, w_shape, dtype, xla):
        measured.append(tuple(w_shape))
        return seconds(w_shape) if callable(seconds) else dict(seconds)
    monkeypatch.setattr(layers, "_time_forms", timer)
    return measured


def _tap_calls(monkeypatch):
    import glow_tf.bijectors.networks as layers
    calls = []
    tap_conv2d = layers.tap_conv2d
    monkeypatch.setattr(layers, "tap_conv2d", lambda x, w: calls.append(tuple(w.shape)) or tap_conv2d(x, w))
    return calls


def test_auto_form_is_the_one_measured_faster(autotune_cache, monkeypatch):
    """l_2 (1x1, 32 -> 32: a matmul in the tap form) and l_last (32 -> 4 channels: 9 x 4 matmul
    columns for 33 inputs) are the candidates; each takes the tap form when that was measured faster
    by more than the margin, else the original's form; l_1 (6 -> 32) is never measured. A choice that
    ignored the measurement fails here."""
    import glow_tf.bijectors.networks as layers
    from glow_tf import autotune
    f = CouplingNetwork(6, 32, 4, np.random.RandomState(13))
    perturb(f, 0.3, seed=14)
    x = random_normal([2, 8, 8, 6], seed=15)
    calls = _tap_calls(monkeypatch)
    outputs = []
    both = [(1, 1, 32, 32), (3, 3, 33, 4)]
    for seconds, expected in (({"taps": 1.0, "plain": 2.0}, both),
                              ({"taps": 2.0, "plain": 1.0}, []),
                              ({"taps": 0.97, "plain": 1.0}, []),  # within the margin: the original's form
                              ({"taps": 0.9, "plain": 1.0}, both),
                              # each shape by its own measurement
                              (lambda w: {"taps": 1.0, "plain": 2.0 if w[0] == 1 else 0.5}, [(1, 1, 32, 32)]),
                              (lambda w: {"taps": 1.0, "plain": 0.5 if w[0] == 1 else 2.0}, [(3, 3, 33, 4)])):
        autotune.forget()
        for path in autotune_cache.glob("*"):
            path.unlink()
        measured = _fake_timer(monkeypatch, seconds)
        calls.clear()
        outputs.append(f(x))
        assert measured == both, seconds
        assert calls == expected, seconds
    for out in outputs[1:]:
        np.testing.assert_allclose(out, outputs[0], rtol=1e-5, atol=1e-5 * float(tf.reduce_max(tf.abs(outputs[0]))))
    assert autotune.pick({"taps": 0.9, "plain": 1.0}, "plain") == "taps"
    assert autotune.pick({"taps": 0.96, "plain": 1.0}, "plain") == "plain"
    assert not layers.tap_form_is_candidate(tf.TensorSpec([2, 8, 8, 6]), f.l_1.W)


def test_auto_form_is_measured_once_then_read_from_the_cache(autotune_cache, monkeypatch):
    """The first build measures each candidate shape once (a second call in the process measures
    nothing); a new process (the process's decisions forgotten) reads the file and measures nothing;
    the file holds the decision, the times and the key's parts (shape, dtype, kernels, XLA,
    TensorFlow version, CPU)."""
    import json

    from glow_tf import autotune
    measured = _fake_timer(monkeypatch, {"taps": 1.0, "plain": 3.0})
    calls = _tap_calls(monkeypatch)
    x = random_normal([2, 8, 8, 6], seed=15)
    f = CouplingNetwork(6, 32, 4, np.random.RandomState(13))
    f(x), f(x)
    assert measured == [(1, 1, 32, 32), (3, 3, 33, 4)] and len(calls) == 4
    entries = json.loads((autotune_cache / "autotune.json").read_text())["entries"]
    assert sorted(json.loads(k)["w"] for k in entries) == [[1, 1, 32, 32], [3, 3, 33, 4]]
    (k, entry), = [(k, e) for k, e in entries.items() if json.loads(k)["w"] == [3, 3, 33, 4]]
    assert entry["form"] == "taps" and entry["ms"] == {"taps": 1000.0, "plain": 3000.0}
    parts = json.loads(k)
    assert parts["x"] == [2, 8, 8, 32] and parts["dtype"] == "float32"
    assert parts["xla"] is False and parts["tensorflow"] == tf.__version__ and parts["cpu"]
    from glow_tf.bijectors.networks import convolution_kernels
    assert parts["kernels"] == convolution_kernels()

    autotune.forget()  # as a new process
    measured.clear(), calls.clear()
    CouplingNetwork(6, 32, 4, np.random.RandomState(1))(x)
    assert measured == [] and calls == [(1, 1, 32, 32), (3, 3, 33, 4)]
    # another batch or the same layer under XLA is another key: measured once each
    CouplingNetwork(6, 32, 4, np.random.RandomState(1))(random_normal([3, 8, 8, 6], seed=1))
    tf.function(lambda x: f(x), jit_compile=True)(x)
    assert measured == [(1, 1, 32, 32), (3, 3, 33, 4)] * 2
    assert sorted(json.loads(k)["xla"] for k in json.loads((autotune_cache / "autotune.json").read_text())["entries"]) \
        == [False] * 4 + [True] * 2


def test_the_real_measurement_inside_a_traced_function(autotune_cache):
    """Unfaked: the first trace of a tf.function measures both forms eagerly (outside the trace),
    records finite positive times and the form autotune.pick makes of them; the traced function
    computes the same as the original's form."""
    import json

    import glow_tf.bijectors.networks as layers
    from glow_tf import autotune
    f = CouplingNetwork(6, 32, 4, np.random.RandomState(3))
    perturb(f, 0.3, seed=4)
    x = random_normal([2, 8, 8, 6], seed=5)
    before = autotune.measurements
    out = tf.function(f)(x)
    assert autotune.measurements == before + 2  # l_2 and l_last
    entries = json.loads((autotune_cache / "autotune.json").read_text())["entries"].values()
    assert len(entries) == 2
    for entry in entries:
        assert set(entry["ms"]) == {"taps", "plain"} and all(0 < t < 1e4 for t in entry["ms"].values())
        assert entry["form"] == autotune.pick(entry["ms"], "plain")
    with layers.conv_form("plain"):
        np.testing.assert_allclose(out, f(x), rtol=1e-5, atol=1e-5 * float(tf.reduce_max(tf.abs(out))))


def test_a_corrupt_cache_is_measured_again_with_one_warning(autotune_cache, monkeypatch):
    import json

    from glow_tf import autotune
    autotune_cache.mkdir()
    path = autotune_cache / "autotune.json"
    x = random_normal([2, 8, 8, 6], seed=15)
    for garbage in ('{"format": 1, "entries": {"k": ', "[1, 2]", '{"format": 99, "entries": {}}', "\x00\xff"):
        path.write_text(garbage)
        autotune.forget()
        measured = _fake_timer(monkeypatch, {"taps": 1.0, "plain": 3.0})
        with pytest.warns(RuntimeWarning, match="autotune cache .*autotune.json is unreadable") as caught:
            CouplingNetwork(6, 32, 4, np.random.RandomState(1))(x)
            CouplingNetwork(6, 32, 8, np.random.RandomState(1))(x)  # a second shape: no second warning
        assert len([w for w in caught if "autotune" in str(w.message)]) == 1, garbage
        assert measured == [(1, 1, 32, 32), (3, 3, 33, 4), (3, 3, 33, 8)]
        assert len(json.loads(path.read_text())["entries"]) == 3  # rewritten whole


def test_an_unwritable_cache_folder_keeps_the_decisions_in_the_process(autotune_cache, monkeypatch, tmp_path):
    """A cache folder that cannot be made (its parent is a file) or written (os.replace refused, as in
    a read-only folder): one warning, the form measured once and kept for the process."""
    import glow_tf.io
    from glow_tf import autotune
    x = random_normal([2, 8, 8, 6], seed=15)
    (tmp_path / "a_file").write_text("")
    for folder, refuse in ((tmp_path / "a_file" / "cache", False), (autotune_cache, True)):
        monkeypatch.setenv("GLOW_TF_CACHE_DIR", str(folder))
        autotune.forget()
        if refuse:
            def replace(src, dst):
                raise PermissionError(13, "Permission denied", dst)
            monkeypatch.setattr(glow_tf.io.os, "replace", replace)
        measured = _fake_timer(monkeypatch, {"taps": 1.0, "plain": 3.0})
        calls = _tap_calls(monkeypatch)
        with pytest.warns(RuntimeWarning, match="cannot write the autotune cache") as caught:
            for _ in range(2):
                CouplingNetwork(6, 32, 4, np.random.RandomState(1))(x)
        assert len([w for w in caught if "autotune" in str(w.message)]) == 1
        assert measured == [(1, 1, 32, 32), (3, 3, 33, 4)] and len(calls) == 4
        assert not (autotune_cache / "autotune.json").exists()
        assert not autotune_cache.exists() or not any(autotune_cache.iterdir())  # no temporary file left


def test_the_environment_variable_turns_measuring_off(autotune_cache, monkeypatch):
    import glow_tf.bijectors.networks as layers
    from glow_tf import autotune
    measured = _fake_timer(monkeypatch, {"taps": 1.0, "plain": 3.0})
    calls = _tap_calls(monkeypatch)
    x = random_normal([2, 8, 8, 6], seed=15)
    f = CouplingNetwork(6, 32, 4, np.random.RandomState(1))
    for form, expected in (("plain", []), ("taps", [(3, 3, 7, 32), (1, 1, 32, 32), (3, 3, 33, 4)]),
                           ("rule", [(3, 3, 33, 4)] if layers.tap_form_is_faster(tf.zeros([2, 8, 8, 32]),
                                                                                  f.l_last.W) else [])):
        monkeypatch.setenv("GLOW_TF_CONV_FORM", form)
        calls.clear()
        f(x)
        assert calls == expected, form
    assert measured == [] and autotune.measurements >= 0 and not autotune_cache.exists()
    monkeypatch.setenv("GLOW_TF_CONV_FORM", "fastest")
    with pytest.raises(ValueError, match="GLOW_TF_CONV_FORM='fastest': expected one of 'auto', 'taps', 'plain', 'rule'"):
        f(x)


def _reference_run(glow, ref, config):
    """(bits/dim, decode of the reference eps, gradients of the mean bits/dim) of an original reference
    set, eagerly (so that each call takes the form then in force), checked against the vectors."""
    x, noise = tf.constant(ref["x"]), tf.constant(ref["noise"])
    y = tf.constant(ref["y"]) if config.ycond else None
    with tf.GradientTape() as tape:
        bits = glow.objective(x, y, noise=noise)["bits_x"]
    grads = tape.gradient(tf.reduce_mean(bits), glow.trainable_variables, unconnected_gradients="zero")
    np.testing.assert_allclose(bits, ref["bits_x"], atol=1e-4)
    decoded = glow.decode_with_log_det([tf.constant(ref[f"eps_{i}"]) for i in range(config.n_levels)], y)[0]
    np.testing.assert_allclose(decoded + 0.5, ref["decoded"], atol=1e-4)
    return grads


def _assert_same_gradients(grads_a, grads_b):
    for a, b in zip(grads_a, grads_b):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * max(1e-3, float(tf.reduce_max(tf.abs(b)))))


@pytest.mark.parametrize("name", ["additive_reverse", "additive_shuffle", "affine_invconv", "affine_lu_ycond"])
def test_the_original_reference_vectors_hold_whichever_form_is_measured_faster(autotune_cache, monkeypatch, name):
    """A reference set of the original release (tests/fixtures/original_glow) with every
    convolution forced into each form, and with the automatic form made to measure the tap form
    faster, then the original's: bits/dim and decode to the reference vectors' 1e-4, and the
    gradients of every choice against each other. The 1x1 convolutions (l_2, the invertible 1x1 convs)
    are candidates in every set, the coupling networks' output layers (16 -> 6 channels) in the
    additive sets only (in the affine ones, 16 -> 12 and 24, they are not)."""
    import json
    import os

    import glow_tf
    import glow_tf.bijectors.networks as layers
    from glow_tf import GlowConfig, autotune
    folder = os.path.join(os.path.dirname(__file__), "fixtures", "original_glow", name)
    with open(os.path.join(folder, "hps.json")) as f:
        config = GlowConfig.from_dict(json.load(f), strict=False)
    glow = glow_tf.load_original_checkpoint(os.path.join(folder, "model.ckpt"), config)
    ref = dict(np.load(os.path.join(folder, "reference.npz")))
    calls = _tap_calls(monkeypatch)
    grads = {}
    for form in ("taps", "plain"):
        calls.clear()
        with layers.conv_form(form):
            grads[form] = _reference_run(glow, ref, config)
        assert bool(calls) == (form == "taps")
    _assert_same_gradients(grads["taps"], grads["plain"])
    for winner, loser in (("taps", "plain"), ("plain", "taps")):
        autotune.forget()
        for path in autotune_cache.glob("*"):
            path.unlink()
        measured = _fake_timer(monkeypatch, {winner: 1.0, loser: 3.0})
        calls.clear()
        _assert_same_gradients(_reference_run(glow, ref, config), grads["plain"])
        sizes = {w[0] for w in measured}
        assert 1 in sizes  # every set's l_2 (and its invertible 1x1 convs)
        assert (3 in sizes) == (config.flow_coupling in (0, "additive"))
        assert bool(calls) == (winner == "taps"), winner
