"""Tests for data_loaders' in-memory problems (mnist, cifar10, digits, folder), batch sizes,
augmentation and errors, against openai/glow's definitions (docs/original.md#batch-sizes, #mnist-and-cifar10, #augmentation)."""
import collections
import gzip
import os
import pickle

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

import data_loaders
from data_loaders import augment
from data_loaders.arrays import downsample, x_to_uint8


def _take(ds, n):
    return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]


def _same_batches(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


# --- batch sizes (docs/original.md#batch-sizes) ----------------------------------------------------

@pytest.mark.parametrize("image_size,expected", [(32, (64, 50, 256)), (64, (16, 10, 64)),
                                                 (128, (4, 2, 16)), (256, (1, 1, 4))])
def test_batch_sizes_match_the_originals_table(image_size, expected):
    assert data_loaders.batch_sizes(64, 256, 32, image_size) == expected


@pytest.mark.parametrize("train,test", [(7, 5), (3, 2), (12, 10), (1024, 50), (49, 25)])
def test_test_batch_off_the_table_is_the_largest_table_value_not_above_train(train, test):
    assert data_loaders.batch_sizes(train, 256, 32, 32)[:2] == (train, test)


def test_zero_local_batch_names_its_inputs():
    with pytest.raises(ValueError, match=r"n_batch_train\*anchor_size\*\*2//image_size\*\*2 = 1\*32\*\*2//64\*\*2"):
        data_loaders.batch_sizes(1, 256, 32, 64)


@pytest.mark.parametrize("image_size", [96, 0, -4, 3])
def test_image_size_must_be_a_power_of_two(image_size):
    with pytest.raises(ValueError, match=f"power of two.*got {image_size}"):
        data_loaders.get_data("digits", image_size=image_size)


def test_unknown_problem_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown problem 'svhn'.*mnist, cifar10, imagenet-oord.*digits"):
        data_loaders.get_data("svhn")


@pytest.mark.parametrize("dal", [3, -1])
def test_dal_must_be_0_1_or_2(dal):
    with pytest.raises(ValueError, match=f"dal .* got {dal}"):
        data_loaders.get_data("digits", dal=dal)


def test_rank_must_be_below_size():
    with pytest.raises(ValueError, match="rank=2, size=2"):
        data_loaders.get_data("digits", rank=2, size=2)


# --- downsampling and augmentation (Keras 2.2 ImageDataGenerator) ----------------------------

def test_box_average_then_floor_on_known_values():
    x = np.array([[0, 1, 10, 10],
                  [2, 4, 10, 11],
                  [255, 255, 0, 0],
                  [255, 254, 0, 3]], np.float32)
    x = np.repeat(x[None, :, :, None], 3, axis=3)
    # blocks: (0+1+2+4)/4 = 1.75, 41/4 = 10.25, 1019/4 = 254.75, 3/4 = 0.75
    np.testing.assert_array_equal(x_to_uint8(downsample(x, 2))[0, :, :, 0], [[1, 10], [254, 0]])
    np.testing.assert_array_equal(x_to_uint8(np.array([-1.5, 0.99, 254.999, 300.0])), [0, 0, 254, 255])


def _ramp(h=6, w=6):
    """Column ramp 10*j, grey, float32 [h, w, 3]."""
    return np.repeat(np.tile(10.0 * np.arange(w, dtype=np.float32), (h, 1))[:, :, None], 3, axis=2)


@pytest.mark.parametrize("ty", [1.5, 0.25, -1.5])
def test_width_shift_is_bilinear_with_nearest_fill(ty):
    # output[i, j] = input at column j + ty, linear between columns, edge column repeated outside.
    out = augment.apply_transform(_ramp(), augment.transform_matrix(6, 6, ty=ty))
    expected = 10 * np.clip(np.arange(6) + ty, 0, 5)
    np.testing.assert_allclose(out[:, :, 0], np.tile(expected, (6, 1)), atol=1e-4)
    assert out.dtype == np.float32


def test_height_shift_moves_rows():
    x = np.transpose(_ramp(), (1, 0, 2))  # row ramp 10*i
    out = augment.apply_transform(x, augment.transform_matrix(6, 6, tx=-0.5))
    np.testing.assert_allclose(out[:, 3, 1], 10 * np.clip(np.arange(6) - 0.5, 0, 5), atol=1e-4)


def test_shift_then_floor_to_uint8():
    # 10*j + 2.7 floors to 10*j + 2 (floor, not round), the last column clamps to 50.
    out = x_to_uint8(augment.apply_transform(_ramp(), augment.transform_matrix(6, 6, ty=0.27)))
    np.testing.assert_array_equal(out[0, :, 0], [2, 12, 22, 32, 42, 50])


def _index_image(h=4, w=4):
    return np.arange(h * w, dtype=np.float32).reshape(h, w, 1)


def test_rotation_is_centred_on_keras_offset_centre():
    # Keras centres on o = (h/2 + 0.5, w/2 + 0.5) = (2.5, 2.5) for 4x4. A 90 degree rotation maps
    # output (i, j) to input (2*2.5 - j, i) = (5 - j, i), rows clamped to 3 ('nearest').
    x = _index_image()
    out = augment.apply_transform(x, augment.transform_matrix(4, 4, theta=np.pi / 2))
    expected = np.array([[x[min(5 - j, 3), i, 0] for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(out[:, :, 0], expected, atol=1e-4)


def test_rotation_composes_before_the_shift():
    # M = R @ T: input = R (o - c + t) + c, so with t = (1, 0): (5 - j, i + 1).
    # (T @ R would give (6 - j, i).)
    x = _index_image()
    out = augment.apply_transform(x, augment.transform_matrix(4, 4, theta=np.pi / 2, tx=1.0))
    expected = np.array([[x[min(5 - j, 3), min(i + 1, 3), 0] for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(out[:, :, 0], expected, atol=1e-4)


def test_zoom_and_shear_matrices():
    m = augment.transform_matrix(4, 4, zx=2.0, zy=0.5)
    # about c = 2.5: input = c + z * (o - c)
    np.testing.assert_allclose(m @ [0, 0, 1], [2.5 - 2 * 2.5, 2.5 - 0.5 * 2.5, 1])
    s = np.deg2rad(30)
    m = augment.transform_matrix(4, 4, shear=s)
    np.testing.assert_allclose(m[:2, :2], [[1, -np.sin(s)], [0, np.cos(s)]])


def test_one_3d_resampling_equals_kerass_per_channel_resampling():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
    m = augment.transform_matrix(8, 8, theta=0.2, tx=0.7, ty=-1.3, shear=0.01, zx=1.05, zy=0.93)
    keras = np.stack([ndimage.affine_transform(x[:, :, c], m[:2, :2], m[:2, 2], order=1,
                                               mode="nearest") for c in range(3)], axis=2)
    np.testing.assert_array_equal(augment.apply_transform(x, m), keras)


def test_augmentation_levels_and_parameter_ranges():
    assert augment.augmentation_for("cifar10", 0) is None
    assert augment.augmentation_for("mnist", 2) == augment.SHIFTS  # the original's mnist branch
    assert augment.augmentation_for("cifar10", 1) == augment.SHIFTS
    assert augment.augmentation_for("cifar10", 2) == augment.EXTRA
    rng = np.random.default_rng(0)
    p = augment.sample_params(rng, 2000, 32, 32, augment.SHIFTS)
    assert np.abs(p["tx"]).max() <= 3.2 and np.abs(p["ty"]).max() <= 3.2
    assert np.abs(p["tx"]).max() > 3.0  # continuous over the whole +-10% range
    assert not p["flip"].any() and not p["theta"].any() and (p["zx"] == 1).all()
    p = augment.sample_params(rng, 2000, 32, 32, augment.EXTRA)
    assert 0.4 < p["flip"].mean() < 0.6
    assert np.abs(p["theta"]).max() <= np.deg2rad(15) and np.abs(p["shear"]).max() <= np.deg2rad(0.02)
    assert p["zx"].min() >= 0.9 and p["zy"].max() <= 1.1 and not np.allclose(p["zx"], p["zy"])


def test_flip_comes_after_the_transform():
    class Fixed:  # a generator that always draws the same numbers
        def uniform(self, low, high, size=None):
            return np.full(size, high) if size else high

        def random(self):
            return 0.0  # < 0.5: flip

    aug = augment.Augmentation(width_shift_range=0.25, horizontal_flip=True)
    out = augment.augment_batch(_ramp(4, 4)[None], Fixed(), aug)
    # shift by +1 column (0.25 * 4), then flip left-right: [30, 30, 20, 10]
    np.testing.assert_allclose(out[0, 0, :, 0], [30, 30, 20, 10], atol=1e-4)


# --- mnist and cifar10 from local files -------------------------------------------------------

def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        x = np.zeros((n, 28, 28), np.uint8)
        x[:, 3:25, 3:25] = rng.integers(1, 256, (n, 22, 22))
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", x)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    return tmp_path


def test_mnist_is_zero_padded_to_32_and_tiled_to_rgb(mnist_dir):
    data = data_loaders.get_data("mnist", str(mnist_dir), dal=0, n_batch_train=32, n_batch_init=8)
    assert (data.n_y, data.image_size, data.n_train, data.n_test) == (10, 32, 40, 20)
    assert data.local_batch_test == 20  # 25 from the table, capped by the 20 test images
    from data_loaders.mnist_cifar import read_idx
    raw = read_idx(str(mnist_dir / "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(str(mnist_dir / "t10k-labels-idx1-ubyte.gz"))
    (x, y), = _take(data.test(), 5)
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int32
    np.testing.assert_array_equal(x[:, 2:30, 2:30, 0], raw)  # test set in order, unshuffled
    assert not x[:, :2].any() and not x[:, 30:].any() and not x[:, :, :2].any() and not x[:, :, 30:].any()
    np.testing.assert_array_equal(x[..., 0], x[..., 1])
    np.testing.assert_array_equal(x[..., 0], x[..., 2])
    np.testing.assert_array_equal(y, labels)


def test_mnist_lower_resolution_is_box_average_then_floor(mnist_dir):
    data = data_loaders.get_data("mnist", str(mnist_dir), image_size=8, dal=0, n_batch_train=1,
                                 anchor_size=8)
    x = np.concatenate([b[0] for b in _take(data.test(), 100)])
    from data_loaders.mnist_cifar import read_idx
    raw = np.pad(read_idx(str(mnist_dir / "t10k-images-idx3-ubyte.gz")), ((0, 0), (2, 2), (2, 2)))
    # pixel (1, 2) of the 8x8 image is the floor of the mean of rows 4..7, columns 8..11
    np.testing.assert_array_equal(x[:, 1, 2, 0], np.floor(raw[:, 4:8, 8:12].mean(axis=(1, 2))))


def test_mnist_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*not found"):
        data_loaders.get_data("mnist", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data_loaders.get_data("mnist", str(tmp_path / "nowhere"))


def test_mnist_wrong_image_size_in_idx_file(tmp_path):
    for prefix in ("train", "t10k"):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", np.zeros((4, 20, 20)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.zeros(4))
    with pytest.raises(ValueError, match=r"shape \(20, 20\), expected \(28, 28\)"):
        data_loaders.get_data("mnist", str(tmp_path))


def test_cifar10_batches_are_read_channels_last(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    chw = np.zeros((3, 3, 32, 32), np.uint8)  # 3 images, channel c = 10 * c + image index
    for c in range(3):
        chw[:, c] = (10 * c + np.arange(3))[:, None, None]
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": chw.reshape(3, -1), b"labels": [7, 8, 9]}, f)
    data = data_loaders.get_data("cifar10", str(tmp_path), dal=0, n_batch_train=8)
    assert (data.n_train, data.n_test) == (15, 3)
    (x, y), = _take(data.test(), 5)
    np.testing.assert_array_equal(x[:, 5, 7], [[0, 10, 20], [1, 11, 21], [2, 12, 22]])
    np.testing.assert_array_equal(y, [7, 8, 9])


def test_cifar10_missing_batch_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1, data_batch_2.*test_batch"):
        data_loaders.get_data("cifar10", str(tmp_path))


def test_n_test_above_the_test_set_is_an_error(mnist_dir):
    with pytest.raises(ValueError, match="n_test=30 asks 30 test images .* has 20"):
        data_loaders.get_data("mnist", str(mnist_dir), n_test=30)


# --- digits (offline quick start) -----------------------------------------------------------

def _digits(**kw):
    args = dict(n_batch_train=44, n_batch_init=100, anchor_size=8)
    args.update(kw)
    return data_loaders.get_data("digits", **args)


def test_digits_load_offline_with_the_documented_mapping():
    data = _digits(dal=0)
    assert (data.problem, data.n_y, data.image_size, data.n_train, data.n_test) == ("digits", 10, 8, 1497, 300)
    from sklearn.datasets import load_digits
    allowed = {(v * 255 + 8) // 16 for v in range(17)}  # 0, 16, 32, ..., 128, ..., 255
    (x, y), = _take(data.train(), 1)
    assert x.shape == (44, 8, 8, 3) and set(np.unique(x)) <= allowed and x.max() == 255
    # every train image is one of sklearn's images under the mapping, with its label
    digits = load_digits()
    mapped = ((digits.images.astype(int) * 255 + 8) // 16).astype(np.uint8)
    lookup = {img.tobytes(): t for img, t in zip(mapped, digits.target)}
    assert all(lookup[img[:, :, 0].tobytes()] == label for img, label in zip(x, y))


def test_digits_upsampled_by_pixel_replication():
    small, big = _digits(dal=0), _digits(dal=0, image_size=32, n_batch_train=44 * 16)
    (xs, _), = _take(small.test(), 1)
    (xb, _), = _take(big.test(), 1)
    np.testing.assert_array_equal(xb, np.repeat(np.repeat(xs, 4, axis=1), 4, axis=2))


@pytest.mark.parametrize("dal", [0, 1])
def test_digits_train_k_equals_train_0_skipped_by_k(dal):
    data = _digits(dal=dal)
    _same_batches(_take(data.train(3), 4), _take(data.train(0), 7)[3:])
    # straddling the epoch boundary (1497 = 34 * 44 + 1) and far away: same values when rebuilt
    again = _digits(dal=dal)
    _same_batches(_take(data.train(33), 2), _take(again.train(33), 2))
    _same_batches(_take(data.train(10 ** 9), 1), _take(again.train(10 ** 9), 1))


def test_init_batch_does_not_shift_the_train_stream():
    a, b = _digits(), _digits()
    x, y = a.init_batch
    assert x.shape == (100, 8, 8, 3) and y.shape == (100,) and x.dtype == np.uint8
    _same_batches(_take(a.train(), 3), _take(b.train(), 3))
    assert not np.array_equal(x[:44], _take(b.train(), 1)[0][0])


def test_test_passes_continue_through_the_test_set_and_wrap_around():
    whole = np.concatenate([b[0] for b in _take(_digits(n_test=300).test(), 100)])  # the 300 in order
    data = _digits(n_test=297)  # 11 batches of 25 per pass: 275 images, 25 left for the next pass
    n = data.full_test_its * data.local_batch_test
    assert (len(whole), n) == (300, 275)
    first = np.concatenate([b[0] for b in _take(data.test(), 100)])
    second = np.concatenate([b[0] for b in _take(data.test(start_batch=data.full_test_its), 100)])
    np.testing.assert_array_equal(first, whole[:n])
    np.testing.assert_array_equal(second, whole[np.arange(n, 2 * n) % 300])


def test_seed_changes_the_stream():
    assert not np.array_equal(_take(_digits(seed=0).train(), 1)[0][0],
                              _take(_digits(seed=1).train(), 1)[0][0])


def test_digits_ranks_split_the_train_set_contiguously():
    # 1497 // 2 = 748 = 17 * 44 images per rank: 17 batches are exactly one epoch of a shard,
    # rank r's shard being the train images [748 r, 748 (r + 1)) (the last one is left out).
    from data_loaders.digits import load_digits
    x_train = load_digits()[0]
    for r in (0, 1):
        data = _digits(dal=0, rank=r, size=2)
        assert data.n_train == 748 and data.n_test == 150
        epoch = np.concatenate([x for x, _ in _take(data.train(), 17)])
        shard = x_train[748 * r:748 * (r + 1)]
        assert collections.Counter(map(bytes, epoch)) == collections.Counter(map(bytes, shard))


# --- folder ---------------------------------------------------------------------------------

def _png(path, value, size=(8, 8), mode="RGB"):
    """A constant image; value is an RGB triple (or a grey level for mode 'L')."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new(mode, size, value).save(path)


def _folder_data(path, **kw):
    args = dict(image_size=8, n_batch_train=4, n_batch_init=8, anchor_size=8, dal=0)
    args.update(kw)
    return data_loaders.get_data("folder", str(path), **args)


def test_folder_sub_folders_give_sorted_labels(tmp_path):
    for i in range(10):  # red channel 10*i identifies the image, green the class
        _png(tmp_path / "dog" / f"{i}.png", (10 * i, 200, 0))
        _png(tmp_path / "cat" / f"{i}.jpg" if i % 2 else tmp_path / "cat" / f"{i}.png", (10 * i + 5, 100, 0))
    data = _folder_data(tmp_path, n_batch_train=18)
    assert (data.n_y, data.n_train, data.n_test) == (2, 18, 2)  # 10% held out
    (x, y), = _take(data.train(), 1)
    np.testing.assert_array_equal(y, np.where(x[:, 0, 0, 1] > 150, 1, 0))  # cat=0, dog=1
    (xt, yt), = _take(data.test(), 1)
    ids = lambda imgs: set(np.round(imgs[:, 0, 0, 0] / 5).astype(int))
    assert ids(x).isdisjoint(ids(xt)) and len(ids(x) | ids(xt)) == 20


def test_centre_crop_resize_and_rgb_conversion(tmp_path):
    from glow_tf.images import centre_crop_resize, load_image
    wide = np.zeros((4, 6, 3), np.uint8)
    wide[:, :, 0] = np.arange(6) * 10
    np.testing.assert_array_equal(centre_crop_resize(Image.fromarray(wide), 4)[0, :, 0], [10, 20, 30, 40])
    _png(tmp_path / "grey.png", 77, mode="L")
    _png(tmp_path / "rgba.png", (1, 2, 3, 4), mode="RGBA")
    _png(tmp_path / "big.png", (9, 8, 7), size=(16, 12))
    assert (load_image(str(tmp_path / "grey.png"), 8, resize=True) == 77).all()
    np.testing.assert_array_equal(load_image(str(tmp_path / "rgba.png"), 8, resize=True)[3, 3], [1, 2, 3])
    big = load_image(str(tmp_path / "big.png"), 4, resize=True)
    assert big.shape == (4, 4, 3) and (big == [9, 8, 7]).all()


def test_folder_train_and_test_sub_folders(tmp_path):
    for i in range(6):
        _png(tmp_path / "train" / "a" / f"{i}.png", (i, 0, 0))
        _png(tmp_path / "train" / "b" / f"{i}.png", (i, 50, 0))
    for i in range(7):
        _png(tmp_path / "validation" / "b" / f"{i}.png", (i, 50, 0))
    data = _folder_data(tmp_path, n_batch_train=8)
    assert (data.n_y, data.n_train) == (2, 12)
    # 7 test images in batches of 5 (table value for train batch 8): the remainder is dropped
    assert (data.local_batch_test, data.full_test_its, data.n_test) == (5, 1, 5)
    (xt, yt), = _take(data.test(), 2)
    assert (yt == 1).all() and (xt[:, 0, 0, 1] == 50).all()


def test_folder_stream_is_deterministic_and_ranks_are_disjoint(tmp_path):
    for i in range(24):
        _png(tmp_path / f"{i:02d}.png", (10 * i, 0, 0))
    augmented = _folder_data(tmp_path, dal=2)
    _same_batches(_take(augmented.train(5), 3), _take(augmented.train(0), 8)[5:])
    # 24 images: 2 held out, 22 train -> 11 per rank; one batch of 11 is one epoch of a shard
    seen = []
    for r in (0, 1):
        data = _folder_data(tmp_path, rank=r, size=2, n_batch_train=11)
        (x, _), = _take(data.train(), 1)
        (xt, _), = _take(data.test(), 1)
        seen.append((set(x[:, 0, 0, 0] // 10), set(xt[:, 0, 0, 0] // 10)))
        assert len(seen[-1][0]) == 11
    (tr0, te0), (tr1, te1) = seen
    assert tr0.isdisjoint(tr1) and te0.isdisjoint(te1)
    assert len(tr0 | tr1 | te0 | te1) == 24


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _folder_data(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no images .*png.*found under"):
        _folder_data(tmp_path)
    with pytest.raises(ValueError, match="needs --data_dir"):
        data_loaders.get_data("folder")
    _png(tmp_path / "loose.png", (0, 0, 0))
    _png(tmp_path / "cls" / "a.png", (0, 0, 0))
    with pytest.raises(ValueError, match="both images .*loose.png.* and class sub-folders"):
        _folder_data(tmp_path)
    os.remove(tmp_path / "loose.png")
    (tmp_path / "cls" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image .*broken.png"):
        _folder_data(tmp_path)
