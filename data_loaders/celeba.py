"""CelebA in its official aligned-and-cropped layout (`--problem celeba --data_dir DIR`), read straight
from the release's JPEGs with tf.data: no conversion step. Not in openai/glow, whose `celeba` problem
reads CelebA-HQ TFRecords (still read by get_data when DIR holds train/ and validation/ instead).

Layout (the release's files, unchanged):
  DIR/img_align_celeba/000001.jpg ...   178x218 (full size) or 89x109 (half size) face crops
  DIR/list_attr_celeba.txt              line 1 the image count, line 2 the 40 attribute names, then
                                        one row per image: `000001.jpg -1  1  1 -1 ...` (+1 has it,
                                        -1 has not); CRLF line ends and runs of spaces are accepted
  DIR/list_eval_partition.txt           optional: `000001.jpg 0` with 0 train, 1 valid, 2 test

Images: the rows of the attribute file whose JPEG is present (a subset of the release, e.g. its
first 10,000 images, is a valid folder; rows without a JPEG are skipped and counted in
`missing`). Their size (full or half) is read from the first and last image; every image must be
of that size.

Crop (Real NVP's CelebA crop, Dinh et al. 2017, also the CelebA-64 setting Glow's paper compares
with): the 148x148 square whose top-left corner is at row 40, column 15 of the 218x178 image, i.e.
rows 40..187 and columns 15..162, around the face (horizontally centred: 15 + 74 = 89 = 178 / 2);
at half size the same square halved: 74x74 at row 20, column 7 (column 7.5 rounded down). Then an
antialiased Lanczos-3 resize to image_size x image_size (default 64), rounded and clipped to uint8:
the filter of glow_tf.images.centre_crop_resize, which the other loaders and the demo's uploads use
(Pillow's LANCZOS; TensorFlow's agrees within 0.2 levels on average). image_size may not exceed the
crop's side (no upsampling).

Split: with list_eval_partition.txt, its 0 rows train and its 1 rows ("valid") are the test stream
used during training (its 2 rows, the official test set, are kept out of training and of the
per-epoch evaluation: `split_files(..., "test")` gives them). Without it, by file order: the last
HOLDOUT_FRACTION (10%, at least one image) of the present images is the test stream and the rest
train; the first 10,000 release images give 9,000 train (000001..009000) and 1,000 test. The
official partition of the full release follows the file index as well (000001-162770 train,
162771-182637 valid, 182638-202599 test), so on the full release without the partition file the
rule above differs from the official one; bring the partition file.

Labels: the 40 attributes are multi-label (several per image), while a class-conditional Glow
(--ycond) takes one class index per image from n_y classes; so the streams' y is 0 (n_y = 1) and
the attributes serve the latent directions (`python -m glow_tf direction`, one [40, D] array in
CELEBA_ATTRIBUTES order), as in the original's demo. `CelebAFolder.labels` holds them (+1/-1).

Streams: train batch k holds the images of positions [k*B, (k+1)*B) of the per-epoch permutations
(arrays.ArrayStream's order, a function of (seed, rank, size) only), decoded in parallel; no
augmentation (as the TFRecord problems: --dal is ignored).
"""
import functools
import os

import numpy as np
import tensorflow as tf

from data_loaders import core
from data_loaders.arrays import ArrayStream, shard
from data_loaders.core import loader_seed

# The 40 CelebA attributes, in list_attr_celeba.txt's order (the TFRecords' `attr` field and the
# original demo's z_manipulate.npy rows follow it too).
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young")

IMAGE_DIR = "img_align_celeba"
ATTRIBUTE_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
DEFAULT_IMAGE_SIZE = 64
HOLDOUT_FRACTION = 0.1
# (height, width) of the release's images -> (top, left, side) of Real NVP's face crop.
CROPS = {(218, 178): (40, 15, 148), (109, 89): (20, 7, 74)}
SPLITS = {"train": 0, "valid": 1, "test": 2}
_FOREVER = 2 ** 62


def is_celeba_folder(data_dir):
    """True when data_dir looks like the official layout (its image folder or attribute file)."""
    return bool(data_dir) and any(os.path.exists(os.path.join(data_dir, name)) for name in (IMAGE_DIR, ATTRIBUTE_FILE))


def _lines(path):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8-sig")
    return [line.split() for line in text.splitlines()]


def read_attributes(path):
    """(file names [N], labels int8 [N, 40] of +1/-1) from list_attr_celeba.txt, columns in
    CELEBA_ATTRIBUTES order (the file's own order, checked)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no CelebA attribute file {path!r} (expected {ATTRIBUTE_FILE}: a count line, the 40 "
                                f"attribute names, then one `file.jpg +1 -1 ...` row per image)")
    lines = _lines(path)
    if len(lines) < 2 or len(lines[0]) != 1 or not lines[0][0].isdigit():
        raise ValueError(f"{path!r}: the first line must be the image count (one number), then the 40 attribute "
                         f"names")
    names = tuple(lines[1])
    if names != CELEBA_ATTRIBUTES:
        raise ValueError(f"{path!r} line 2 names {len(names)} attributes {' '.join(names[:3])} ...; expected CelebA's "
                         f"40 ({' '.join(CELEBA_ATTRIBUTES[:3])} ... {CELEBA_ATTRIBUTES[-1]}) in that order")
    files, rows = [], []
    for number, row in enumerate(lines[2:], start=3):
        if not row:
            continue
        if len(row) != 41 or any(v not in ("1", "-1") for v in row[1:]):
            raise ValueError(f"{path!r} line {number}: expected a file name and 40 values +1/-1, got "
                             f"{' '.join(row[:4])}{' ...' if len(row) > 4 else ''} ({len(row) - 1} values)")
        files.append(row[0])
        rows.append([int(v) for v in row[1:]])
    if not files:
        raise ValueError(f"{path!r} has no image rows")
    return files, np.asarray(rows, np.int8)


def read_partition(path):
    """{file name: 0 train / 1 valid / 2 test} from list_eval_partition.txt."""
    out = {}
    for number, row in enumerate(_lines(path), start=1):
        if not row:
            continue
        if len(row) != 2 or row[1] not in ("0", "1", "2"):
            raise ValueError(f"{path!r} line {number}: expected `file.jpg 0|1|2` (train, valid, test), got "
                             f"{' '.join(row)!r}")
        out[row[0]] = int(row[1])
    return out


def _image_size(path):
    from PIL import Image  # noqa: PLC0415 (reads the header only)

    with Image.open(path) as im:
        return im.size[1], im.size[0]


class CelebAFolder:
    """The images of one official-layout folder, their attributes and split (see the module docstring).

    Attributes: data_dir, files [N] (names, in the attribute file's order), labels int8 [N, 40],
    partition int8 [N] (0 train / 1 valid / 2 test; from the partition file, or the documented
    rule: 0 for the first 90%, 1 for the rest), has_partition, missing (rows without a JPEG),
    shape (height, width), crop (top, left, side).
    """

    def __init__(self, data_dir):
        if not data_dir or not os.path.isdir(data_dir):
            raise FileNotFoundError(f"CelebA folder {data_dir!r} does not exist (expected {IMAGE_DIR}/ and "
                                    f"{ATTRIBUTE_FILE} inside)")
        self.data_dir = data_dir
        image_dir = os.path.join(data_dir, IMAGE_DIR)
        attr_path = os.path.join(data_dir, ATTRIBUTE_FILE)
        if not os.path.isfile(attr_path):
            raise FileNotFoundError(f"CelebA folder {data_dir!r} has no {ATTRIBUTE_FILE} (the release's attribute "
                                    f"file, beside {IMAGE_DIR}/)")
        if not os.path.isdir(image_dir):
            raise FileNotFoundError(f"CelebA folder {data_dir!r} has no {IMAGE_DIR}/ folder of JPEGs")
        files, labels = read_attributes(attr_path)
        present = set(os.listdir(image_dir))
        keep = np.array([f in present for f in files])
        if not keep.any():
            raise ValueError(f"none of the {len(files)} images named in {attr_path!r} is in {image_dir!r}")
        self.missing = int((~keep).sum())
        self.files = [f for f, k in zip(files, keep) if k]
        self.labels = labels[keep]
        part_path = os.path.join(data_dir, PARTITION_FILE)
        self.has_partition = os.path.isfile(part_path)
        if self.has_partition:
            partition = read_partition(part_path)
            unknown = [f for f in self.files if f not in partition]
            if unknown:
                raise ValueError(f"{part_path!r} has no row for {unknown[0]} ({len(unknown)} image(s) without one)")
            self.partition = np.array([partition[f] for f in self.files], np.int8)
        else:
            n_test = max(1, int(len(self.files) * HOLDOUT_FRACTION))
            if len(self.files) < 2:
                raise ValueError(f"{data_dir!r} holds 1 image; need at least 2 (one to train, one to test)")
            self.partition = np.zeros(len(self.files), np.int8)
            self.partition[len(self.files) - n_test:] = 1
        shapes = {_image_size(os.path.join(image_dir, self.files[i])) for i in (0, -1)}
        if len(shapes) != 1 or next(iter(shapes)) not in CROPS:
            raise ValueError(f"{image_dir!r}: images of {' and '.join(f'{w}x{h}' for h, w in sorted(shapes))} pixels; "
                             f"expected the release's aligned crops, all 178x218 (full size) or all 89x109 (half)")
        self.shape = next(iter(shapes))
        self.crop = CROPS[self.shape]

    def split_files(self, split):
        """(full paths, labels [n, 40]) of one split: 'train', 'valid' (the test stream), 'test' or 'all'."""
        if split == "all":
            mask = np.ones(len(self.files), bool)
        elif split in SPLITS:
            mask = self.partition == SPLITS[split]
        else:
            raise ValueError(f"split {split!r}; expected one of train, valid, test, all")
        paths = [os.path.join(self.data_dir, IMAGE_DIR, f) for f, m in zip(self.files, mask) if m]
        return paths, self.labels[mask]

    def check_image_size(self, image_size):
        core.check_image_size(image_size)
        if image_size > self.crop[2]:
            raise ValueError(f"image_size {image_size} is larger than the {self.crop[2]}x{self.crop[2]} face crop of "
                             f"these {self.shape[1]}x{self.shape[0]} images; use {2 ** int(np.log2(self.crop[2]))} "
                             f"or less (no upsampling)")

    def decoder(self, image_size):
        """A TF function: a JPEG path -> uint8 [image_size, image_size, 3], the crop and resize above."""
        self.check_image_size(image_size)
        top, left, side = self.crop
        height, width = self.shape

        def decode(path):
            image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3, dct_method="INTEGER_ACCURATE")
            tf.debugging.assert_equal(tf.shape(image)[:2], tf.constant([height, width]),
                                      message=f"a CelebA image is not {width}x{height} like the folder's first")
            image = tf.cast(image[top:top + side, left:left + side], tf.float32)
            image = tf.image.resize(image[None], [image_size, image_size], method="lanczos3", antialias=True)[0]
            return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        return decode

    def load(self, paths, image_size):
        """uint8 [n, image_size, image_size, 3] of these paths (eagerly, decoded in parallel)."""
        decode = self.decoder(image_size)
        ds = tf.data.Dataset.from_tensor_slices(list(paths)).map(decode, num_parallel_calls=tf.data.AUTOTUNE,
                                                                 deterministic=True)
        if not len(paths):
            return np.zeros((0, image_size, image_size, 3), np.uint8)
        return next(ds.batch(len(paths)).as_numpy_iterator())

    def batches(self, paths, labels, image_size, batch_size):
        """tf.data.Dataset of (uint8 images [<= batch_size, ...], labels int8 [<= batch_size, 40]) in order."""
        decode = self.decoder(image_size)
        ds = tf.data.Dataset.from_tensor_slices((list(paths), labels))
        ds = ds.map(lambda p, a: (decode(p), a), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.batch(batch_size).prefetch(2)


class CelebAData(core.Data):
    """core.Data over an official-layout CelebA folder (see the module docstring): train = partition 0,
    test stream = partition 1 ("valid", or the held-out last 10% without a partition file), sharded
    contiguously by rank; y is always 0 (n_y = 1)."""

    def __init__(self, data_dir, *, image_size, n_test, batches, seed, rank, size):
        self.folder = CelebAFolder(data_dir)
        self.problem, self.n_y = "celeba", 1
        self.image_size = DEFAULT_IMAGE_SIZE if image_size == -1 else image_size
        self.folder.check_image_size(self.image_size)
        self.local_batch_train, local_batch_test, self.local_batch_init = batches
        train_paths, _ = self.folder.split_files("train")
        test_paths, _ = self.folder.split_files("valid")
        if len(train_paths) < size or len(test_paths) < size:
            raise ValueError(f"celeba: {size} ranks but {len(train_paths)} training and {len(test_paths)} test images "
                             f"in {data_dir!r}")
        self._train_paths = np.asarray(train_paths[shard(len(train_paths), size, rank)])
        self._test_paths = np.asarray(test_paths[shard(len(test_paths), size, rank)])
        n_test = len(self._test_paths) * size if n_test == -1 else n_test
        if n_test < size or n_test // size > len(self._test_paths):
            raise ValueError(f"n_test={n_test}: expected {size}..{len(self._test_paths) * size} (the test images of "
                             f"{data_dir!r} over {size} rank(s))")
        self.local_batch_test, self.full_test_its, self.n_test = core.test_split(n_test // size, local_batch_test)
        self.n_train = len(self._train_paths)
        self._decode = self.folder.decoder(self.image_size)
        index = np.arange(self.n_train)
        zeros = np.zeros(self.n_train, np.int32)
        self._train = ArrayStream(index, zeros, self.local_batch_train, self.image_size, None,
                                  loader_seed(seed, rank, size, "train"))
        self._init = ArrayStream(index, zeros, self.local_batch_train, self.image_size, None,
                                 loader_seed(seed, rank, size, "init"))

    def _stream(self, indices_of, paths, start, stop, batch):
        """Batches k in [start, stop): the images paths[indices_of(k)], decoded in parallel, in order."""
        paths = tf.constant(paths)

        def indices(k):
            return tf.ensure_shape(tf.numpy_function(indices_of, [k], tf.int64, stateful=False), [batch])
        ds = tf.data.Dataset.range(start, stop).map(indices).unbatch()
        ds = ds.map(lambda i: self._decode(tf.gather(paths, i)), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
        size = self.image_size
        return ds.batch(batch).map(lambda x: (tf.ensure_shape(x, [batch, size, size, 3]), tf.zeros([batch], tf.int32)))

    def _train_indices(self, stream):
        return lambda k: stream.indices(int(k)).astype(np.int64)

    def _test_indices(self, k):
        b = self.local_batch_test
        return (np.arange(k * b, (k + 1) * b) % len(self._test_paths)).astype(np.int64)

    def train(self, start_batch=0):
        if start_batch < 0:
            raise ValueError(f"start_batch must be >= 0, got {start_batch}")
        ds = self._stream(self._train_indices(self._train), self._train_paths, start_batch, _FOREVER,
                          self.local_batch_train)
        return ds.prefetch(2)

    def test(self, start_batch=0):
        if start_batch < 0:
            raise ValueError(f"start_batch must be >= 0, got {start_batch}")
        return self._stream(self._test_indices, self._test_paths, start_batch, start_batch + self.full_test_its,
                            self.local_batch_test).prefetch(2)

    @functools.cached_property
    def init_batch(self):
        """openai make_batch: ceil(init/train) train batches of the init stream, concatenated, truncated."""
        k = core.n_batches(self.local_batch_init, self.local_batch_train)
        ds = self._stream(self._train_indices(self._init), self._train_paths, 0, k, self.local_batch_train)
        xs, ys = zip(*ds.as_numpy_iterator())
        return np.concatenate(xs)[:self.local_batch_init], np.concatenate(ys)[:self.local_batch_init]
