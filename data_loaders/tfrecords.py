"""openai/glow's TFRecord problems (imagenet-oord, imagenet, celeba, lsun_realnvp, lsun); ports
data_loaders/get_data.py.

Files: {data_dir}/{split}/{split}-r{log2(image_size):02d}-s-{shard:04d}-of-{n_shards:04d}.tfrecords
with split 'train' or 'validation'. Each record is a tf.train.Example with
  'shape' int64 [3] (H, W, 3), 'data' bytes (the uint8 HWC pixels), 'label' int64 [1],
  and optionally 'attr' int64 [n] (CelebA's 40 attributes, +-1; the original does not parse it).
lsun_realnvp's files (r06) hold images whose shorter side is 96; a 64x64 crop is taken at load
time, in the validation set too (openai get_data.py: rnd_crop).

Pipeline per rank, as openai input_fn, with these changes:
  * the file list is sorted before `shard` (the original sharded tf.data.list_files' shuffled
    order, which with per-rank seeds need not give disjoint shards; docs/original.md#q6): rank r
    reads files[r::size], disjoint across ranks;
  * every random op is seeded from (seed, rank, size) (core.loader_seed), and the random crop is
    stateless, seeded by the record's position in the stream, so the stream is reproducible;
  * train(start_batch) skips start_batch * local_batch_train raw records before parsing, which
    makes it equal to train(0) from batch start_batch on (the skipped records are read, not
    decoded). tf.data's seeded shuffles also depend on TF's global seed (tf.random.set_seed), so
    a resumed run must set the same one.
Train: files shuffled (buffer 1024) -> interleave(cycle_length=fmap) -> shuffle(4 * batch) ->
repeat -> parse (pmap parallel calls) -> batch -> prefetch. Validation: files in order,
no shuffles; the lsun problems' single validation shard is read by every rank (the original
skipped `shard` when 'lsun' was in the path; here it is keyed on the problem name).
"""
import functools
import glob
import os
import re

import numpy as np
import tensorflow as tf

from data_loaders import core

FILES_SHUFFLE = 1024  # openai get_data.py _FILES_SHUFFLE
SHUFFLE_FACTOR = 4  # openai get_data.py _SHUFFLE_FACTOR
_NAME = re.compile(r"^(?P<split>.+)-r(?P<lg>\d\d)-s-(?P<shard>\d{4})-of-(?P<n>\d{4})\.tfrecords$")


def tfrecord_name(split, resolution_log2, shard, n_shards):
    return f"{split}-r{resolution_log2:02d}-s-{shard:04d}-of-{n_shards:04d}.tfrecords"


def resolution_log2(image_size):
    return int(np.log2(image_size))


def list_tfrecords(data_dir, split, image_size):
    """The sorted, complete list of one split's files for image_size (openai get_tfr_file)."""
    folder = os.path.join(data_dir, split)
    lg = resolution_log2(image_size)
    pattern = os.path.join(folder, f"{split}-r{lg:02d}-s-*-of-*.tfrecords")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"TFRecord folder {folder!r} does not exist; expected files like "
                                f"{pattern} (written by python -m data_loaders.write_tfrecords)")
    files = sorted(glob.glob(pattern))
    if not files:
        found = sorted({int(m["lg"]) for m in map(_NAME.match, os.listdir(folder)) if m})
        hint = (f"; found resolutions {', '.join(f'r{r:02d} ({2 ** r}x{2 ** r})' for r in found)}"
                if found else "")
        raise FileNotFoundError(f"no {split} TFRecords for image_size {image_size} ({pattern}) "
                                f"in {folder!r}{hint}")
    counts = {int(_NAME.match(os.path.basename(f))["n"]) for f in files}
    if len(counts) > 1:
        raise ValueError(f"{folder!r} mixes shard counts {sorted(counts)} for r{lg:02d}; remove "
                         f"the stale files")
    n = counts.pop()
    missing = [tfrecord_name(split, lg, i, n) for i in range(n)
               if os.path.join(folder, tfrecord_name(split, lg, i, n)) not in files]
    if missing:
        raise FileNotFoundError(f"not all TFRecord shards are present in {folder!r}: {len(missing)} "
                                f"of {n} missing ({', '.join(missing[:3])}...)")
    return files


def _features(n_attr):
    features = {"shape": tf.io.FixedLenFeature([3], tf.int64),
                "data": tf.io.FixedLenFeature([], tf.string),
                "label": tf.io.FixedLenFeature([1], tf.int64)}
    if n_attr:
        features["attr"] = tf.io.FixedLenFeature([n_attr], tf.int64)
    return features


def parse_record(record, image_size, crop_seed=None, n_attr=0):
    """One serialized Example -> (image uint8 [image_size, image_size, 3], label int32[, attr]).

    openai parse_tfrecord_tf; with crop_seed (a [2] int64 tensor) the image is reshaped to its
    stored shape and a stateless random image_size crop is taken (lsun_realnvp).
    """
    f = tf.io.parse_single_example(record, _features(n_attr))
    img = tf.io.decode_raw(f["data"], tf.uint8)
    if crop_seed is None:
        check = tf.debugging.assert_equal(
            f["shape"], tf.constant([image_size, image_size, 3], tf.int64),
            message=f"a TFRecord image's shape differs from [{image_size}, {image_size}, 3]")
        with tf.control_dependencies([check]):
            img = tf.reshape(img, [image_size, image_size, 3])
    else:
        img = tf.reshape(img, f["shape"])
        img = tf.image.stateless_random_crop(img, [image_size, image_size, 3], seed=crop_seed)
    label = tf.cast(tf.reshape(f["label"], []), tf.int32)
    return (img, label, f["attr"]) if n_attr else (img, label)


def _as_file_list(files):
    """The files of a file, a folder (its .tfrecords, searched recursively, sorted), a glob pattern
    (sorted matches), or a list of these (in the given order)."""
    items = [files] if isinstance(files, (str, os.PathLike)) else list(files)
    found = []
    for item in map(os.fspath, items):
        if os.path.isdir(item):
            matches = sorted(glob.glob(os.path.join(item, "**", "*.tfrecords"), recursive=True))
            if not matches:
                raise FileNotFoundError(f"no .tfrecords files under {item!r}")
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item))
            if not matches:
                raise FileNotFoundError(f"no TFRecord files match {item!r}")
        elif os.path.isfile(item):
            matches = [item]
        else:
            raise FileNotFoundError(f"TFRecord file {item!r} does not exist")
        found.extend(matches)
    return found


class CorruptTFRecordError(tf.errors.DataLossError, ValueError):
    """A DataLossError (failed record checksum, truncated file) that names the file; also a
    ValueError, so that callers handling bad input catch it."""

    def __init__(self, path, error):
        super().__init__(None, None, f"corrupt TFRecord file {path!r}: {error.message}")
        self.path = path


def read_tfrecords(files, with_attr=False):
    """Yields every record of `files` (files, folders searched recursively, or glob patterns; see
    `_as_file_list`), file by file, as numpy (x uint8 [H, W, 3], y int[, attr]).

    Images keep their stored shape (no crop). with_attr=True also yields 'attr' (e.g. CelebA's
    40 attributes) and raises if a record has none. A corrupt file raises CorruptTFRecordError naming it.
    """
    for path in _as_file_list(files):
        try:
            for record in tf.data.TFRecordDataset(path):
                yield _decode_eager(record, path, with_attr)
        except tf.errors.DataLossError as e:
            raise CorruptTFRecordError(path, e) from None


def _decode_eager(record, path, with_attr):
    features = _features(0)
    if with_attr:
        features["attr"] = tf.io.VarLenFeature(tf.int64)
    try:
        f = tf.io.parse_single_example(record, features)
    except tf.errors.InvalidArgumentError as e:
        raise ValueError(f"a record of {path!r} is not in glow's TFRecord format (features "
                         f"'shape', 'data', 'label'{', attr' if with_attr else ''}): "
                         f"{e.message.splitlines()[0]}") from None
    shape = tuple(int(s) for s in f["shape"].numpy())
    data = np.frombuffer(f["data"].numpy(), np.uint8)
    if len(shape) != 3 or data.size != int(np.prod(shape)):
        raise ValueError(f"a record of {path!r} declares shape {shape} but holds {data.size} bytes")
    out = (data.reshape(shape), int(f["label"].numpy()[0]))
    if with_attr:
        attr = tf.sparse.to_dense(f["attr"]).numpy()
        if attr.size == 0:
            raise ValueError(f"a record of {path!r} has no 'attr' feature")
        out += (attr,)
    return out


def find_corrupt_file(files):
    """The first of `files` whose records fail their checksums, or None (reads every byte)."""
    for path in _as_file_list(files):
        try:
            for _ in tf.data.TFRecordDataset(path):
                pass
        except tf.errors.DataLossError:
            return path
    return None


def _first_record(files, what):
    """(path, numpy record) of the first non-empty file; clear errors for corrupt/empty files."""
    for path in files:
        try:
            for record in tf.data.TFRecordDataset(path).take(1):
                return path, record
        except tf.errors.DataLossError as e:
            raise CorruptTFRecordError(path, e) from None
    raise ValueError(f"{what}: the files {files[0]!r}...{files[-1]!r} ({len(files)}) hold no records")


def _check_first(files, image_size, crop, what):
    """Checks the first record's shape against image_size; returns the length of its 'attr'."""
    path, record = _first_record(files, what)
    f = tf.io.parse_single_example(record, {"attr": tf.io.VarLenFeature(tf.int64)})
    x, _ = _decode_eager(record, path, False)
    h, w, c = x.shape
    if c != 3:
        raise ValueError(f"{path!r} holds {h}x{w} images with {c} channels, expected 3 (RGB)")
    if crop and (h < image_size or w < image_size):
        raise ValueError(f"{path!r} holds {h}x{w} images, smaller than the {image_size}x"
                         f"{image_size} crop")
    if not crop and (h, w) != (image_size, image_size):
        raise ValueError(f"{path!r} holds {h}x{w}x{c} images, expected {image_size}x{image_size}x3 "
                         f"for image_size {image_size}")
    return int(f["attr"].dense_shape[0])


class TFRecordData(core.Data):
    """core.Data over openai-format TFRecords (see the module docstring).

    n_test is the total over ranks (the original's --n_test; -1 means openai's default: 50000
    for the imagenets, 3000 for celeba, 300 per rank for the lsuns). The validation stream
    repeats, as the original's, so an n_test above the real count wraps around. n_train is None.
    train() and test() take with_attr=True to yield (x, y, attr) when the records carry 'attr'.
    """

    def __init__(self, problem, data_dir, *, image_size, n_test, batches, fmap, pmap, seed, rank,
                 size):
        self.problem, self.image_size, self.n_y = problem, image_size, core.N_Y[problem]
        self.local_batch_train, local_batch_test, self.local_batch_init = batches
        self.fmap, self.pmap, self.seed, self.rank, self.size = fmap, pmap, seed, rank, size
        self.n_train = None
        self.crop = problem == "lsun_realnvp"
        train_files = list_tfrecords(data_dir, "train", image_size)
        valid_files = list_tfrecords(data_dir, "validation", image_size)
        if len(train_files) < size:
            raise ValueError(f"{size} ranks but only {len(train_files)} train TFRecord shards in "
                             f"{os.path.dirname(train_files[0])!r}; each rank needs at least one "
                             f"(rewrite them with --shards >= {size})")
        self.train_files = train_files[rank::size]
        if problem in ("lsun", "lsun_realnvp"):
            self.test_files = valid_files
        elif len(valid_files) < size:
            raise ValueError(f"{size} ranks but only {len(valid_files)} validation TFRecord shards "
                             f"in {os.path.dirname(valid_files[0])!r}; each rank needs at least one")
        else:
            self.test_files = valid_files[rank::size]

        if n_test == -1 and problem in core.DEFAULT_TFR_N_TEST_PER_RANK:
            n_test = core.DEFAULT_TFR_N_TEST_PER_RANK[problem] * size
        elif n_test == -1:
            n_test = core.DEFAULT_TFR_N_TEST[problem]
        if n_test < size:
            raise ValueError(f"n_test={n_test} must be at least the number of ranks ({size})")
        self.local_batch_test, self.full_test_its, self.n_test = core.test_split(
            n_test // size, local_batch_test)

        self.n_attr = _check_first(self.train_files, image_size, self.crop,
                                   f"{problem} train shard of rank {rank}")
        _check_first(self.test_files, image_size, self.crop, f"{problem} validation shard of rank {rank}")

    def _seed(self, stream):
        return core.loader_seed(self.seed, self.rank, self.size, stream)

    def _records(self, files, shuffle_stream):
        ds = tf.data.Dataset.from_tensor_slices(files)
        if shuffle_stream:
            ds = ds.shuffle(FILES_SHUFFLE, seed=self._seed(shuffle_stream + "/files"))
        parallel = dict(num_parallel_calls=self.fmap, deterministic=True) if self.fmap > 1 else {}
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=self.fmap, block_length=1, **parallel)
        if shuffle_stream:
            ds = ds.shuffle(self.local_batch_train * SHUFFLE_FACTOR,
                            seed=self._seed(shuffle_stream + "/records"))
        return ds.repeat()

    def _parsed(self, records, start, batch, crop_stream, with_attr):
        if with_attr and not self.n_attr:
            raise ValueError(f"{self.problem}: the TFRecords in {os.path.dirname(self.train_files[0])!r} "
                             f"have no 'attr' feature")
        n_attr = self.n_attr if with_attr else 0
        crop_base = self._seed(crop_stream)

        def parse(index, record):
            seed = tf.stack([tf.constant(crop_base, tf.int64), index]) if self.crop else None
            return parse_record(record, self.image_size, seed, n_attr)

        ds = records.enumerate(start).map(parse, num_parallel_calls=self.pmap, deterministic=True)
        return ds.batch(batch, drop_remainder=True)

    def train(self, start_batch=0, with_attr=False):
        if start_batch < 0:
            raise ValueError(f"start_batch must be >= 0, got {start_batch}")
        skip = start_batch * self.local_batch_train
        records = self._records(self.train_files, "train").skip(skip)
        return self._parsed(records, skip, self.local_batch_train, "train/crop", with_attr).prefetch(1)

    def test(self, start_batch=0, with_attr=False):
        if start_batch < 0:
            raise ValueError(f"start_batch must be >= 0, got {start_batch}")
        skip = start_batch * self.local_batch_test
        records = self._records(self.test_files, None).skip(skip)
        ds = self._parsed(records, skip, self.local_batch_test, "test/crop", with_attr)
        return ds.take(self.full_test_its).prefetch(1)

    @functools.cached_property
    def init_batch(self):
        """openai make_batch over a train stream seeded apart from train() (stream 'init')."""
        k = core.n_batches(self.local_batch_init, self.local_batch_train)
        records = self._records(self.train_files, "init")
        ds = self._parsed(records, 0, self.local_batch_train, "init/crop", False).take(k)
        try:
            xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds))
        except tf.errors.DataLossError as e:
            raise self.explain_data_loss(e) from None
        n = self.local_batch_init
        return np.concatenate(xs)[:n], np.concatenate(ys)[:n]

    def explain_data_loss(self, error):
        """A CorruptTFRecordError naming this rank's corrupt file, for a DataLossError raised while
        iterating train() or test() (TF's own message does not name the file). Scans the
        rank's files; use as `except tf.errors.DataLossError as e: raise data.explain_data_loss(e)`.
        """
        path = find_corrupt_file(self.train_files + [f for f in self.test_files
                                                      if f not in self.train_files])
        return error if path is None else CorruptTFRecordError(path, error)
