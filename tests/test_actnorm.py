"""ActNorm (openai tfops.actnorm): formula, data-dependent init, the checkpointed `initialized` flag,
and the TFP cache trap that the shared checks in bijector_checks.py defeat."""
import numpy as np
import pytest
import tensorflow as tf

from bijector_checks import assert_log_det_matches_jacobian, assert_round_trip, check_bijector, random_normal
from glow_tf.bijectors import ActNorm, data_dependent_init

SHAPE = [3, 4, 4, 5]


def _actnorm_with_random_parameters(seed=0, c=SHAPE[-1]):
    actnorm = ActNorm(c)
    rng = np.random.RandomState(seed)
    actnorm.b.assign(rng.normal(0, 1, [1, 1, 1, c]).astype(np.float32))
    actnorm.logs_var.assign(rng.normal(0, 0.3, [1, 1, 1, c]).astype(np.float32))
    return actnorm


def test_encode_is_bias_then_scale_with_logscale_factor_3():
    actnorm = _actnorm_with_random_parameters()
    x = random_normal(SHAPE, seed=1)
    z, log_det = actnorm.encode(x)
    b, logs = actnorm.b.numpy(), 3.0 * actnorm.logs_var.numpy()
    np.testing.assert_allclose(z, (x.numpy() + b) * np.exp(logs), rtol=1e-6)
    # the per-pixel log-det summed over H*W = 16 positions (tfops.actnorm_scale: logdet_factor = h*w)
    np.testing.assert_allclose(log_det, 16 * logs.sum(), rtol=1e-6)
    x_back, minus_log_det = actnorm.decode(z)
    np.testing.assert_allclose(x_back, x, atol=1e-5)
    np.testing.assert_allclose(minus_log_det, -16 * logs.sum(), rtol=1e-6)


def test_bijector_checks():
    check_bijector(_actnorm_with_random_parameters(), random_normal(SHAPE, seed=2, scale=2.0))


def test_round_trip_in_both_regimes(run):
    actnorm = _actnorm_with_random_parameters()
    x = random_normal(SHAPE, seed=3)
    x_back = run(lambda v: actnorm.forward(tf.identity(actnorm.inverse(v))))(x)
    np.testing.assert_allclose(x_back, x, atol=1e-5)


def test_initialize_gives_zero_mean_unit_std_per_channel():
    x = random_normal([8, 4, 4, 5], seed=4, scale=[0.1, 1.0, 3.0, 10.0, 0.5], shift=[-2, 0, 1, 5, 10])
    actnorm = ActNorm(5)
    actnorm.initialize(x)
    z = actnorm.encode(x)[0].numpy()
    np.testing.assert_allclose(z.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 1, 2)), 1.0, rtol=1e-4)
    # the stored values: b = -mean, logs_var = log(1 / (biased std + 1e-6)) / 3 (tfops.actnorm_scale)
    xn = x.numpy().astype(np.float64)
    np.testing.assert_allclose(actnorm.b.numpy().ravel(), -xn.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(actnorm.logs_var.numpy().ravel(), np.log(1 / (xn.std(axis=(0, 1, 2)) + 1e-6)) / 3,
                               rtol=1e-4, atol=1e-6)
    assert bool(actnorm.initialized)


def test_uninitialised_actnorm_is_the_identity_outside_ddi():
    actnorm = ActNorm(5)
    x = random_normal(SHAPE, seed=5, scale=3.0)
    z, log_det = actnorm.encode(x)
    np.testing.assert_array_equal(z, x)
    assert float(log_det) == 0.0
    assert not bool(actnorm.initialized)


def test_ddi_initialises_once_then_never_again():
    actnorm = ActNorm(5)
    first = random_normal(SHAPE, seed=6, scale=3.0, shift=1.0)
    with data_dependent_init():
        z = actnorm.encode(first)[0].numpy()
        b, logs = actnorm.b.numpy().copy(), actnorm.logs_var.numpy().copy()
        actnorm.encode(random_normal(SHAPE, seed=7, scale=0.1, shift=-4.0))
    np.testing.assert_allclose(z.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)  # that very pass is normalised
    np.testing.assert_array_equal(actnorm.b.numpy(), b)
    np.testing.assert_array_equal(actnorm.logs_var.numpy(), logs)


def test_initialized_flag_survives_a_checkpoint_round_trip(tmp_path):
    actnorm = ActNorm(5)
    with data_dependent_init():
        actnorm.encode(random_normal(SHAPE, seed=8, scale=2.0, shift=1.0))
    path = tf.train.Checkpoint(layer=actnorm).write(str(tmp_path / "ckpt"))
    restored = ActNorm(5)
    assert not bool(restored.initialized)
    tf.train.Checkpoint(layer=restored).read(path).assert_consumed()
    assert bool(restored.initialized)
    with data_dependent_init():  # other data: must not re-initialise a restored layer
        restored.encode(random_normal(SHAPE, seed=9, scale=0.1, shift=-4.0))
    np.testing.assert_array_equal(restored.b.numpy(), actnorm.b.numpy())
    np.testing.assert_array_equal(restored.logs_var.numpy(), actnorm.logs_var.numpy())


# --- the checks themselves must be able to fail -------------------------------------------------
class _WrongInverse(ActNorm):
    """decode forgets the bias: a bug a naive round trip cannot see."""

    def decode(self, z):
        return z * tf.exp(-self.logs), -self._log_det(z)


class _WrongLogDetSign(ActNorm):
    """Both log-dets negated: still fldj == -ildj, only the Jacobian check catches it."""

    def encode(self, x):
        z, log_det = super().encode(x)
        return z, -log_det

    def decode(self, z):
        x, log_det = super().decode(z)
        return x, -log_det


def _make_nontrivial(actnorm):
    actnorm.b.assign(tf.fill([1, 1, 1, 5], 0.7))
    actnorm.logs_var.assign(tf.fill([1, 1, 1, 5], 0.2))
    return actnorm


def test_the_cache_trap_exists_and_the_checks_defeat_it():
    actnorm = _make_nontrivial(_WrongInverse(5))
    x = random_normal(SHAPE, seed=10)
    z = actnorm.inverse(x)
    np.testing.assert_allclose(actnorm.forward(z), x)  # passes: TFP returns x from its cache
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(actnorm.forward(tf.identity(z)), x, atol=1e-3)
    with pytest.raises(AssertionError, match="forward"):
        assert_round_trip(actnorm, x)


def test_the_jacobian_check_catches_a_log_det_sign_error():
    actnorm = _make_nontrivial(_WrongLogDetSign(5))
    x = random_normal(SHAPE, seed=11)
    assert_round_trip(actnorm, x)  # consistent, so the round trip cannot tell
    with pytest.raises(AssertionError, match="Jacobian"):
        assert_log_det_matches_jacobian(actnorm, x)
