"""The compiled pieces of a training run: the train and test steps, the sampler, the run's counters.

Ports openai/glow model.py's train/test ops and train.py's draw_samples, with what exact resume
needs: every random draw of a run (dequantisation noise, samples) is stateless (glow_tf.seeds), so a
run restarted from a checkpoint at step s draws exactly what an uninterrupted run draws from step s on.
"""
import numpy as np
import tensorflow as tf

from glow_tf.images import grid
from glow_tf.seeds import SAMPLES, TEST_NOISE, TRAIN_NOISE, noise_seed, sample_counter

# Every tf.function here is traced with autograph off: the model's Python control flow depends only on
# its configuration, never on a tensor's value, so autograph's conversion of each function it meets
# only costs. It cost a lot: converting a flow's layers (all of them under `reversible` and `store`,
# which autograph walks into, none under `checkpoint`, whose tf.recompute_grad it does not) took 40%
# more memory to trace the same graph; bench/README.md has the figures.

# The original's sample temperatures (train.py:draw_samples).
SAMPLE_TEMPERATURES = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
STAT_NAMES = ("loss", "bits_x", "bits_y", "pred_loss")  # the original's process_results order


class RunState(tf.Module):
    """Counters saved with every checkpoint; restoring them is what makes a resume exact."""

    def __init__(self):
        super().__init__(name="run_state")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")  # = train batches consumed
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")  # last completed epoch
        self.n_processed = tf.Variable(0, dtype=tf.int64, trainable=False, name="n_processed")  # anchored images
        self.n_images = tf.Variable(0, dtype=tf.int64, trainable=False, name="n_images")  # real images
        self.train_time = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_time")
        self.best_test_loss = tf.Variable(np.inf, dtype=tf.float64, trainable=False, name="best_test_loss")
        self.n_nonfinite = tf.Variable(0, dtype=tf.int64, trainable=False, name="n_nonfinite")


def all_finite(tensors, norm):
    """Whether every element of `tensors` is finite, given their global norm `norm`: a NaN or an
    infinity in any of them makes the norm non-finite, so a finite norm answers at once; only a
    non-finite one (also reached by squares overflowing) checks element by element. The same answer
    as checking every tensor, without a pass over every gradient per step (one reduction per
    variable took ~5% of the bench configuration's step, bench/README.md)."""
    return tf.cond(tf.math.is_finite(norm), lambda: tf.constant(True),
                   lambda: tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors]))


def make_train_step(glow, optimizer, dist, seed, jit=False):
    """One optimisation step (the original's model.train): objective, gradients averaged over workers,
    the update (skipped, state untouched, when the loss or any gradient is not finite).

    `step(x, y, lr, counter, noise=None)` returns the worker-averaged batch means of STAT_NAMES, the
    global gradient norm and `finite`; the dequantisation noise is drawn from (seed, counter) unless
    `noise` is given. `finite` is computed from the averaged values, so every worker takes the same
    decision. With `jit` the step is compiled with XLA; with several workers only the objective and
    its gradients are, since Horovod's collectives have no XLA kernels.
    """
    params = glow.trainable_variables
    distributed = dist.size > 1

    def local_gradients(x, y, counter, noise):
        with tf.GradientTape() as tape:
            stats = glow.objective(x, y, noise=noise, seed=noise_seed(seed, TRAIN_NOISE, counter))
            loss = tf.reduce_mean(stats["loss"])
        return tape.gradient(loss, params), [tf.reduce_mean(stats[k]) for k in STAT_NAMES]

    if jit and distributed:
        local_gradients = tf.function(local_gradients, jit_compile=True, reduce_retracing=True, autograph=False)

    def step(x, y, lr, counter, noise=None):
        grads, means = local_gradients(x, y, counter, noise)
        reduced = dist.allreduce_mean([*grads, *means])  # one collective for both
        grads, means = reduced[:len(grads)], reduced[len(grads):]
        norm = tf.linalg.global_norm(grads)
        finite = tf.logical_and(all_finite(grads, norm), tf.reduce_all(tf.math.is_finite(means)))
        optimizer.apply(grads, lr, skip=tf.logical_not(finite))
        return tf.stack(means), norm, finite

    return tf.function(step, jit_compile=jit and not distributed, reduce_retracing=True, autograph=False)


def make_test_step(glow, dist, seed):
    """Batch means of STAT_NAMES on test data, averaged over workers (the original's model.test)."""

    def step(x, y, counter):
        stats = glow.objective(x, y, seed=noise_seed(seed, TEST_NOISE, counter))
        return tf.stack(dist.allreduce_mean([tf.reduce_mean(stats[k]) for k in STAT_NAMES]))

    return tf.function(step, reduce_retracing=True, autograph=False)


def make_sampler(glow, seed):
    """sampler(y, temperature, counter) -> uint8 images, with stateless noise (the original's f_sample)."""

    @tf.function(reduce_retracing=True, autograph=False)
    def sample(y, temperature, counter):
        n = tf.shape(y)[0]
        eps = glow.temperature_eps(n, temperature, seed=noise_seed(seed, SAMPLES, counter))
        return glow.postprocess(glow.decode_with_log_det(eps, y if glow.config.ycond else None)[0])

    return sample


def draw_samples(sampler, config, epoch, batch_size):
    """The original's draw_samples: one grid per temperature in SAMPLE_TEMPERATURES, each column a class.

    10x10 grids up to 64px images, 4x4 above; sampled in chunks of `batch_size`. Returns a list of
    uint8 grids, one per temperature.
    """
    side = 10 if config.image_size <= 64 else 4
    y = np.array([i % config.n_y for i in list(range(side)) * side], dtype=np.int32)
    grids = []
    for k, temperature in enumerate(SAMPLE_TEMPERATURES):
        chunks = [sampler(y[i:i + batch_size], tf.constant(temperature),
                          tf.constant(sample_counter(epoch, k, i // batch_size), tf.int64))
                  for i in range(0, len(y), batch_size)]
        grids.append(grid(np.concatenate([c.numpy() for c in chunks]), n_cols=side))
    return grids
