"""InvertibleConv1x1 and InvertibleConv1x1LU (openai model.py:invertible_1x1_conv, both branches)."""
import numpy as np
import scipy.linalg
import tensorflow as tf

from bijector_checks import check_bijector, random_normal
from glow_tf.bijectors import InvertibleConv1x1, InvertibleConv1x1LU

C = 4
SHAPE = [2, 3, 3, C]


def _random_w(seed, c=C):
    """A well-conditioned, non-orthogonal W with a negative determinant (log|det| must use abs)."""
    w = np.random.RandomState(seed).normal(0, 0.3, [c, c]) + np.eye(c)
    w[:, 0] *= -1
    assert np.linalg.det(w) < 0
    return w.astype(np.float32)


def _lu_from(w, garbage_seed=None):
    """An LU bijector whose P, L, U, log_S, sign_S decompose w (scipy.linalg.lu: w = p @ l @ u).

    With `garbage_seed`, the parts of L and U the original masks out (L's diagonal and upper part,
    U's diagonal and lower part) are filled with noise: they must not matter.
    """
    c = w.shape[0]
    p, l, u = scipy.linalg.lu(w.astype(np.float64))
    s = np.diag(u)
    stored_l, stored_u = l.copy(), np.triu(u, k=1)
    if garbage_seed is not None:
        g = np.random.RandomState(garbage_seed).normal(0, 1, [2, c, c])
        stored_l += np.triu(g[0])
        stored_u += np.tril(g[1])
    lu = InvertibleConv1x1LU(c, np.random.RandomState(0))
    for var, value in ((lu.P, p), (lu.L, stored_l), (lu.U, stored_u), (lu.log_S, np.log(np.abs(s))),
                       (lu.sign_S, np.sign(s))):
        var.assign(value.astype(np.float32))
    return lu


def _plain_with(w):
    conv = InvertibleConv1x1(w.shape[0], np.random.RandomState(0))
    conv.W.assign(w)
    return conv


def test_encode_is_x_times_w_per_pixel_and_log_det_is_hw_log_abs_det():
    w = _random_w(1)
    conv = _plain_with(w)
    x = random_normal(SHAPE, seed=2)
    z, log_det = conv.encode(x)
    np.testing.assert_allclose(z, np.einsum("nhwi,ij->nhwj", x.numpy(), w), atol=1e-5)
    np.testing.assert_allclose(log_det, 9 * np.linalg.slogdet(w.astype(np.float64))[1], rtol=1e-6)


def test_init_is_the_originals_random_orthogonal_matrix():
    conv = InvertibleConv1x1(C, np.random.RandomState(3))
    expected = np.linalg.qr(np.random.RandomState(3).standard_normal((C, C)))[0]
    np.testing.assert_allclose(conv.W.numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(conv.W.numpy() @ conv.W.numpy().T, np.eye(C), atol=1e-6)
    np.testing.assert_allclose(conv.encode(random_normal(SHAPE))[1], 0.0, atol=1e-5)


def test_plain_bijector_checks():
    check_bijector(_plain_with(_random_w(4)), random_normal(SHAPE, seed=5))


def test_plain_round_trip_in_both_regimes(run):
    conv = _plain_with(_random_w(4))
    x = random_normal(SHAPE, seed=6)
    np.testing.assert_allclose(run(lambda v: conv.forward(tf.identity(conv.inverse(v))))(x), x, atol=1e-5)


def test_lu_init_decomposes_a_random_orthogonal_matrix():
    lu = InvertibleConv1x1LU(C, np.random.RandomState(7))
    p, l, u = (f.numpy() for f in lu._factors())
    w = p @ l @ u
    np.testing.assert_allclose(w, np.linalg.qr(np.random.RandomState(7).standard_normal((C, C)))[0], atol=1e-6)
    np.testing.assert_allclose(lu.encode(random_normal(SHAPE))[1], 0.0, atol=1e-5)
    assert {v.name.split("/")[-1].split(":")[0] for v in lu.trainable_variables} == {"L", "U", "log_S"}
    assert {v.name.split("/")[-1].split(":")[0] for v in lu.non_trainable_variables} == {"P", "sign_S"}


def test_lu_bijector_checks():
    check_bijector(_lu_from(_random_w(8), garbage_seed=9), random_normal(SHAPE, seed=10))


def test_lu_round_trip_in_both_regimes(run):
    lu = _lu_from(_random_w(8), garbage_seed=9)
    x = random_normal(SHAPE, seed=11)
    np.testing.assert_allclose(run(lambda v: lu.forward(tf.identity(lu.inverse(v))))(x), x, atol=1e-5)


def test_plain_and_lu_give_the_same_density_for_the_same_w():
    w = _random_w(12)
    plain, lu = _plain_with(w), _lu_from(w, garbage_seed=13)
    x = random_normal(SHAPE, seed=14, scale=2.0)
    z_plain, ld_plain = plain.encode(x)
    z_lu, ld_lu = lu.encode(x)
    np.testing.assert_allclose(z_lu, z_plain, atol=1e-5)
    np.testing.assert_allclose(ld_lu, ld_plain, atol=1e-4)
    assert abs(float(ld_plain)) > 0.1  # a W with |det| far from 1: the comparison is not 0 == 0
    np.testing.assert_allclose(lu.decode(z_plain)[0], plain.decode(z_plain)[0], atol=1e-5)
