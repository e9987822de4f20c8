"""Squeeze (openai tfops.squeeze2d / unsqueeze2d): the original's channel order, not space_to_depth's."""
import numpy as np
import pytest
import tensorflow as tf

from bijector_checks import check_bijector, random_normal
from glow_tf.bijectors import Squeeze, squeeze2d, unsqueeze2d

SHAPE = [2, 4, 6, 3]


def _openai_squeeze(x):
    """NumPy restatement of tfops.squeeze2d(x, factor=2)."""
    n, h, w, c = x.shape
    x = x.reshape([n, h // 2, 2, w // 2, 2, c]).transpose([0, 1, 3, 5, 2, 4])
    return x.reshape([n, h // 2, w // 2, c * 4])


def test_squeeze_matches_the_originals_reshape_and_transpose():
    x = random_normal(SHAPE, seed=0).numpy()
    z = squeeze2d(tf.constant(x)).numpy()
    np.testing.assert_array_equal(z, _openai_squeeze(x))
    # the same order, element by element: out[n, i, j, c*4 + di*2 + dj] = x[n, 2i+di, 2j+dj, c]
    for i, j, c, di, dj in [(0, 0, 0, 0, 1), (1, 2, 2, 1, 0), (1, 1, 1, 1, 1)]:
        np.testing.assert_array_equal(z[:, i, j, c * 4 + di * 2 + dj], x[:, 2 * i + di, 2 * j + dj, c])


def test_squeeze_is_not_space_to_depth():
    x = random_normal(SHAPE, seed=1)
    ours, s2d = squeeze2d(x).numpy(), tf.nn.space_to_depth(x, 2).numpy()
    assert not np.array_equal(ours, s2d)
    # the same sub-pixels, ordered (di*2 + dj)*C + c by space_to_depth
    c = SHAPE[-1]
    reorder = [k * c + ch for ch in range(c) for k in range(4)]
    np.testing.assert_array_equal(s2d[..., reorder], ours)


def test_unsqueeze_inverts_squeeze_and_shapes():
    x = random_normal(SHAPE, seed=2)
    z = squeeze2d(x)
    assert z.shape == (2, 2, 3, 12)
    np.testing.assert_array_equal(unsqueeze2d(z), x)
    squeeze = Squeeze()
    assert squeeze.inverse_event_shape([4, 6, 3]) == [2, 3, 12]
    assert squeeze.forward_event_shape([2, 3, 12]) == [4, 6, 3]
    np.testing.assert_array_equal(squeeze.inverse_event_shape_tensor([4, 6, 3]), [2, 3, 12])
    np.testing.assert_array_equal(squeeze.forward_event_shape_tensor([2, 3, 12]), [4, 6, 3])


def test_bijector_checks():
    log_det = check_bijector(Squeeze(), random_normal(SHAPE, seed=3))
    np.testing.assert_allclose(log_det, 0.0, atol=1e-6)


def test_round_trip_in_both_regimes(run):
    squeeze, x = Squeeze(), random_normal(SHAPE, seed=4)
    np.testing.assert_array_equal(run(lambda v: squeeze.forward(tf.identity(squeeze.inverse(v))))(x), x)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"even height and width.*\(2, 3, 4, 3\)"):
        Squeeze().encode(tf.zeros([2, 3, 4, 3]))
    with pytest.raises(ValueError, match=r"divisible by 4.*\(2, 2, 2, 6\)"):
        Squeeze().decode(tf.zeros([2, 2, 2, 6]))
