"""The whole Glow model (openai model.py): parameter counts, FlowStep, data-dependent init, the
objective in closed form, round trips, the TFP view, temperature, variable tracking, input errors."""
import math

import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from bijector_checks import check_bijector, jacobian_log_det, perturb, random_normal
from glow_tf import FlowStep, Glow, GlowConfig, original_variable_map
from glow_tf.bijectors import ActNorm, InvertibleConv1x1LU
from glow_tf.bijectors.networks import Conv2D

TINY = dict(image_size=8, n_levels=2, depth=2, width=8)


def _images(n, size, seed=0):
    return np.random.RandomState(seed).randint(0, 256, size=(n, size, size, 3)).astype(np.uint8)


def _noise(shape, n_bins, seed=0, low=0.0, high=1.0):
    """Fixed dequantisation noise in [low, high) / n_bins."""
    return (np.random.RandomState(seed).uniform(low, high, shape) / n_bins).astype(np.float32)


def _perturb_actnorms(glow, scale, seed):
    rng = np.random.RandomState(seed)
    for m in glow.submodules:
        if isinstance(m, ActNorm):
            for v in (m.b, m.logs_var):
                v.assign_add(rng.normal(0.0, scale, v.shape).astype(np.float32))


def _ready(config, seed=0, n_init=8):
    """A model in which no layer is an identity: every variable perturbed (zero layers, 1x1 convs
    no longer orthogonal), then data-dependent init, then the actnorms perturbed off their init.

    (Perturbing every variable after the init, as the reference vectors were made, lets the
    activations of a 96-step model grow ~100-fold, testing float32 range rather than the code.)"""
    glow = Glow(config, seed=seed)
    # each entry of W = P L U sums ~C entries of L and U: perturb those by 0.02 / sqrt(C) so that an
    # LU W is about as well-conditioned as a perturbed plain W
    lu_factors = {id(v) for m in glow.submodules if isinstance(m, InvertibleConv1x1LU) for v in (m.L, m.U)}
    rng = np.random.RandomState(seed + 1)
    for v in glow.trainable_variables:
        scale = 0.02 / math.sqrt(v.shape[0]) if id(v) in lu_factors else 0.02
        v.assign_add(rng.normal(0.0, scale, v.shape).astype(np.float32))
    y = np.arange(n_init) % config.n_y if config.ycond else None
    glow.initialize(_images(n_init, config.image_size, seed=seed + 2), y,
                    noise=_noise([n_init, config.image_size, config.image_size, 3], config.n_bins, seed=seed + 4))
    _perturb_actnorms(glow, 0.02, seed=seed + 3)
    return glow


# --- parameter counts ------------------------------------------------------------------------------
def _expected_counts(cfg):
    """(trainable parameters, trainable variables) from the per-layer table of docs/original.md#per-layer-table
    §2.11 (with `width` in place of 512; LU: L and U stored full, plus log_S)."""
    w, params, variables = cfg.width, 0, 0
    for i, (_, _, c) in enumerate(cfg.level_shapes):
        n_out = c // 2 if cfg.flow_coupling == "additive" else c
        step = 2 * c  # actnorm
        step += 9 * (c // 2 + 1) * w + 2 * w  # l_1 and its actnorm
        step += w * w + 2 * w  # l_2 and its actnorm
        step += 9 * (w + 1) * n_out + 2 * n_out  # l_last
        step_vars = 2 + 3 + 3 + 3
        if cfg.flow_permutation == "invconv":
            step += 2 * c * c + c if cfg.lu else c * c
            step_vars += 3 if cfg.lu else 1
        params += cfg.depth * step
        variables += cfg.depth * step_vars
        if i < cfg.n_levels - 1:  # split prior
            params += 9 * (c // 2 + 1) * c + 2 * c
            variables += 3
    n = cfg.top_shape[-1]
    if cfg.learntop:
        params += 9 * (2 * n + 1) * 2 * n + 4 * n
        variables += 3
    if cfg.ycond:
        params += cfg.n_y * 2 * n + 4 * n
        variables += 3
    if cfg.ycond and cfg.weight_y > 0:  # classifier
        params += n * cfg.n_y + 2 * cfg.n_y
        variables += 3
    return params, variables


def _counts(glow):
    return sum(int(np.prod(v.shape)) for v in glow.trainable_variables), len(glow.trainable_variables)


CIFAR = dict(image_size=32, n_levels=3, depth=32, width=512, learntop=True, n_bits_x=8)


@pytest.mark.parametrize("kwargs, expected", [
    (dict(CIFAR, flow_coupling="affine", flow_permutation="invconv"), 44_603_604),
    (dict(CIFAR, flow_coupling="additive", flow_permutation="invconv", ycond=True, weight_y=0.01, n_y=10),
     38_397_320),
    pytest.param(dict(image_size=256, n_levels=6, depth=32, width=512, flow_coupling="additive", learntop=True,
                      n_bits_x=5), 175_099_620, marks=pytest.mark.slow),
], ids=["cifar10", "conditional_cifar10", "celeba_hq"])
def test_parameter_count_equals_the_originals(kwargs, expected):
    config = GlowConfig(**kwargs)
    params, n_variables = _counts(Glow(config, seed=0))
    assert params == expected
    assert (params, n_variables) == _expected_counts(config)


@pytest.mark.parametrize("kwargs", [
    dict(TINY),
    dict(TINY, flow_coupling="affine", learntop=True),
    dict(TINY, flow_permutation="shuffle", ycond=True, n_y=3),
    dict(TINY, flow_permutation="reverse", ycond=True, n_y=4, weight_y=1.0, flow_coupling="affine"),
    dict(TINY, lu=True, learntop=True, ycond=True, n_y=5, weight_y=0.5),
    dict(image_size=16, n_levels=4, depth=1, width=12, flow_coupling="affine"),
])
def test_parameter_count_follows_the_per_layer_formula(kwargs):
    config = GlowConfig(**kwargs)
    assert _counts(Glow(config, seed=0)) == _expected_counts(config)


# --- one flow step ---------------------------------------------------------------------------------
STEP_CONFIGS = [dict(flow_permutation=p, flow_coupling=c, lu=lu)
                for p, lu in (("reverse", False), ("shuffle", False), ("invconv", False), ("invconv", True))
                for c in ("additive", "affine")]


def _step(kwargs, seed=0, c=4):
    step = FlowStep(c, GlowConfig(width=8, **kwargs), np.random.RandomState(seed))
    perturb(step, 0.2, seed=seed + 1)
    return step


@pytest.mark.parametrize("kwargs", STEP_CONFIGS, ids=lambda k: f"{k['flow_permutation']}{'_lu' if k['lu'] else ''}"
                                                               f"_{k['flow_coupling']}")
def test_flow_step_bijector_checks(kwargs):
    step = _step(kwargs)
    log_det = check_bijector(step, random_normal([2, 4, 4, 4], seed=2))
    assert np.all(np.abs(log_det) > 0.1)  # the actnorm alone makes it non-trivial


def test_flow_step_round_trip_in_both_regimes(run):
    step = _step(dict(flow_permutation="invconv", flow_coupling="affine", lu=False))
    x = random_normal([2, 4, 4, 4], seed=3)
    np.testing.assert_allclose(run(lambda v: step.forward(tf.identity(step.inverse(v))))(x), x, atol=1e-5)


def test_flow_step_encodes_actnorm_then_permutation_then_coupling():
    step = _step(dict(flow_permutation="invconv", flow_coupling="affine", lu=False))
    x = random_normal([2, 4, 4, 4], seed=4)
    h, ld0 = step.actnorm.encode(x)
    h, ld1 = step.permutation.encode(h)
    h, ld2 = step.coupling.encode(h)
    z, log_det = step.encode(x)
    np.testing.assert_allclose(z, h, atol=1e-6)
    np.testing.assert_allclose(log_det, ld0 + ld1 + ld2, rtol=1e-6)
    other_order = step.permutation.encode(step.actnorm.encode(step.coupling.encode(x)[0])[0])[0]
    assert not np.allclose(z, other_order, atol=1e-3)


def test_plain_and_lu_models_give_the_same_density_for_the_same_weights():
    """An LU model whose P, L, U, log_S, sign_S decompose the plain model's W (scipy.linalg.lu) and
    whose other variables are copied by their original names gives the same eps and bits_x."""
    config = GlowConfig(image_size=8, n_levels=2, depth=3, width=8, flow_coupling="affine", learntop=True)
    plain = _ready(config)
    lu = Glow(GlowConfig(**{**config.to_dict(), "lu": True}), seed=1)
    plain_vars, lu_vars = original_variable_map(plain), original_variable_map(lu)
    for name, var in plain_vars.items():
        if name.endswith("/invconv/W"):
            p, l, u = scipy.linalg.lu(var.numpy().astype(np.float64))
            s = np.diag(u)
            for factor, value in (("P", p), ("L", l), ("U", np.triu(u, k=1)), ("log_S", np.log(np.abs(s))),
                                  ("sign_S", np.sign(s))):
                lu_vars[name[:-1] + factor].assign(value.astype(np.float32))
        else:
            lu_vars[name].assign(var)
    x = _images(4, 8, seed=3)
    noise = _noise(x.shape, 256.0, seed=4)
    for e_lu, e_plain in zip(lu.encode(x, noise=noise), plain.encode(x, noise=noise)):
        np.testing.assert_allclose(e_lu, e_plain, atol=1e-5)
    np.testing.assert_allclose(lu.objective(x, noise=noise)["bits_x"], plain.objective(x, noise=noise)["bits_x"],
                               atol=1e-6)


# --- data-dependent init -------------------------------------------------------------------------
def test_initialize_normalises_every_actnorm_on_the_encode_path(monkeypatch):
    config = GlowConfig(image_size=8, n_levels=2, depth=2, width=16, flow_coupling="affine", learntop=True)
    glow = Glow(config, seed=0)
    perturb(glow, 0.05, seed=1)  # non-zero couplings, so later actnorms see transformed data
    x, noise = _images(16, 8, seed=2), _noise([16, 8, 8, 3], 256.0, seed=3)
    glow.initialize(x, noise=noise)
    assert glow.is_initialized

    # run the same input again, recording what every actnorm outputs with its stored values
    outputs, encode = {}, ActNorm.encode

    def recording_encode(self, v):
        z, log_det = encode(self, v)
        outputs[id(self)] = z.numpy()
        return z, log_det

    call = Conv2D.__call__

    def recording_call(self, v):  # l_1 and l_2 apply their actnorm folded into the convolution
        z = call(self, v)
        outputs[id(self.actnorm)] = z.numpy()
        return z

    monkeypatch.setattr(ActNorm, "encode", recording_encode)
    monkeypatch.setattr(Conv2D, "__call__", recording_call)
    glow.objective(x, noise=noise)
    actnorms = [m for m in glow.submodules if isinstance(m, ActNorm)]
    assert len(actnorms) == 3 * config.depth * config.n_levels  # the step's, l_1's and l_2's
    assert set(outputs) == {id(a) for a in actnorms}
    for a in actnorms:
        out = outputs[id(a)]
        np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0.0, atol=1e-4, err_msg=a.name)
        np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1.0, rtol=1e-3, err_msg=a.name)


def test_initialize_refuses_to_run_inside_tf_function():
    glow = Glow(GlowConfig(**TINY), seed=0)
    with pytest.raises(RuntimeError, match="eagerly"):
        tf.function(lambda x: glow.initialize(x))(_images(2, 8))


# --- the objective --------------------------------------------------------------------------------
@pytest.mark.parametrize("permutation, learntop", [("reverse", False), ("shuffle", False), ("invconv", False),
                                                   ("invconv", True)])
@pytest.mark.parametrize("n_bits_x", [8, 5])
def test_objective_in_closed_form_before_init(permutation, learntop, n_bits_x):
    """Additive coupling, no DDI: every zero layer outputs 0, actnorms are identities, the 1x1 convs
    orthogonal and the priors N(0, I), so encode is an isometry and bits_x has a closed form."""
    config = GlowConfig(image_size=16, n_levels=3, depth=3, width=8, flow_permutation=permutation,
                        learntop=learntop, n_bits_x=n_bits_x)
    glow = Glow(config, seed=0)
    x = _images(3, 16, seed=1)
    noise = _noise(x.shape, config.n_bins, seed=2)
    bits_x = glow.objective(x, noise=noise)["bits_x"].numpy()
    z = np.floor(x / 2 ** (8 - n_bits_x)) / config.n_bins - 0.5 + noise  # the dequantised input, by hand
    d = config.n_dims
    expected = (0.5 * (z.astype(np.float64) ** 2).sum(axis=(1, 2, 3)) + d / 2 * math.log(2 * math.pi)
                + d * math.log(config.n_bins)) / (d * math.log(2))
    np.testing.assert_allclose(bits_x, expected, atol=1e-5)
    eps = glow.encode_dequantized(glow.dequantize(x, noise))[0]
    np.testing.assert_allclose(sum(float(tf.reduce_sum(e ** 2)) for e in eps), (z ** 2).sum(), rtol=1e-5)


def test_objective_terms_and_classifier_head():
    config = GlowConfig(**TINY, ycond=True, n_y=3, weight_y=0.5, flow_coupling="affine")
    glow = _ready(config)
    x, y = _images(4, 8, seed=5), np.array([0, 1, 2, 1])
    noise = _noise(x.shape, 256.0, seed=6)
    out = glow.objective(x, y, noise=noise)
    logits = out["y_logits"].numpy().astype(np.float64)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(out["bits_y"], -log_softmax[np.arange(4), y] / math.log(2), rtol=1e-5)
    np.testing.assert_allclose(out["pred_loss"], (logits.argmax(axis=1) != y).astype(np.float32))
    np.testing.assert_allclose(out["loss"], out["bits_x"] + 0.5 * out["bits_y"], rtol=1e-6)
    plain = _ready(GlowConfig(**TINY)).objective(x, noise=noise)
    np.testing.assert_array_equal(plain["bits_y"], 0.0)
    np.testing.assert_array_equal(plain["pred_loss"], 1.0)  # the original logs 1 without a head
    assert "y_logits" not in plain


# --- round trips --------------------------------------------------------------------------------
ROUND_TRIP_CONFIGS = {
    "plain_additive": dict(flow_coupling="additive"),
    "plain_affine": dict(flow_coupling="affine", n_bits_x=5),
    "lu_additive": dict(flow_coupling="additive", lu=True, n_bits_x=5),
    "lu_affine": dict(flow_coupling="affine", lu=True, learntop=True),
}


@pytest.fixture(scope="module", params=sorted(ROUND_TRIP_CONFIGS))
def deep_model(request):
    """L=3, K=32 with small width and 16x16 images, every layer non-trivial."""
    config = GlowConfig(image_size=16, n_levels=3, depth=32, width=16, flow_permutation="invconv",
                        **ROUND_TRIP_CONFIGS[request.param])
    return _ready(config, n_init=16)


def test_deep_model_round_trip_of_the_dequantised_input(deep_model):
    glow = deep_model
    x = _images(4, 16, seed=7)
    noise = _noise(x.shape, glow.config.n_bins, seed=8)
    eps = glow.encode_dequantized(glow.dequantize(x, noise))[0]
    assert [tuple(e.shape[1:]) for e in eps] == glow.config.eps_shapes
    assert all(float(tf.math.reduce_std(e)) > 0.1 for e in eps)
    np.testing.assert_allclose(glow.decode_with_log_det(eps)[0], glow.dequantize(x, noise), atol=1e-4)


def test_deep_model_reconstructs_uint8_images_bit_exactly(deep_model):
    """postprocess(decode(encode(x))) == x with its low 8 - n_bits_x bits cleared (original §2.10).
    The noise stays 5% of a bin away from the bin edges: right at an edge float round-off may
    legitimately land in the neighbouring bin, in the original too."""
    glow = deep_model
    x = _images(4, 16, seed=9)
    noise = _noise(x.shape, glow.config.n_bins, seed=10, low=0.05, high=0.95)
    eps = glow.encode_dequantized(glow.dequantize(x, noise))[0]
    x_back = glow.postprocess(glow.decode_with_log_det(eps)[0]).numpy()
    low_bits = 8 - glow.config.n_bits_x
    np.testing.assert_array_equal(x_back, (x >> low_bits) << low_bits)


# --- pixels <-> model space ---------------------------------------------------------------------
@pytest.mark.parametrize("n_bits_x", [8, 5])
@pytest.mark.parametrize("noise_in_bins", [0.0, 0.5, 0.999])
def test_postprocess_inverts_preprocess_plus_noise_for_every_value(n_bits_x, noise_in_bins):
    """0.999: 'just below 1/n_bins' as float32 can hold it; within ~1e-7 of the edge, x + noise rounds
    to the next bin's value (in the original too)."""
    glow = Glow(GlowConfig(image_size=16, n_levels=1, depth=1, width=2, n_bits_x=n_bits_x), seed=0)
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=-1)
    noise = np.full(x.shape, noise_in_bins / glow.config.n_bins, np.float32)
    z = glow.dequantize(x, noise)
    np.testing.assert_allclose(glow.preprocess(x), np.floor(x / 2 ** (8 - n_bits_x)) / 2 ** n_bits_x - 0.5)
    low_bits = 8 - n_bits_x
    np.testing.assert_array_equal(glow.postprocess(z), (x >> low_bits) << low_bits)


@pytest.mark.parametrize("n_bits_x", [8, 5])
def test_dequantisation_noise_is_uniform_over_one_bin_not_centred(n_bits_x):
    """U(0, 1) in bins, read back as dequantize(x) - preprocess(x): that subtraction rounds in float32
    (|x| <= 0.5, one ulp is 2**-24), so a draw within an ulp of a bin's edge can read as 0 or 1 exactly;
    the bounds allow that round-off (n_bins * 2**-23 bins) and no more."""
    glow = Glow(GlowConfig(image_size=32, n_levels=1, depth=1, width=2, n_bits_x=n_bits_x), seed=0)
    x = _images(16, 32, seed=0)
    noise = (glow.dequantize(x, seed=[3, 4]) - glow.preprocess(x)).numpy() * glow.config.n_bins  # in bins
    round_off = glow.config.n_bins * 2.0 ** -23
    assert noise.min() >= -round_off and noise.max() <= 1.0 + round_off
    np.testing.assert_allclose([noise.mean(), noise.var()], [0.5, 1 / 12], atol=0.01)  # U(0, 1)
    np.testing.assert_array_equal(glow.dequantize(x, seed=[1, 2]), glow.dequantize(x, seed=[1, 2]))
    assert not np.array_equal(glow.dequantize(x), glow.dequantize(x))  # fresh draws, as the original


def test_postprocess_saturates_at_255():
    for n_bits_x, top in ((8, 255), (5, 248)):
        glow = Glow(GlowConfig(image_size=2, n_levels=1, depth=1, width=2, n_bits_x=n_bits_x), seed=0)
        values = tf.constant([-0.7, -0.5, 0.5 - 1.5 / glow.config.n_bins, 0.4999, 0.5, 0.9])
        np.testing.assert_array_equal(glow.postprocess(values), [0, 0, top - 256 // 2 ** n_bits_x, top, 255, 255])


# --- the TFP view --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model():
    return _ready(GlowConfig(**TINY, flow_coupling="affine", learntop=True))


def test_distribution_log_prob_is_the_objective(tiny_model):
    glow = tiny_model
    x = _images(3, 8, seed=11)
    noise = _noise(x.shape, 256.0, seed=12)
    bits_x = glow.objective(x, noise=noise)["bits_x"].numpy().astype(np.float64)
    d = glow.config.n_dims
    log_prob = glow.distribution().log_prob(glow.dequantize(x, noise))
    np.testing.assert_allclose(log_prob, -(bits_x * d * math.log(2)) + d * math.log(256.0), rtol=1e-5)


def test_distribution_samples_images(tiny_model):
    dist = tiny_model.distribution()
    assert dist.sample(seed=1).shape == (8, 8, 3)
    assert dist.sample(2, seed=1).shape == (2, 8, 8, 3)
    assert dist.sample([2, 3], seed=1).shape == (2, 3, 8, 8, 3)
    assert dist.event_shape == (8, 8, 3)
    x = dist.sample([2, 3], seed=2)
    np.testing.assert_allclose(dist.log_prob(x)[1, 2], dist.log_prob(x[1, 2:3])[0], rtol=1e-5)


def test_bijector_round_trip_with_flat_eps(tiny_model):
    glow = tiny_model
    bijector = glow.bijector()
    eps = random_normal([3, glow.config.n_dims], seed=13)
    x = bijector.forward(eps)
    assert x.shape == (3, 8, 8, 3)
    np.testing.assert_allclose(bijector.inverse(tf.identity(x)), eps, atol=1e-4)
    fldj = bijector.forward_log_det_jacobian(tf.identity(eps), event_ndims=1)
    ildj = bijector.inverse_log_det_jacobian(tf.identity(x), event_ndims=3)
    np.testing.assert_allclose(fldj, -ildj, atol=1e-4)
    np.testing.assert_allclose(glow.eps_to_flat(glow.flat_to_eps(eps)), eps)


def test_bijector_log_det_matches_the_jacobian(tiny_model):
    glow = tiny_model
    bijector = glow.bijector()
    x = glow.dequantize(_images(2, 8, seed=14), seed=[1, 2])
    expected = jacobian_log_det(bijector.inverse, x)
    np.testing.assert_allclose(bijector.inverse_log_det_jacobian(tf.identity(x), event_ndims=3), expected, atol=2e-3)
    assert np.all(np.abs(expected) > 1.0)
    eps = bijector.inverse(tf.identity(x))
    np.testing.assert_allclose(bijector.forward_log_det_jacobian(tf.identity(eps), event_ndims=1),
                               jacobian_log_det(bijector.forward, eps), atol=2e-3)


def test_eager_and_tf_function_agree(tiny_model):
    glow = tiny_model
    x = _images(2, 8, seed=15)
    noise = _noise(x.shape, 256.0, seed=16)
    eager = glow.objective(x, noise=noise)["bits_x"]
    traced = tf.function(lambda x, n: glow.objective(x, noise=n)["bits_x"])(x, noise)
    np.testing.assert_allclose(traced, eager, rtol=1e-6)
    eps = glow.encode_dequantized(glow.dequantize(x, noise))[0]
    decode = lambda e: glow.decode_with_log_det(e)[0]  # noqa: E731
    np.testing.assert_allclose(tf.function(decode)(eps), decode(eps), atol=1e-6)
    sample = lambda: decode(glow.temperature_eps(2, 0.7, seed=[3, 4]))  # noqa: E731
    np.testing.assert_allclose(tf.function(sample)(), sample(), atol=1e-6)


# --- temperature -----------------------------------------------------------------------------------
def test_sample_is_decode_of_scaled_unit_normals(tiny_model):
    glow = tiny_model
    eps = glow.temperature_eps(3, 1.0, seed=[5, 6])
    decode = lambda e: glow.decode_with_log_det(e)[0]  # noqa: E731
    sample = lambda t: decode(glow.temperature_eps(3, t, seed=[5, 6]))  # noqa: E731
    np.testing.assert_allclose(sample(0.7), decode([e * 0.7 for e in eps]), atol=1e-6)
    per_example = tf.constant([0.0, 0.5, 1.0])
    expected = decode([e * tf.reshape(per_example, [-1, 1, 1, 1]) for e in eps])
    np.testing.assert_allclose(sample(per_example), expected, atol=1e-6)
    per_level = [0.3, 0.9]
    np.testing.assert_allclose(sample(per_level), decode([e * t for e, t in zip(eps, per_level)]), atol=1e-6)


def test_temperature_zero_is_deterministic(tiny_model):
    glow = tiny_model
    sample = lambda t, seed: glow.decode_with_log_det(glow.temperature_eps(2, t, seed=seed))[0]  # noqa: E731
    np.testing.assert_array_equal(sample(0.0, [1, 2]), sample(0.0, [7, 8]))
    assert not np.allclose(sample(1.0, [1, 2]), sample(1.0, [7, 8]))


# --- variable tracking ------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    dict(flow_coupling="affine", flow_permutation="invconv", learntop=True, ycond=True, n_y=3, weight_y=0.5),
    dict(flow_coupling="additive", lu=True, learntop=True),
    dict(flow_coupling="affine", flow_permutation="shuffle"),
], ids=["affine_invconv_ycond", "additive_lu", "affine_shuffle"])
def test_every_trainable_variable_gets_a_gradient(kwargs):
    config = GlowConfig(**TINY, **kwargs)
    glow = _ready(config)
    assert _counts(glow) == _expected_counts(config)
    x = _images(4, 8, seed=17)
    y = np.array([0, 1, 2, 0]) if config.ycond else None
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(glow.objective(x, y, noise=_noise(x.shape, 256.0, seed=18))["loss"])
    grads = tape.gradient(loss, glow.trainable_variables)
    without = [v.name for v, g in zip(glow.trainable_variables, grads) if g is None or not np.any(g.numpy())]
    assert not without, f"no gradient reaches {without}"


# --- bad input ------------------------------------------------------------------------------------
def test_images_of_the_wrong_shape_are_refused():
    glow = Glow(GlowConfig(**TINY), seed=0)
    with pytest.raises(ValueError, match=r"images must be \[N, 8, 8, 3\] for this model, got shape \(2, 16, 16, 3\)"):
        glow.objective(_images(2, 16))
    with pytest.raises(ValueError, match=r"got shape \(8, 8, 3\)"):
        glow.objective(_images(1, 8)[0])


def test_labels_are_required_and_checked_for_a_ycond_model():
    glow = Glow(GlowConfig(**TINY, ycond=True, n_y=3), seed=0)
    x = _images(2, 8)
    with pytest.raises(ValueError, match="ycond=True.*pass the labels y"):
        glow.objective(x)
    with pytest.raises(ValueError, match=r"class 3 is out of range: the model has n_y=3 classes \(0..2\)"):
        glow.objective(x, np.array([0, 3]))
    with pytest.raises(ValueError, match="class -1 is out of range"):
        glow.objective(x, np.array([-1, 0]))
    with pytest.raises(ValueError, match=r"class labels y=\[0.0, 1.0\] are float32; expected integer classes 0..2"):
        glow.objective(x, np.array([0.0, 1.0], np.float32))
    with pytest.raises(ValueError, match="3 class labels given for 2 images; expected one class for all images"):
        glow.objective(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="1 class labels given for 2 images"):
        glow.decode_with_log_det(glow.temperature_eps(2), np.array([1]))
    with pytest.raises(ValueError, match="ycond=True.*pass the labels y"):
        glow.decode_with_log_det(glow.temperature_eps(2, 0.5))


def test_latents_of_the_wrong_number_or_shape_are_refused():
    glow = Glow(GlowConfig(**TINY), seed=0)
    eps = glow.temperature_eps(2)
    with pytest.raises(ValueError, match="1 latent arrays given; this model has 2 levels"):
        glow.decode_with_log_det(eps[:1])
    with pytest.raises(ValueError, match=r"eps\[0\] must be \[N, 4, 4, 6\], got shape \(2, 4, 4, 12\)"):
        glow.decode_with_log_det([tf.zeros([2, 4, 4, 12]), eps[1]])
    with pytest.raises(ValueError, match=r"flat latents must be \[N, 192\] for this model, got shape \(2, 190\)"):
        glow.decode_with_log_det(tf.zeros([2, 190]))
    with pytest.raises(ValueError, match="3 per-level temperatures given; the model has 2 levels"):
        glow.temperature_eps(2, [0.5, 0.5, 0.5])


def test_config_must_be_a_glow_config():
    with pytest.raises(TypeError, match="config must be a GlowConfig, got dict"):
        Glow(dict(TINY))


def test_fast_layers_compute_the_literal_model(monkeypatch):
    """The speed forms of the layers (tap-form convolutions, actnorms folded into the filters) against
    the layers as the original writes them, on a model large enough for the tap form (32x32, width
    128: level 1's l_last is 129 -> 12 channels at 16x16): bits/dim, every gradient, eps, decode."""
    import glow_tf.bijectors.networks as layers
    config = GlowConfig(image_size=32, n_levels=2, depth=2, width=128, flow_coupling="affine", learntop=True)
    glow = Glow(config, seed=0)
    x, noise = _images(4, 32, seed=5), _noise([4, 32, 32, 3], 256.0, seed=6)
    glow.initialize(x, noise=noise)
    perturb(glow, 0.01, seed=7)  # non-zero l_last, biases and scales everywhere
    assert layers.tap_form_is_faster(tf.zeros([4, 16, 16, 128]), glow.levels[0].steps[0].coupling.f1.l_last.W)

    def run():
        with tf.GradientTape() as tape:
            bits = glow.objective(tf.identity(x), noise=noise)["bits_x"]
        eps = glow.encode_dequantized(glow.dequantize(x, noise))[0]
        grads = tape.gradient(tf.reduce_sum(bits), glow.trainable_variables, unconnected_gradients="zero")
        return [bits, *grads, *eps,
                glow.decode_with_log_det([tf.identity(e) for e in eps])[0]]

    fast = run()
    np.testing.assert_allclose(fast[-1], glow.dequantize(x, noise), atol=1e-4)  # a well-conditioned model

    def literal_conv(h, w):  # tfops.conv2d's core: edge padding for 3x3 filters, then 'VALID'
        return tf.nn.conv2d(layers.add_edge_padding(h, 3) if w.shape[0] == 3 else h, w, 1, "VALID")

    monkeypatch.setattr(layers.Conv2D, "__call__",
                        lambda self, h: (literal_conv(h, self.W) + self.actnorm.b) * tf.exp(self.actnorm.logs))
    monkeypatch.setattr(layers.Conv2DZeros, "__call__",
                        lambda self, h: (literal_conv(h, self.W) + self.b) * tf.exp(3.0 * self.logs))
    literal = run()
    assert len(fast) == len(literal)
    for a, b in zip(fast, literal):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, float(tf.reduce_max(tf.abs(b)))))


@pytest.mark.slow
def test_tap_form_gradients_under_checkpointing_and_xla():
    """The tap form's hand-written gradient inside tf.recompute_grad (train.py's default
    --gradient_checkpointing 1) and under XLA (--jit 1): the same loss and gradients as autodiff
    through TensorFlow's convolution."""
    import glow_tf.bijectors.networks as layers
    config = GlowConfig(image_size=32, n_levels=2, depth=2, width=128, flow_coupling="affine", learntop=True)
    glow = Glow(config, seed=0)
    x, noise = _images(4, 32, seed=8), _noise([4, 32, 32, 3], 256.0, seed=9)
    glow.initialize(x, noise=noise)
    perturb(glow, 0.01, seed=10)
    assert layers.tap_form_is_faster(tf.zeros([4, 16, 16, 128]), glow.levels[0].steps[0].coupling.f1.l_last.W)

    def loss_and_grads(checkpointing, jit):
        glow.gradient_checkpointing = checkpointing

        @tf.function(jit_compile=jit)
        def f(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(glow.objective(x, noise=noise)["bits_x"])
            return [loss, *tape.gradient(loss, glow.trainable_variables, unconnected_gradients="zero")]
        return f(tf.constant(x))

    with layers.conv_form("plain"):
        plain = loss_and_grads(False, False)
    for checkpointing, jit in ((False, False), (True, False), (True, True)):
        for a, b in zip(loss_and_grads(checkpointing, jit), plain):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * max(1e-3, float(tf.reduce_max(tf.abs(b)))))
