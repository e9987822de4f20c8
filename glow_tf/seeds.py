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

__all__ = ["TRAIN_NOISE", "TEST_NOISE", "SAMPLES", "INIT_NOISE", "noise_seed", "loader_seed", "test_counter", "sample_counter",
           "worker_seed"]

# The TensorFlow streams of one worker (the second key of noise_seed).
TRAIN_NOISE, TEST_NOISE, SAMPLES, INIT_NOISE = 0, 1, 2, 3


def noise_seed(seed, stream, counter):
    """A stateless-RNG seed [2] for draw `counter` of `stream` of the worker whose seed is `seed`."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.cast(stream, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, tf.cast(counter, tf.int64))



# The counters of the TEST_NOISE and SAMPLES streams: one block of counters per evaluation or per
# epoch's samples, so that the draws of epoch e never depend on what earlier epochs drew.
def test_counter(epoch, batch):
    """The TEST_NOISE counter of test batch `batch` of the evaluation at `epoch` (a million per epoch)."""
    return epoch * 1_000_000 + batch


def sample_counter(epoch, temperature_index, chunk):
    """The SAMPLES counter of chunk `chunk` of the grid at temperature number `temperature_index` drawn
    at `epoch` (a thousand per epoch, a hundred per temperature)."""
    return epoch * 1000 + temperature_index * 100 + chunk


def worker_seed(seed, rank, size):
    """The original's per-worker seed: rank + size * seed."""
    return rank + size * seed
