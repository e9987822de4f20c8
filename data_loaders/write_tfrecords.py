"""Writes a folder of images as openai/glow TFRecords (the format of tfrecords.py), the role of
openai's data_loaders/generate_tfr/ scripts for your own images.

    python -m data_loaders.write_tfrecords --input_dir IMAGES --output_dir OUT --resolution 32 \
        [--shards N] [--split train|validation] [--attr_csv F] [--seed 0] [--overwrite]

Each image is converted to RGB, centre-cropped to a square and resized to resolution x
resolution (Lanczos, like openai generate_tfr/lsun.py's ANTIALIAS). Labels are class sub-folder
indices in sorted name order (0 without sub-folders). Images are spread over the shards in a
seeded random order, as the original's random shard assignment. --attr_csv adds the 'attr'
feature: a table with a header row and one row per image, the image's file name (or its path
relative to --input_dir) first, then integer attributes (CelebA's list_attr_celeba.csv, or
list_attr_celeba.txt with its leading count line). Run it once per split:
OUT/train/train-r05-s-0000-of-0004.tfrecords ... and OUT/validation/...; then train with
--problem celeba (or imagenet, lsun...) --data_dir OUT --image_size 32.
"""
import argparse
import math
import os

import numpy as np
import tensorflow as tf

from data_loaders import core
from data_loaders import image_files as images
from data_loaders.tfrecords import resolution_log2, tfrecord_name

IMAGES_PER_SHARD = 1000  # default --shards: one shard per 1000 images


def serialize_example(image, label, attr=None):
    """One tf.train.Example with openai's keys: shape [3], data (raw HWC bytes), label [1]
    (and attr [n])."""
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"images must be uint8 [H, W, 3], got {image.dtype} {list(image.shape)}")
    feature = {
        "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=list(image.shape))),
        "data": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
    }
    if attr is not None:
        feature["attr"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(a) for a in attr]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _prepare(output_dir, split, resolution, overwrite):
    folder = os.path.join(output_dir, split)
    os.makedirs(folder, exist_ok=True)
    prefix = f"{split}-r{resolution_log2(resolution):02d}-s-"
    old = sorted(f for f in os.listdir(folder) if f.startswith(prefix) and f.endswith(".tfrecords"))
    if old and not overwrite:
        raise FileExistsError(f"{folder!r} already holds {len(old)} {prefix}* files ({old[0]}, ...); "
                              f"pass overwrite=True (--overwrite) to replace them")
    for f in old:
        os.remove(os.path.join(folder, f))
    return folder


def _check_shards(shards, n):
    if not 1 <= shards <= n:
        raise ValueError(f"shards must be between 1 and the number of images ({n}), got {shards}")


def write_examples(output_dir, split, resolution, x, y, attrs=None, shards=1,
                   overwrite=False):
    """Writes arrays in the given order: image i goes to shard i * shards // n (contiguous runs).

    x: a sequence of uint8 [H, W, 3] (they may differ in shape, e.g. lsun_realnvp's
    shorter-side-96 images; `resolution` names the files: -r{log2(resolution):02d}-).
    Returns the written paths.
    """
    n = len(x)
    _check_shards(shards, n)
    if len(y) != n or (attrs is not None and len(attrs) != n):
        raise ValueError(f"got {n} images, {len(y)} labels"
                         f"{'' if attrs is None else f', {len(attrs)} attrs'}")
    folder = _prepare(output_dir, split, resolution, overwrite)
    paths = []
    for s, chunk in enumerate(np.array_split(np.arange(n), shards)):
        path = os.path.join(folder, tfrecord_name(split, resolution_log2(resolution), s, shards))
        with tf.io.TFRecordWriter(path) as writer:
            for i in chunk:
                writer.write(serialize_example(x[i], y[i],
                                               None if attrs is None else attrs[i]))
        paths.append(path)
    return paths


def read_attr_table(path):
    """(attribute names, {image key: int64 [n]}) from a CSV or whitespace table (see module doc)."""
    with open(path) as f:
        lines = [line.strip() for line in f if line.strip()]
    if lines and lines[0].isdigit():  # list_attr_celeba.txt starts with the image count
        lines = lines[1:]
    if len(lines) < 2:
        raise ValueError(f"attribute table {path!r} needs a header row and at least one image row")
    split = (lambda s: [t.strip() for t in s.split(",")]) if "," in lines[0] else str.split
    header, table = split(lines[0]), {}
    for number, line in enumerate(lines[1:], start=2):
        fields = split(line)
        try:
            values = np.array([int(v) for v in fields[1:]], np.int64)
        except ValueError:
            raise ValueError(f"{path!r} line {number}: attributes must be integers, got "
                             f"{fields[1:4]}...") from None
        if table and len(values) != len(next(iter(table.values()))):
            raise ValueError(f"{path!r} line {number} has {len(values)} attributes, the first row "
                             f"{len(next(iter(table.values())))}")
        table[fields[0]] = values
    n = len(next(iter(table.values())))
    return header[-n:], table


def write_folder(input_dir, output_dir, resolution, shards=None, split="train", attr_csv=None,
                 seed=0, overwrite=False):
    """Writes every image under input_dir to output_dir/split/ (see the module docstring).

    shards=None means one per IMAGES_PER_SHARD images. Returns the written paths.
    """
    core.check_image_size(resolution)
    if split not in ("train", "validation"):
        raise ValueError(f"split must be 'train' or 'validation', got {split!r}")
    paths, labels, classes = images.find_images(input_dir)
    n = len(paths)
    shards = shards or math.ceil(n / IMAGES_PER_SHARD)
    _check_shards(shards, n)
    attrs = None
    if attr_csv:
        _, table = read_attr_table(attr_csv)
        attrs = []
        for p in paths:
            key = next((k for k in (os.path.relpath(p, input_dir), os.path.basename(p)) if k in table),
                       None)
            if key is None:
                raise ValueError(f"no row for image {os.path.relpath(p, input_dir)!r} in {attr_csv!r}")
            attrs.append(table[key])
    order = np.random.default_rng(seed).permutation(n)
    folder = _prepare(output_dir, split, resolution, overwrite)
    written = []
    for s, chunk in enumerate(np.array_split(order, shards)):
        pixels = images.load_images([paths[i] for i in chunk], resolution, resize=True)
        path = os.path.join(folder, tfrecord_name(split, resolution_log2(resolution), s, shards))
        with tf.io.TFRecordWriter(path) as writer:
            for j, i in enumerate(chunk):
                writer.write(serialize_example(pixels[j], labels[i], None if attrs is None else attrs[i]))
        written.append(path)
    print(f"wrote {n} images ({resolution}x{resolution}) to {shards} shard(s) in {folder}"
          + (f"; labels: {', '.join(f'{i}={c}' for i, c in enumerate(classes))}" if classes else ""))
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m data_loaders.write_tfrecords",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--input_dir", required=True, help="folder of images (class sub-folders "
                        "give labels)")
    parser.add_argument("--output_dir", required=True, help="TFRecord root (the --data_dir of "
                        "train.py); files go to OUTPUT_DIR/SPLIT/")
    parser.add_argument("--resolution", type=int, required=True, help="image size, a power of two")
    parser.add_argument("--shards", type=int, default=None,
                        help=f"number of files (default: one per {IMAGES_PER_SHARD} images); "
                        f"training on N workers needs at least N")
    parser.add_argument("--split", default="train", choices=["train", "validation"])
    parser.add_argument("--attr_csv", default=None, help="per-image integer attributes, stored "
                        "as the 'attr' feature (CelebA's list_attr_celeba.csv)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image-to-shard order")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing files of this split and resolution")
    args = parser.parse_args(argv)
    try:
        write_folder(args.input_dir, args.output_dir, args.resolution, args.shards, args.split,
                     args.attr_csv, args.seed, args.overwrite)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        parser.exit(2, f"write_tfrecords: error: {e}\n")


if __name__ == "__main__":
    main()
