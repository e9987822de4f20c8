#!/usr/bin/env python
"""CelebA input speed: images per second of `--problem celeba`'s JPEG pipeline (read, decode, crop,
Lanczos resize; data_loaders/celeba.py) beside reading the same images, already cropped and resized,
from a TFRecord (data_loaders.write_tfrecords' format: raw uint8 bytes; parse + reshape only), timed
in the same run, interleaved, median of --rounds.

    python bench/celeba_input.py --data_dir CELEBA_FOLDER [--n 2000] [--image_size 64] [--rounds 3]

The TFRecord is written once into a temporary folder (not timed) and removed at the end.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True, help="a CelebA folder in the official layout")
    parser.add_argument("--n", type=int, default=2000, help="images per pass (default 2000)")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    from data_loaders import celeba  # noqa: PLC0415
    from data_loaders.tfrecords import parse_record  # noqa: PLC0415
    from data_loaders.write_tfrecords import write_examples  # noqa: PLC0415

    folder = celeba.CelebAFolder(args.data_dir)
    paths, labels = folder.split_files("all")
    paths, labels = paths[:args.n], labels[:args.n]
    n = len(paths)

    def jpeg_pass():
        for _ in folder.batches(paths, labels, args.image_size, args.batch_size):
            pass

    with tempfile.TemporaryDirectory() as tmp:
        x = folder.load(paths, args.image_size)
        files = write_examples(tmp, "train", args.image_size, list(x), np.zeros(n, np.int64), attrs=labels)
        size_mb = sum(os.path.getsize(f) for f in files) / 1e6

        def tfrecord_pass():
            ds = tf.data.TFRecordDataset(files).map(lambda r: parse_record(r, args.image_size, n_attr=40),
                                                   num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            for _ in ds.batch(args.batch_size).prefetch(2):
                pass

        times = {"JPEG (decode + crop + resize)": [], "TFRecord (pre-resized raw bytes)": []}
        jpeg_pass(), tfrecord_pass()  # warm-up: file cache, tracing
        for _ in range(args.rounds):
            for name, fn in zip(times, (jpeg_pass, tfrecord_pass)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    jpeg_bytes = sum(os.path.getsize(p) for p in paths) / 1e6
    rates = {name: n / statistics.median(t) for name, t in times.items()}
    print(f"{n} CelebA images of {folder.shape[1]}x{folder.shape[0]} -> {args.image_size}x{args.image_size}, "
          f"{os.cpu_count()} CPUs, median of {args.rounds} interleaved passes:")
    for name, rate in rates.items():
        print(f"  {name:34s} {rate:8.0f} img/s")
    jpeg, tfr = rates.values()
    print(f"  TFRecord / JPEG: {tfr / jpeg:.1f}x; on disk: JPEGs {jpeg_bytes:.1f} MB, TFRecord {size_mb:.1f} MB "
          f"({size_mb / n * 202599 / 1e3:.2f} GB for the 202,599-image release at this size)")


if __name__ == "__main__":
    main()
