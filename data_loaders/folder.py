"""Any folder of images as an in-memory problem (not in openai/glow).

Layout, checked in this order:
  data_dir/train/ and data_dir/test/ (or data_dir/validation/): the two splits;
  otherwise data_dir/ alone: a fixed hold-out of HOLDOUT_FRACTION of the images (at least one)
  becomes the test set.
In each split, class sub-folders give labels (sub-folder index in sorted name order; the test
split must use the train split's class names), and images without sub-folders get label 0.
Every image is decoded once, converted to RGB, centre-cropped to a square and resized to
image_size (images.centre_crop_resize) and kept in memory as uint8: about 3*image_size**2 bytes
per image (3 KB at 32, 196 KB at 256). For datasets that do not fit, write TFRecords with
data_loaders.write_tfrecords and train on those.

The images are put in a fixed order (a numpy default_rng(0) permutation, independent of --seed)
before the hold-out and the contiguous per-rank shards, so that each rank sees every class.
"""
import os

import numpy as np

from data_loaders import image_files as images

HOLDOUT_FRACTION = 0.1


def _split_dirs(data_dir):
    train = os.path.join(data_dir, "train")
    for name in ("test", "validation"):
        test = os.path.join(data_dir, name)
        if os.path.isdir(train) and os.path.isdir(test):
            return train, test
    return None


def load_folder(data_dir, image_size):
    """(x_train, y_train, x_test, y_test, class_names); x uint8 [N, image_size, image_size, 3]."""
    if not data_dir:
        raise ValueError("problem 'folder' needs --data_dir, a folder of images (optionally with "
                         "class sub-folders, or train/ and test/ sub-folders)")
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"image folder {data_dir!r} does not exist")
    rng = np.random.default_rng(0)
    split = _split_dirs(data_dir)
    if split:
        train_paths, y_train, classes = images.find_images(split[0])
        test_paths, y_test, test_classes = images.find_images(split[1])
        if classes and not test_classes:
            raise ValueError(f"{split[0]!r} has class sub-folders but {split[1]!r} has none; give "
                             f"the test split the same class sub-folders")
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise ValueError(f"test classes {unknown} of {split[1]!r} are not among the train "
                             f"classes {classes} of {split[0]!r}")
        remap = np.array([classes.index(c) for c in test_classes] or [0], np.int32)
        y_test = remap[y_test]
        train_order, test_order = rng.permutation(len(train_paths)), rng.permutation(len(test_paths))
    else:
        paths, labels, classes = images.find_images(data_dir)
        if len(paths) < 2:
            raise ValueError(f"{data_dir!r} holds {len(paths)} image; need at least 2 (one for "
                             f"training, one held out for testing)")
        order = rng.permutation(len(paths))
        n_test = max(1, int(len(paths) * HOLDOUT_FRACTION))
        train_paths = test_paths = paths
        y_train = y_test = labels
        train_order, test_order = order[n_test:], order[:n_test]
    x_train = images.load_images([train_paths[i] for i in train_order], image_size, resize=True)
    x_test = images.load_images([test_paths[i] for i in test_order], image_size, resize=True)
    return x_train, y_train[train_order], x_test, y_test[test_order], classes
