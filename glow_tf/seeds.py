"""Random streams keyed by position, never by history: what makes a resumed run draw exactly what an
uninterrupted one draws.

The original seeded NumPy and TensorFlow globally once per worker (seed `rank + size * seed`) and
drew from them in sequence; a global generator cannot be skipped ahead to step k. Here every draw is
a function of (seed, worker, stream, counter):

- `noise_seed`: the [2] seed of a TensorFlow stateless op (dequantisation noise, samples);
- `loader_seed`: a 32-bit NumPy seed for one named stream of the data loaders (shuffles,
  augmentation, crops); it belongs to the data layer (data_loaders.core) and is re-exported here.
"""
import tensorflow as tf

from data_loaders.core import loader_seed

__all__ = ["TRAIN_NOISE", "TEST_NOISE", "SAMPLES", "INIT_NOISE", "noise_seed", "loader_seed"]

# The TensorFlow streams of one worker (the second key of noise_seed).
TRAIN_NOISE, TEST_NOISE, SAMPLES, INIT_NOISE = 0, 1, 2, 3


def noise_seed(seed, stream, counter):
    """A stateless-RNG seed [2] for draw `counter` of `stream` of the worker whose seed is `seed`."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.cast(stream, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, tf.cast(counter, tf.int64))

