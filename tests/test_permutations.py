"""ReverseChannels and ShuffleChannels (openai tfops.reverse_features, shuffle_features)."""
import numpy as np
import pytest
import tensorflow as tf

from bijector_checks import check_bijector, random_normal
from glow_tf.bijectors import ReverseChannels, ShuffleChannels

C = 6
SHAPE = [2, 3, 3, C]


def test_reverse_reverses_channels_and_is_its_own_inverse():
    x = random_normal(SHAPE, seed=0)
    reverse = ReverseChannels(C)
    z, log_det = reverse.encode(x)
    np.testing.assert_array_equal(z, x.numpy()[..., ::-1])
    np.testing.assert_array_equal(reverse.decode(z)[0], x)
    assert log_det == 0.0


def test_shuffle_gathers_channels_with_its_stored_indices():
    shuffle = ShuffleChannels(C, np.random.RandomState(1))
    indices = shuffle.indices.numpy()
    assert sorted(indices) == list(range(C)) and list(indices) != list(range(C))
    np.testing.assert_array_equal(indices[shuffle.indices_inverse.numpy()], np.arange(C))
    x = random_normal(SHAPE, seed=2)
    z, log_det = shuffle.encode(x)
    np.testing.assert_array_equal(z, x.numpy()[..., indices])
    np.testing.assert_array_equal(shuffle.decode(z)[0], x)
    assert log_det == 0.0
    # the original's variables: non-trainable int32, saved in checkpoints
    assert shuffle.trainable_variables == ()
    assert {v.dtype for v in shuffle.variables} == {tf.int32}


def test_shuffle_follows_the_model_seed():
    a, b = (ShuffleChannels(12, np.random.RandomState(5)) for _ in range(2))
    np.testing.assert_array_equal(a.indices.numpy(), b.indices.numpy())
    np.testing.assert_array_equal(a.indices.numpy(), np.random.RandomState(5).permutation(12))


@pytest.mark.parametrize("make", [lambda: ReverseChannels(C), lambda: ShuffleChannels(C, np.random.RandomState(3))],
                         ids=["reverse", "shuffle"])
def test_bijector_checks(make):
    log_det = check_bijector(make(), random_normal(SHAPE, seed=4))
    np.testing.assert_allclose(log_det, 0.0, atol=1e-6)  # a permutation: |det| = 1


@pytest.mark.parametrize("make", [lambda: ReverseChannels(C), lambda: ShuffleChannels(C, np.random.RandomState(3))],
                         ids=["reverse", "shuffle"])
def test_round_trip_in_both_regimes(make, run):
    permutation = make()
    x = random_normal(SHAPE, seed=5)
    np.testing.assert_array_equal(run(lambda v: permutation.forward(tf.identity(permutation.inverse(v))))(x), x)
