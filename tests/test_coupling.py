"""AdditiveCoupling and AffineCoupling (openai model.py:revnet2d_step, flow_coupling 0 and 1)."""
import numpy as np
import pytest
import tensorflow as tf

from bijector_checks import check_bijector, perturb, random_normal
from glow_tf.bijectors import AdditiveCoupling, AffineCoupling

C, WIDTH = 4, 8
SHAPE = [2, 4, 4, C]


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _coupling(kind, seed=0, scale=0.1):
    coupling = kind(C, WIDTH, np.random.RandomState(seed))
    perturb(coupling, scale, seed=seed + 100)
    return coupling


def test_affine_is_shift_then_scale_with_interleaved_outputs():
    coupling = _coupling(AffineCoupling)
    x = random_normal(SHAPE, seed=1)
    x1, x2 = x.numpy()[..., :C // 2], x.numpy()[..., C // 2:]
    h = coupling.f1(tf.constant(x1)).numpy()
    assert h.shape[-1] == C  # f has C outputs for the affine coupling
    shift, scale = h[..., 0::2], _sigmoid(h[..., 1::2] + 2.0)
    z, log_det = coupling.encode(x)
    np.testing.assert_array_equal(z[..., :C // 2], x1)  # the first half conditions, unchanged
    np.testing.assert_allclose(z[..., C // 2:], (x2 + shift) * scale, atol=1e-6)
    np.testing.assert_allclose(log_det, np.log(scale).sum(axis=(1, 2, 3)), rtol=1e-5)
    # the test can tell the original's order and interleave from the alternatives
    assert not np.allclose(z[..., C // 2:], x2 * scale + shift, atol=1e-3)
    halves_shift, halves_scale = h[..., :C // 2], _sigmoid(h[..., C // 2:] + 2.0)
    assert not np.allclose(z[..., C // 2:], (x2 + halves_shift) * halves_scale, atol=1e-3)


def test_additive_adds_f_of_the_first_half_to_the_second():
    coupling = _coupling(AdditiveCoupling)
    x = random_normal(SHAPE, seed=2)
    x1, x2 = x.numpy()[..., :C // 2], x.numpy()[..., C // 2:]
    f = coupling.f1(tf.constant(x1)).numpy()
    assert f.shape[-1] == C // 2 and np.abs(f).max() > 1e-2
    z, log_det = coupling.encode(x)
    np.testing.assert_array_equal(z[..., :C // 2], x1)
    np.testing.assert_allclose(z[..., C // 2:], x2 + f, atol=1e-6)
    assert log_det == 0.0


def test_at_init_additive_is_the_identity_and_affine_scales_by_sigmoid_2():
    x = random_normal(SHAPE, seed=3)
    additive = AdditiveCoupling(C, WIDTH, np.random.RandomState(0))
    np.testing.assert_array_equal(additive.encode(x)[0], x)
    affine = AffineCoupling(C, WIDTH, np.random.RandomState(0))
    z, log_det = affine.encode(x)
    s = _sigmoid(2.0)  # 0.880797: the affine coupling is NOT the identity at init
    np.testing.assert_allclose(z[..., C // 2:], x.numpy()[..., C // 2:] * s, rtol=1e-6)
    np.testing.assert_allclose(log_det, 4 * 4 * (C // 2) * np.log(s), rtol=1e-6)


def test_only_the_second_half_depends_on_the_first():
    coupling = _coupling(AffineCoupling)
    x = random_normal(SHAPE, seed=4)
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = coupling.encode(x)[0]
        z1_sum = tf.reduce_sum(z[..., :C // 2])
    grad = tape.gradient(z1_sum, x).numpy()
    np.testing.assert_array_equal(grad[..., C // 2:], 0.0)  # z1 ignores x2


@pytest.mark.parametrize("kind", [AdditiveCoupling, AffineCoupling])
def test_bijector_checks(kind):
    coupling = _coupling(kind, scale=0.3)
    log_det = check_bijector(coupling, random_normal(SHAPE, seed=5), atol=1e-5)
    if kind is AffineCoupling:
        assert np.all(np.abs(log_det) > 0.1)  # a non-trivial log-det was checked


@pytest.mark.parametrize("kind", [AdditiveCoupling, AffineCoupling])
def test_round_trip_in_both_regimes(kind, run):
    coupling = _coupling(kind, scale=0.3)
    x = random_normal(SHAPE, seed=6)
    np.testing.assert_allclose(run(lambda v: coupling.forward(tf.identity(coupling.inverse(v))))(x), x, atol=1e-5)


@pytest.mark.parametrize("kind, n_out", [(AdditiveCoupling, C // 2), (AffineCoupling, C)])
def test_network_has_the_originals_shapes(kind, n_out):
    f = kind(C, WIDTH, np.random.RandomState(0)).f1
    assert f.l_1.W.shape == (3, 3, C // 2 + 1, WIDTH)  # +1: the edge-bias channel
    assert f.l_2.W.shape == (1, 1, WIDTH, WIDTH)
    assert f.l_last.W.shape == (3, 3, WIDTH + 1, n_out)
    assert f.l_last.b.shape == (1, 1, 1, n_out) and f.l_last.logs.shape == (1, n_out)


@pytest.mark.parametrize("kind", [AdditiveCoupling, AffineCoupling])
def test_odd_channel_count_is_refused(kind):
    with pytest.raises(ValueError, match=f"{kind.__name__}.*even.*num_channels=5"):
        kind(5, WIDTH, np.random.RandomState(0))
