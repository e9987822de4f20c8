"""Data for glow-tf: get_data(problem, ...) -> Data with per-rank train/test tf.data streams and
the data-dependent-init batch. Ports openai/glow train.py:get_data, data_loaders/get_data.py
(TFRecords) and data_loaders/get_mnist_cifar.py (mnist, cifar10), and adds two in-memory
problems: 'digits' and 'digits_4bit' (scikit-learn's 8x8 digits, offline; see data_loaders.digits) and
'folder' (any folder of images).

    data = get_data("cifar10", seed=0, rank=hvd.rank(), size=hvd.size())
    for x, y in data.train(start_batch):   # uint8 [local_batch_train, H, W, 3], int32
        ...

Every stream is a function of (seed, rank, size) only, and train(k) yields what train(0) yields
from batch k on, so a run killed after k batches resumes with train(k).
"""
import os

from data_loaders.core import (DEFAULT_IMAGE_SIZE, N_Y, PROBLEMS, TFRECORD_PROBLEMS, Data,
                               batch_sizes, check_dal, check_image_size, check_problem, check_rank)
from data_loaders.tfrecords import (CorruptTFRecordError, find_corrupt_file, list_tfrecords,
                                    read_tfrecords)

__all__ = ["PROBLEMS", "Data", "batch_sizes", "get_data", "read_tfrecords", "list_tfrecords",
           "find_corrupt_file", "CorruptTFRecordError", "write_folder", "write_examples"]


def __getattr__(name):
    # The writer is imported on first use, so that `python -m data_loaders.write_tfrecords` does
    # not find its own module already imported by the package.
    if name in ("write_examples", "write_folder"):
        from data_loaders import write_tfrecords
        return getattr(write_tfrecords, name)
    raise AttributeError(f"module 'data_loaders' has no attribute {name!r}")


def get_data(problem, data_dir="", image_size=-1, n_test=-1, n_batch_train=64, n_batch_init=256,
             anchor_size=32, dal=1, fmap=1, pmap=16, category="", seed=0, rank=0, size=1):
    """Loads `problem` for worker `rank` of `size` and returns a core.Data.

    Args (the original's flags of the same names):
      problem: 'mnist', 'cifar10', 'imagenet-oord', 'imagenet', 'celeba', 'lsun_realnvp',
        'lsun' (openai), 'folder', 'digits' or 'digits_4bit'. 'celeba' reads the official JPEG
        layout (img_align_celeba/ + list_attr_celeba.txt, data_loaders.celeba, default 64 px) when
        data_dir holds it, else the original's CelebA-HQ TFRecords.
      data_dir: '' means tf_keras' download for mnist/cifar10 and scikit-learn's bundled set for
        digits and digits_4bit; a local folder otherwise (mnist IDX / CIFAR python batches, a folder of images,
        or the TFRecord root holding train/ and validation/, which the TFRecord problems need).
      image_size: a power of two; -1 means the problem's default (core.DEFAULT_IMAGE_SIZE).
      n_test: test images summed over ranks; -1 means the problem's default (all test images for
        the in-memory problems). Each rank evaluates (n_test // size) // local_batch_test full
        batches; a remainder is dropped (the original asserted there was none).
      n_batch_train, n_batch_init, anchor_size: per-worker batches at anchor_size resolution,
        rescaled by anchor_size**2 / image_size**2 (batch_sizes).
      dal: augmentation level 0/1/2 of the in-memory problems (augment.augmentation_for);
        ignored by the TFRecord problems, as in the original.
      fmap, pmap: files read in parallel and parallel parse calls (TFRecord problems).
      category: appended to data_dir as a sub-folder (LSUN 'bedroom', 'tower', ...).
      seed, rank, size: every random choice is a function of these.
    """
    check_problem(problem)
    check_rank(rank, size)
    check_dal(dal)
    if problem == "celeba" and not category:
        from data_loaders import celeba
        if celeba.is_celeba_folder(data_dir):  # the official JPEG layout; else the original's TFRecords
            return celeba.CelebAData(data_dir, image_size=image_size, n_test=n_test, batches=batch_sizes(
                n_batch_train, n_batch_init, anchor_size, celeba.DEFAULT_IMAGE_SIZE if image_size == -1
                else image_size), seed=seed, rank=rank, size=size)
    if image_size == -1:
        image_size = DEFAULT_IMAGE_SIZE[problem]
    check_image_size(image_size)
    if category:
        data_dir = os.path.join(data_dir, category)
    batches = batch_sizes(n_batch_train, n_batch_init, anchor_size, image_size)

    if problem in TFRECORD_PROBLEMS:
        if not data_dir:
            raise ValueError(f"problem {problem!r} reads TFRecords: pass --data_dir, the folder "
                             f"holding train/ and validation/ (see python -m "
                             f"data_loaders.write_tfrecords --help)")
        from data_loaders.tfrecords import TFRecordData
        return TFRecordData(problem, data_dir, image_size=image_size, n_test=n_test,
                            batches=batches, fmap=fmap, pmap=pmap, seed=seed, rank=rank, size=size)

    if problem in ("digits", "digits_4bit"):
        from data_loaders import digits
        load = digits.load_digits if problem == "digits" else digits.load_digits_4bit
        arrays, n_y = load(image_size), N_Y[problem]
    elif problem == "folder":
        from data_loaders.folder import load_folder
        *arrays, classes = load_folder(data_dir, image_size)
        n_y = max(1, len(classes))
    else:
        if image_size > 32:
            raise ValueError(f"image_size {image_size} is larger than {problem}'s 32x32 images; "
                             f"use 32, 16, 8, 4, 2 or 1 (made by box averaging, as the original)")
        from data_loaders import mnist_cifar
        load = mnist_cifar.load_mnist if problem == "mnist" else mnist_cifar.load_cifar10
        arrays, n_y = load(data_dir), N_Y[problem]
    from data_loaders.arrays import ArrayData
    return ArrayData(problem, *arrays, n_y=n_y, image_size=image_size, n_test=n_test,
                     batches=batches, dal=dal, seed=seed, rank=rank, size=size)
