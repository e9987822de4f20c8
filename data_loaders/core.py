"""Problem table, batch-size arithmetic, seeds and the `Data` interface shared by every loader.

Ports openai/glow train.py:get_data (per-problem defaults, anchored batch sizes) and get_its
(full_test_its).
"""
import math
import zlib

import numpy as np

ARRAY_PROBLEMS = ("mnist", "cifar10", "digits", "digits_4bit", "folder")
TFRECORD_PROBLEMS = ("imagenet-oord", "imagenet", "celeba", "lsun_realnvp", "lsun")
PROBLEMS = ("mnist", "cifar10", "imagenet-oord", "imagenet", "celeba", "lsun_realnvp", "lsun",
            "folder", "digits", "digits_4bit")

# openai train.py:get_data; digits, digits_4bit and folder are this port's additions.
DEFAULT_IMAGE_SIZE = {"mnist": 32, "cifar10": 32, "imagenet-oord": 64, "imagenet": 256,
                      "celeba": 256, "lsun_realnvp": 64, "lsun": 256, "folder": 32, "digits": 8,
                      "digits_4bit": 8}
# n_y of the original; folder's is the number of class sub-folders (1 when there are none).
N_Y = {"mnist": 10, "cifar10": 10, "imagenet-oord": 1000, "imagenet": 1000, "celeba": 1,
       "lsun_realnvp": 1, "lsun": 1, "digits": 10, "digits_4bit": 10}
# openai's validation sizes of the TFRecord problems; the lsun ones are per rank (every rank
# reads the one validation shard), i.e. the original's 300*hvd.size() in total.
DEFAULT_TFR_N_TEST = {"imagenet-oord": 50000, "imagenet": 50000, "celeba": 3000}
DEFAULT_TFR_N_TEST_PER_RANK = {"lsun_realnvp": 300, "lsun": 300}

# openai train.py: {local_batch_train: local_batch_test}, "round down to closest divisor of 50".
TEST_BATCH_TABLE = {64: 50, 32: 25, 16: 10, 8: 5, 4: 2, 2: 2, 1: 1}


def loader_seed(seed, rank, size, stream):
    """A 32-bit NumPy seed for the named stream ('train', 'init', 'train/crop', ...) of one rank.

    Batch k of a stream is then a function of (seed, rank, size, stream, k), so a loader started at
    batch k yields what one started at 0 yields from batch k on, without replaying batches 0..k-1.
    """
    entropy = [int(seed), int(rank), int(size), zlib.crc32(stream.encode())]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def check_problem(problem):
    if problem not in PROBLEMS:
        raise ValueError(f"unknown problem {problem!r}; expected one of {', '.join(PROBLEMS)}")


def check_image_size(image_size):
    """Raises unless image_size is a power of two >= 1 (openai get_data.py asserts the same)."""
    if not isinstance(image_size, (int, np.integer)) or image_size < 1 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two >= 1 (1, 2, 4, ..., 256), got {image_size!r}")


def check_rank(rank, size):
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"need 0 <= rank < size, got rank={rank}, size={size}")


def check_dal(dal):
    if dal not in (0, 1, 2):
        raise ValueError(f"dal (data augmentation level) must be 0 (none), 1 (shifts) or 2 (extra), "
                         f"got {dal!r}")


def batch_sizes(n_batch_train, n_batch_init, anchor_size, image_size):
    """Per-worker (train, test, init) batch sizes, as openai train.py:get_data.

    train = n_batch_train * anchor_size**2 // image_size**2, init likewise from n_batch_init;
    test = the largest value of openai's table {64: 50, 32: 25, 16: 10, 8: 5, 4: 2, 2: 2, 1: 1}
    that is not above the train batch. On the table's keys this is exactly the table; elsewhere
    (e.g. train batch 7, where the original raised KeyError) it is the nearest smaller divisor
    of 50 (7 -> 5, 1024 -> 50). get_data further caps it by the per-rank test set.
    """
    check_image_size(image_size)
    scale = anchor_size * anchor_size
    train = n_batch_train * scale // (image_size * image_size)
    init = n_batch_init * scale // (image_size * image_size)
    if train < 1:
        raise ValueError(
            f"the local train batch n_batch_train*anchor_size**2//image_size**2 = "
            f"{n_batch_train}*{anchor_size}**2//{image_size}**2 is {train}; raise n_batch_train or "
            f"anchor_size, or lower image_size")
    if init < 1:
        raise ValueError(
            f"the local init batch n_batch_init*anchor_size**2//image_size**2 = "
            f"{n_batch_init}*{anchor_size}**2//{image_size}**2 is {init}; raise n_batch_init or "
            f"anchor_size, or lower image_size")
    test = max(v for v in TEST_BATCH_TABLE.values() if v <= train)
    return train, test, init


def test_split(n_test_per_rank, local_batch_test):
    """(local_batch_test, full_test_its, n_test evaluated per rank).

    openai get_its asserts n_test % (local_batch_test*size) == 0; here the remainder is dropped
    instead: each rank evaluates full_test_its = n_test_per_rank // local_batch_test full batches.
    The test batch is first capped by n_test_per_rank so that a small test set gives one batch.
    """
    batch = min(local_batch_test, n_test_per_rank)
    its = n_test_per_rank // batch
    return batch, its, its * batch


class Data:
    """What get_data returns: per-rank train/test streams, the init batch and the batch sizes.

    Attributes:
      problem, image_size, n_y.
      n_train: training images of this rank (None for TFRecord problems, where it is unknown
        without reading every file).
      n_test: test images this rank evaluates per full pass (= full_test_its * local_batch_test).
      local_batch_train, local_batch_test, local_batch_init, full_test_its: as openai train.py.
      init_batch: (x uint8 [local_batch_init, H, W, 3], y int32) numpy, the original's make_batch
        (concatenated augmented train batches, truncated) drawn from a stream seeded apart from
        the train stream, so that train(0) is the same with or without it.
    Methods:
      train(start_batch=0): infinite tf.data.Dataset of (x uint8 [local_batch_train, H, W, 3],
        y int32 [local_batch_train]); train(k) yields exactly what train(0) yields from batch k on.
      test(start_batch=0): tf.data.Dataset of full_test_its batches (x, y) of local_batch_test from
        batch start_batch of the endless test stream (the test images in order, repeated), so that
        successive evaluations continue through the test set as the original's iterator did.
      explain_data_loss(error): for a tf.errors.DataLossError met while iterating a stream, the
        error to raise instead (TFRecord problems name the corrupt file; others return error).
      test_arrays(): the in-memory problems only (arrays.ArrayData): this rank's whole test split
        as NumPy, un-batched (what the demo picks its examples and class directions from).
    """

    problem: str
    image_size: int
    n_y: int
    n_train: "int | None"
    n_test: int
    local_batch_train: int
    local_batch_test: int
    local_batch_init: int
    full_test_its: int

    def explain_data_loss(self, error):
        return error

    def __repr__(self):
        return (f"{type(self).__name__}(problem={self.problem!r}, image_size={self.image_size}, "
                f"n_y={self.n_y}, n_train={self.n_train}, n_test={self.n_test}, batches "
                f"train/test/init={self.local_batch_train}/{self.local_batch_test}/"
                f"{self.local_batch_init}, full_test_its={self.full_test_its})")


def n_batches(n, batch):
    return int(math.ceil(n / batch))
