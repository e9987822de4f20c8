"""In-memory problems (mnist, cifar10, digits, folder): sharding, the seeded train stream, test
batches and the init batch. Ports openai/glow data_loaders/get_mnist_cifar.py."""
import functools

import numpy as np
import tensorflow as tf

from data_loaders import augment, core
from data_loaders.core import loader_seed

_FOREVER = 2 ** 62


def downsample(x, resolution):
    """Box average over (s // resolution)-pixel blocks, float32 in and out (openai downsample)."""
    s = x.shape
    if s[1] % resolution or s[2] % resolution:
        raise ValueError(f"cannot box-average {s[1]}x{s[2]} images to {resolution}x{resolution}")
    if s[1] == s[2] == resolution:
        return x
    x = np.reshape(x, [s[0], resolution, s[1] // resolution, resolution, s[2] // resolution, s[3]])
    return np.mean(x, (2, 4))


def x_to_uint8(x):
    """floor, clip to [0, 255], uint8 (openai x_to_uint8)."""
    return np.clip(np.floor(x), 0, 255).astype(np.uint8)


def shard(n, size, rank):
    """This rank's contiguous slice of n items: [rank*m, (rank+1)*m) with m = n // size.

    As openai get_mnist_cifar.py:shard, which asserted n % size == 0; here the last n % size
    items are left out instead.
    """
    m = n // size
    return slice(rank * m, (rank + 1) * m)


class ArrayStream:
    """An infinite, seeded stream of augmented batches from in-memory arrays.

    The stream is the concatenation of per-epoch permutations of the n images, cut into batches
    of `batch`: batch k holds stream positions [k*batch, (k+1)*batch), position p is image
    perm_e[p % n] with e = p // n, and perm_e and batch k's augmentation come from generators
    seeded by (seed, 0, e) and (seed, 1, k). So batch k is computed directly, whatever k.
    (Keras' flow instead yields a smaller last batch per epoch; here batches always have `batch`
    images and may straddle two epochs.)
    """

    def __init__(self, x, y, batch, image_size, aug, seed):
        self.x, self.y, self.batch, self.image_size, self.aug = x, y, batch, image_size, aug
        self.seed = seed
        self._perms = {}  # the last few epochs' permutations

    def _perm(self, epoch):
        perm = self._perms.get(epoch)
        if perm is None:
            perm = np.random.default_rng([self.seed, 0, epoch]).permutation(len(self.x))
            if len(self._perms) >= 4:
                self._perms.clear()
            self._perms[epoch] = perm
        return perm

    def indices(self, k):
        n = len(self.x)
        pos = np.arange(k * self.batch, (k + 1) * self.batch, dtype=np.int64)
        epochs, within = pos // n, pos % n
        idx = np.empty_like(pos)
        for e in np.unique(epochs):
            idx[epochs == e] = self._perm(int(e))[within[epochs == e]]
        return idx

    def __call__(self, k):
        """Batch k: (x uint8 [batch, image_size, image_size, 3], y int32 [batch])."""
        idx = self.indices(int(k))
        x = self.x[idx]
        if self.aug is not None:
            x = augment.augment_batch(x, np.random.default_rng([self.seed, 1, int(k)]), self.aug)
            x = x_to_uint8(downsample(x, self.image_size))
        return x, self.y[idx]


def _batches(fn, start, stop, batch, image_size):
    """tf.data.Dataset of fn(k) for k in [start, stop), computed in parallel, in order."""
    def call(k):
        x, y = tf.numpy_function(fn, [k], (tf.uint8, tf.int32), stateful=False)
        return tf.ensure_shape(x, [batch, image_size, image_size, 3]), tf.ensure_shape(y, [batch])
    ds = tf.data.Dataset.range(start, stop)
    ds = ds.map(call, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(2)


class ArrayData(core.Data):
    """core.Data over in-memory arrays. Train and test sets are sharded contiguously by rank
    before any shuffling (openai get_mnist_cifar.py); augmentation is applied at the arrays'
    resolution, then box-averaged down to image_size and floored, as the original.

    x_* are uint8 [N, R, R, 3] with R a power-of-two multiple of image_size; y_* int.
    n_test is the total over ranks (the original's --n_test); -1 means all test images.
    """

    def __init__(self, problem, x_train, y_train, x_test, y_test, *, n_y, image_size, n_test,
                 batches, dal, seed, rank, size):
        self.problem, self.n_y, self.image_size = problem, n_y, image_size
        self.local_batch_train, local_batch_test, self.local_batch_init = batches
        self.rank, self.size, self.seed = rank, size, seed
        if len(x_train) < size:
            raise ValueError(f"{problem}: {size} ranks but only {len(x_train)} training images")
        x_train, y_train = x_train[shard(len(x_train), size, rank)], y_train[shard(len(y_train), size, rank)]
        x_test, y_test = x_test[shard(len(x_test), size, rank)], y_test[shard(len(y_test), size, rank)]
        n_test = len(x_test) * size if n_test == -1 else n_test
        if n_test < size:
            raise ValueError(f"n_test={n_test} must be at least the number of ranks ({size})")
        if n_test // size > len(x_test):
            raise ValueError(f"n_test={n_test} asks {n_test // size} test images of each of {size} "
                             f"rank(s), but {problem} has {len(x_test)} per rank")
        self.local_batch_test, self.full_test_its, self.n_test = core.test_split(
            n_test // size, local_batch_test)
        self.n_train = len(x_train)

        aug = augment.augmentation_for(problem, dal)
        y_train, y_test = y_train.astype(np.int32), y_test.astype(np.int32)
        # Without augmentation the box average + floor is the same for every draw: do it once.
        self._x_test = x_to_uint8(downsample(x_test.astype(np.float32), image_size))
        if aug is None:
            x_train = x_to_uint8(downsample(x_train.astype(np.float32), image_size))
        self._y_test = y_test
        self._train = ArrayStream(x_train, y_train, self.local_batch_train, image_size, aug,
                                  loader_seed(seed, rank, size, "train"))
        self._init = ArrayStream(x_train, y_train, self.local_batch_train, image_size, aug,
                                 loader_seed(seed, rank, size, "init"))

    def test_arrays(self):
        """(x uint8 [n, image_size, image_size, 3], y int32 [n]): this rank's whole test split, un-batched,
        in the order the test stream reads it (its first n_test images are the ones evaluated)."""
        return self._x_test, self._y_test

    def train(self, start_batch=0):
        if start_batch < 0:
            raise ValueError(f"start_batch must be >= 0, got {start_batch}")
        return _batches(self._train, start_batch, _FOREVER, self.local_batch_train, self.image_size)

    def _test_batch(self, j):
        """Batch j of the endless test stream: this rank's test images in order, wrapping around."""
        b = self.local_batch_test
        idx = np.arange(j * b, (j + 1) * b) % len(self._x_test)
        return self._x_test[idx], self._y_test[idx]

    def test(self, start_batch=0):
        if start_batch < 0:
            raise ValueError(f"start_batch must be >= 0, got {start_batch}")
        return _batches(self._test_batch, start_batch, start_batch + self.full_test_its,
                        self.local_batch_test, self.image_size)

    @functools.cached_property
    def init_batch(self):
        """openai make_batch: ceil(init/train) augmented train batches, concatenated, truncated."""
        k = core.n_batches(self.local_batch_init, self.local_batch_train)
        xs, ys = zip(*(self._init(i) for i in range(k)))
        return np.concatenate(xs)[:self.local_batch_init], np.concatenate(ys)[:self.local_batch_init]
