"""Split with its learned conditional prior (openai split2d / split2d_prior) and the top prior
(openai model.py:prior with learntop / ycond)."""
import math

import numpy as np
import pytest
import tensorflow as tf

from bijector_checks import check_bijector, perturb, random_normal
from glow_tf.bijectors import Split, TopPrior

C = 4
SHAPE = [2, 4, 4, C]
TOP = (4, 4, C)


def _gaussian_diag_logp(x, mean, logsd):
    """openai tfops.gaussian_diag(mean, logsd).logp(x), summed per example."""
    logps = -0.5 * (math.log(2 * math.pi) + 2.0 * logsd + (x - mean) ** 2 / np.exp(2.0 * logsd))
    return logps.reshape(logps.shape[0], -1).sum(axis=1)


def _normal_logp(eps):
    return (-0.5 * (math.log(2 * math.pi) + eps ** 2)).reshape(eps.shape[0], -1).sum(axis=1)


# --- split -------------------------------------------------------------------------------------
def test_split_prior_is_read_interleaved_and_standardises_the_second_half():
    split = Split(C)
    perturb(split, 0.3, seed=0)
    x = random_normal(SHAPE, seed=1)
    z1, z2 = x.numpy()[..., :C // 2], x.numpy()[..., C // 2:]
    h = split.conv(tf.constant(z1)).numpy()
    assert h.shape[-1] == C  # conv2d_zeros(z1, 2 * C1)
    mean, logs = h[..., 0::2], h[..., 1::2]
    z, log_det = split.encode(x)
    np.testing.assert_array_equal(z[..., :C // 2], z1)  # the FIRST half is kept
    eps = z.numpy()[..., C // 2:]
    np.testing.assert_allclose(eps, (z2 - mean) / np.exp(logs), rtol=1e-5, atol=1e-6)
    assert not np.allclose(eps, (z2 - h[..., :C // 2]) / np.exp(h[..., C // 2:]), atol=1e-3)  # not halves
    # log N(eps) + log-det is the original's pz.logp(z2)
    np.testing.assert_allclose(_normal_logp(eps) + log_det.numpy(), _gaussian_diag_logp(z2, mean, logs), rtol=1e-5)


def test_split_prior_starts_as_a_standard_normal():
    x = random_normal(SHAPE, seed=2)
    z, log_det = Split(C).encode(x)
    np.testing.assert_array_equal(z, x)
    np.testing.assert_array_equal(log_det, [0.0, 0.0])


def test_split_bijector_checks():
    split = Split(C)
    perturb(split, 0.3, seed=3)
    log_det = check_bijector(split, random_normal(SHAPE, seed=4))
    assert np.all(np.abs(log_det) > 0.1)


def test_split_round_trip_in_both_regimes(run):
    split = Split(C)
    perturb(split, 0.3, seed=5)
    x = random_normal(SHAPE, seed=6)
    np.testing.assert_allclose(run(lambda v: split.forward(tf.identity(split.inverse(v))))(x), x, atol=1e-5)


def test_split_refuses_an_odd_channel_count():
    with pytest.raises(ValueError, match="even.*num_channels=5"):
        Split(5)


# --- top prior ----------------------------------------------------------------------------------
def _learntop_h(prior):
    """NumPy restatement of conv2d_zeros('p', zeros): only the edge-bias channel reaches the output,
    through the taps that fall on the zero padding."""
    h, w, c2 = TOP[0], TOP[1], 2 * TOP[2]
    weights = prior.p.W.numpy()  # [3, 3, c2 + 1, c2]; channel c2 is the edge indicator
    out = np.zeros([h, w, c2])
    for i in range(h):
        for j in range(w):
            for di in range(3):
                for dj in range(3):
                    if not (0 <= i + di - 1 < h and 0 <= j + dj - 1 < w):  # this tap reads padding
                        out[i, j] += weights[di, dj, c2]
    return (out + prior.p.b.numpy()[0, 0]) * np.exp(3.0 * prior.p.logs.numpy()[0])


def test_top_prior_without_flags_is_a_standard_normal():
    prior = TopPrior(TOP)
    z = random_normal(SHAPE, seed=7)
    eps, log_det = prior.encode(z)
    np.testing.assert_array_equal(eps, z)
    np.testing.assert_array_equal(log_det, [0.0, 0.0])
    assert prior.trainable_variables == ()


def test_learntop_reads_contiguous_halves_of_a_border_dependent_conv():
    prior = TopPrior(TOP, learntop=True)
    perturb(prior, 0.3, seed=8)
    h = _learntop_h(prior)
    mean, logs = h[..., :C], h[..., C:]
    z = random_normal(SHAPE, seed=9)
    eps, log_det = prior.encode(z)
    np.testing.assert_allclose(eps, (z.numpy() - mean) / np.exp(logs), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_det, [-logs.sum()] * 2, rtol=1e-5)
    np.testing.assert_allclose(_normal_logp(eps.numpy()) + log_det.numpy(), _gaussian_diag_logp(z.numpy(), mean, logs),
                               rtol=1e-5)
    # border and interior differ; the 2x2 interior is the same everywhere
    got_mean = prior.mean_and_logs()[0].numpy()[0]
    np.testing.assert_allclose(got_mean[1:3, 1:3], np.broadcast_to(got_mean[1, 1], [2, 2, C]), rtol=1e-6)
    assert not np.allclose(got_mean[0, 0], got_mean[1, 1], atol=1e-3)
    assert not np.allclose(got_mean[0, 1], got_mean[1, 1], atol=1e-3)
    assert not np.allclose(got_mean[0, 0], got_mean[0, 1], atol=1e-3)  # corner and edge differ too


def test_ycond_adds_a_per_class_shift_broadcast_over_space():
    prior = TopPrior(TOP, learntop=True, ycond=True, n_y=3)
    perturb(prior, 0.3, seed=10)
    y = np.array([2, 0])
    emb = prior.y_emb
    onehot = np.eye(3)[y]
    shift = (onehot @ emb.W.numpy() + emb.b.numpy()) * np.exp(3.0 * emb.logs.numpy())  # linear_zeros
    h = _learntop_h(prior)[None] + shift[:, None, None, :]
    z = random_normal(SHAPE, seed=11)
    eps, log_det = prior.encode(z, labels=y)
    np.testing.assert_allclose(eps, (z.numpy() - h[..., :C]) / np.exp(h[..., C:]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_det, -h[..., C:].sum(axis=(1, 2, 3)), rtol=1e-5)


@pytest.mark.parametrize("learntop, ycond", [(True, False), (False, True), (True, True)])
def test_top_prior_bijector_checks(learntop, ycond):
    prior = TopPrior(TOP, learntop=learntop, ycond=ycond, n_y=3)
    perturb(prior, 0.3, seed=12)
    condition = {"labels": np.array([1, 2])} if ycond else {}
    log_det = check_bijector(prior, random_normal(SHAPE, seed=13), **condition)
    assert np.all(np.abs(log_det) > 0.1)


def test_top_prior_round_trip_in_both_regimes(run):
    prior = TopPrior(TOP, learntop=True, ycond=True, n_y=3)
    perturb(prior, 0.3, seed=14)
    z, y = random_normal(SHAPE, seed=15), tf.constant([0, 2])
    round_trip = run(lambda v, y: prior.forward(tf.identity(prior.inverse(v, labels=y)), labels=y))
    np.testing.assert_allclose(round_trip(z, y), z, atol=1e-5)


def test_ycond_prior_needs_labels():
    with pytest.raises(ValueError, match="ycond=True.*labels y"):
        TopPrior(TOP, ycond=True, n_y=3).encode(random_normal(SHAPE))
