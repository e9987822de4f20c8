"""Random streams keyed by position, never by history: what makes a resumed run draw exactly what an
uninterrupted one draws.

The original seeded NumPy and TensorFlow globally once per worker (seed `rank + size * seed`) and
drew from them in sequence; a global generator cannot be skipped ahead to step k. Here every draw is
a function of (seed, worker, stream, counter):

- `noise_seed`: the [2] seed of a TensorFlow stateless op (dequantisation noise, samples);
- `loader_seed`: a 32-bit NumPy seed for one named stream of the data loaders (shuffles,
  augmentation, crops).
"""
import zlib

import numpy as np
import tensorflow as tf

# The TensorFlow streams of one worker (the second key of noise_seed).
TRAIN_NOISE, TEST_NOISE, SAMPLES, INIT_NOISE = 0, 1, 2, 3


def noise_seed(seed, stream, counter):
    """A stateless-RNG seed [2] for draw `counter` of `stream` of the worker whose seed is `seed`."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.cast(stream, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, tf.cast(counter, tf.int64))


def loader_seed(seed, rank, size, stream):
    """A 32-bit seed for the data loaders' named stream ('train', 'init', 'train/crop', ...) of one rank.

    Batch k of a stream is then a function of (seed, rank, size, stream, k), so a loader started at
    batch k yields what one started at 0 yields from batch k on, without replaying batches 0..k-1.
    """
    entropy = [int(seed), int(rank), int(size), zlib.crc32(stream.encode())]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


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
