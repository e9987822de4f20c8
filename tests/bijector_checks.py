"""Checks every Glow bijector must pass (TFP glow_test / bijector_test_util, rewritten for pytest).

Direction convention: `x` is on the image side, `z` on the latent side; `encode`/`inverse` map x -> z,
`decode`/`forward` map z -> x. TFP caches forward/inverse results per input tensor in eager mode, so
a naive `inverse(forward(z))` returns `z` from the cache whatever `_inverse` computes; every check
here passes fresh tensors (`tf.identity`) to defeat it (TFP real_nvp_test: "Use identity to
invalidate cache").
"""
import numpy as np
import tensorflow as tf


def _fresh(t):
    return tf.identity(t)


def _per_example(log_det, n):
    """Log-dets may be scalars that broadcast over the batch: bring them to [n]."""
    return np.broadcast_to(np.asarray(log_det, dtype=np.float64), [n])


def assert_round_trip(bijector, x, atol=1e-5, **condition):
    """x -> z -> x and z -> x -> z, through TFP's `inverse`/`forward` (cache defeated) and through
    the fused `encode`/`decode`; fldj(z) == -ildj(x), fused and TFP log-dets agree."""
    x = tf.convert_to_tensor(x, tf.float32)
    n = x.shape[0]
    z = bijector.inverse(x, **condition)
    np.testing.assert_allclose(bijector.forward(_fresh(z), **condition), x, atol=atol, err_msg="forward(inverse(x))")
    x_from_z = bijector.forward(_fresh(z), **condition)
    np.testing.assert_allclose(bijector.inverse(_fresh(x_from_z), **condition), z, atol=atol,
                               err_msg="inverse(forward(z))")
    fldj = bijector.forward_log_det_jacobian(_fresh(z), event_ndims=3, **condition)
    ildj = bijector.inverse_log_det_jacobian(_fresh(x), event_ndims=3, **condition)
    np.testing.assert_allclose(_per_example(fldj, n), -_per_example(ildj, n), atol=atol, err_msg="fldj != -ildj")

    z_fused, ildj_fused = bijector.encode(_fresh(x), **condition)
    x_fused, fldj_fused = bijector.decode(_fresh(z_fused), **condition)
    np.testing.assert_allclose(z_fused, z, atol=atol, err_msg="encode(x) != inverse(x)")
    np.testing.assert_allclose(x_fused, x, atol=atol, err_msg="decode(encode(x))")
    np.testing.assert_allclose(_per_example(ildj_fused, n), _per_example(ildj, n), atol=atol,
                               err_msg="encode's log-det != inverse_log_det_jacobian")
    np.testing.assert_allclose(_per_example(fldj_fused, n), -_per_example(ildj_fused, n), atol=atol,
                               err_msg="decode's log-det != -encode's log-det")


def jacobian_log_det(fn, x):
    """log|det d fn(x) / dx| per example, from an autodiff Jacobian (float32) and slogdet in float64."""
    x = tf.convert_to_tensor(x, tf.float32)
    n = x.shape[0]
    flat = tf.reshape(x, [n, -1])
    with tf.GradientTape() as tape:
        tape.watch(flat)
        out = tf.reshape(fn(tf.reshape(flat, x.shape)), [n, -1])
    jacobian = tape.batch_jacobian(out, flat).numpy().astype(np.float64)
    assert jacobian.shape[1] == jacobian.shape[2], f"not square: {jacobian.shape}"
    sign, log_abs_det = np.linalg.slogdet(jacobian)
    assert np.all(sign != 0), "singular Jacobian"
    return log_abs_det


def assert_log_det_matches_jacobian(bijector, x, atol=1e-3, **condition):
    """ildj(x) and fldj(z) equal log|det| of the autodiff Jacobians of inverse and forward
    (TFP glow_test.testInverseLogDetJacobian). Returns the Jacobian log-det of the encode map."""
    x = tf.convert_to_tensor(x, tf.float32)
    n = x.shape[0]
    z = bijector.inverse(_fresh(x), **condition)
    expected_ildj = jacobian_log_det(lambda v: bijector.inverse(v, **condition), x)
    expected_fldj = jacobian_log_det(lambda v: bijector.forward(v, **condition), z)
    ildj = bijector.inverse_log_det_jacobian(_fresh(x), event_ndims=3, **condition)
    fldj = bijector.forward_log_det_jacobian(_fresh(z), event_ndims=3, **condition)
    np.testing.assert_allclose(_per_example(ildj, n), expected_ildj, atol=atol, rtol=1e-5, err_msg="ildj vs Jacobian")
    np.testing.assert_allclose(_per_example(fldj, n), expected_fldj, atol=atol, rtol=1e-5, err_msg="fldj vs Jacobian")
    return expected_ildj


def assert_eager_equals_function(bijector, x, atol=1e-5, **condition):
    """encode, decode, TFP inverse and forward give the same values and log-dets inside tf.function."""
    x = tf.convert_to_tensor(x, tf.float32)
    n = x.shape[0]
    z, ildj = bijector.encode(_fresh(x), **condition)
    x_back, fldj = bijector.decode(_fresh(z), **condition)
    z_t, ildj_t = tf.function(lambda v: bijector.encode(v, **condition))(_fresh(x))
    x_t, fldj_t = tf.function(lambda v: bijector.decode(v, **condition))(_fresh(z))
    for eager, traced, what in ((z, z_t, "encode"), (x_back, x_t, "decode"),
                                (_per_example(ildj, n), _per_example(ildj_t, n), "encode log-det"),
                                (_per_example(fldj, n), _per_example(fldj_t, n), "decode log-det")):
        np.testing.assert_allclose(traced, eager, atol=atol, err_msg=what)
    np.testing.assert_allclose(tf.function(lambda v: bijector.inverse(v, **condition))(_fresh(x)), z, atol=atol)
    np.testing.assert_allclose(tf.function(lambda v: bijector.forward(v, **condition))(_fresh(z)), x_back, atol=atol)


def check_bijector(bijector, x, atol=1e-5, jacobian_atol=1e-3, **condition):
    """All three checks; returns the Jacobian log-det of the encode map at x."""
    assert_round_trip(bijector, x, atol=atol, **condition)
    assert_eager_equals_function(bijector, x, atol=atol, **condition)
    return assert_log_det_matches_jacobian(bijector, x, atol=jacobian_atol, **condition)


def perturb(module, scale=0.02, seed=0):
    """Adds N(0, scale) noise to every trainable variable of `module`, so that zero-initialised layers
    (coupling outputs, priors) and actnorms are no longer identities and the tests can see them."""
    rng = np.random.RandomState(seed)
    for v in module.trainable_variables:
        v.assign_add(rng.normal(0.0, scale, v.shape).astype(v.dtype.as_numpy_dtype))


def random_normal(shape, seed=0, scale=1.0, shift=0.0):
    return tf.constant(np.random.RandomState(seed).normal(shift, scale, shape).astype(np.float32))
