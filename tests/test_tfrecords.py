"""Tests for openai/glow's TFRecord format and pipeline (docs/original.md#tfrecord-problems): the writer
round trip, sharding across ranks, resumable streams, lsun_realnvp crops and the errors."""
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import data_loaders
from data_loaders import write_tfrecords as writer
from data_loaders.tfrecords import tfrecord_name


def _take(ds, n):
    return [tuple(t.numpy() for t in batch) for batch in ds.take(n)]


def _ids(batches):
    """Image ids: every test image carries its id in pixel (0, 0, 0)."""
    return np.concatenate([b[0][:, 0, 0, 0] for b in batches]).tolist()


def _images(n, size=8, start=0, seed=0):
    x = np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(start, start + n)
    return x


@pytest.fixture
def tfr_dir(tmp_path):
    """30 train images in 4 shards, 10 validation images in 2 shards, 8x8, labels id % 3,
    attrs +-1 [40] derived from the id."""
    for split, start, n, shards in (("train", 0, 30, 4), ("validation", 30, 10, 2)):
        x = _images(n, start=start)
        ids = np.arange(start, start + n)
        attrs = np.where((ids[:, None] >> np.arange(40) % 6) & 1, 1, -1)
        data_loaders.write_examples(str(tmp_path), split, 8, x, ids % 3, attrs, shards=shards)
    return tmp_path


def _data(path, problem="celeba", **kw):
    args = dict(image_size=8, n_batch_train=4, n_batch_init=10, anchor_size=8, n_test=10)
    args.update(kw)
    return data_loaders.get_data(problem, str(path), **args)


def test_file_naming_is_the_originals(tfr_dir):
    assert sorted(os.listdir(tfr_dir / "train")) == [
        f"train-r03-s-{i:04d}-of-0004.tfrecords" for i in range(4)]
    assert tfrecord_name("validation", 8, 3, 80) == "validation-r08-s-0003-of-0080.tfrecords"


def test_writer_script_round_trips_images_labels_and_attrs(tmp_path):
    rng = np.random.default_rng(0)
    images, rows = {}, ["image_id," + ",".join(f"a{k}" for k in range(5))]
    for cls in ("cats", "dogs"):
        os.makedirs(tmp_path / "in" / cls)
        for i in range(4):
            name = f"{cls}{i}.png"
            images[name] = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(images[name]).save(tmp_path / "in" / cls / name)
            rows.append(name + "," + ",".join(str(v) for v in rng.choice([-1, 1], 5)))
    (tmp_path / "attr.csv").write_text("\n".join(rows) + "\n")
    attr = {r.split(",")[0]: [int(v) for v in r.split(",")[1:]] for r in rows[1:]}
    writer.main(["--input_dir", str(tmp_path / "in"), "--output_dir", str(tmp_path / "out"),
                 "--resolution", "8", "--shards", "3", "--split", "validation",
                 "--attr_csv", str(tmp_path / "attr.csv")])
    files = data_loaders.list_tfrecords(str(tmp_path / "out"), "validation", 8)
    assert len(files) == 3
    records = list(data_loaders.read_tfrecords(files, with_attr=True))
    assert len(records) == 8
    for x, y, a in records:
        name = next(n for n, img in images.items() if np.array_equal(img, x))
        assert y == (0 if name.startswith("cats") else 1)
        np.testing.assert_array_equal(a, attr[name])


def test_writer_centre_crops_and_reads_celeba_txt_attrs(tmp_path):
    wide = np.zeros((8, 12, 3), np.uint8)
    wide[:, :, 1] = np.arange(12)[None] * 20
    os.makedirs(tmp_path / "in")
    Image.fromarray(wide).save(tmp_path / "in" / "000001.png")
    (tmp_path / "list_attr_celeba.txt").write_text("1\nSmiling Male\n000001.png  1 -1\n")
    data_loaders.write_folder(str(tmp_path / "in"), str(tmp_path / "out"), 8,
                                 attr_csv=str(tmp_path / "list_attr_celeba.txt"))
    (x, y, a), = data_loaders.read_tfrecords(str(tmp_path / "out"), with_attr=True)
    np.testing.assert_array_equal(x, wide[:, 2:10])  # side 8 already: crop, no resize
    assert y == 0 and a.tolist() == [1, -1]


def test_writer_errors(tmp_path):
    os.makedirs(tmp_path / "in")
    Image.new("RGB", (8, 8)).save(tmp_path / "in" / "a.png")
    with pytest.raises(ValueError, match="shards must be between 1 and the number of images \\(1\\), got 2"):
        data_loaders.write_folder(str(tmp_path / "in"), str(tmp_path / "out"), 8, shards=2)
    with pytest.raises(ValueError, match="power of two"):
        data_loaders.write_folder(str(tmp_path / "in"), str(tmp_path / "out"), 12)
    (tmp_path / "attr.csv").write_text("image_id,x\nother.png,1\n")
    with pytest.raises(ValueError, match="no row for image 'a.png'"):
        data_loaders.write_folder(str(tmp_path / "in"), str(tmp_path / "out"), 8,
                                     attr_csv=str(tmp_path / "attr.csv"))
    data_loaders.write_folder(str(tmp_path / "in"), str(tmp_path / "out"), 8)
    with pytest.raises(FileExistsError, match="already holds 1 train-r03-s-"):
        data_loaders.write_folder(str(tmp_path / "in"), str(tmp_path / "out"), 8)
    with pytest.raises(SystemExit):
        writer.main(["--input_dir", str(tmp_path / "nowhere"), "--output_dir", str(tmp_path),
                     "--resolution", "8"])


def test_train_stream_reads_parsed_images_and_labels(tfr_dir):
    data = _data(tfr_dir)
    assert (data.n_y, data.n_train, data.n_test, data.local_batch_train, data.local_batch_test,
            data.full_test_its) == (1, None, 10, 4, 2, 5)
    originals = _images(30)
    x, y = _take(data.train(), 1)[0]
    assert x.shape == (4, 8, 8, 3) and x.dtype == np.uint8 and y.dtype == np.int32
    np.testing.assert_array_equal(x, originals[x[:, 0, 0, 0]])
    np.testing.assert_array_equal(y, x[:, 0, 0, 0] % 3)
    # the validation pass covers the 10 validation images once, in file order
    assert _ids(_take(data.test(), 100)) == list(range(30, 40))
    # the stream goes on past the end: a pass from batch 3 wraps around
    assert _ids(_take(data.test(start_batch=3), 100)) == [36, 37, 38, 39, 30, 31, 32, 33, 34, 35]
    xi, yi = data.init_batch
    assert xi.shape == (10, 8, 8, 3) and yi.shape == (10,)


def test_train_stream_is_shuffled_across_epochs(tfr_dir):
    ids = _ids(_take(_data(tfr_dir).train(), 15))  # 60 records: two epochs of 30
    assert sorted(ids[:28]) != list(range(28)) and ids[:30] != ids[30:]
    assert set(ids) == set(range(30))


@pytest.mark.parametrize("fmap", [1, 2])
def test_train_k_equals_train_0_skipped_by_k(tfr_dir, fmap):
    data = _data(tfr_dir, fmap=fmap)
    full = _take(data.train(0), 20)  # crosses two epoch boundaries
    for k in (3, 9):
        resumed = _take(_data(tfr_dir, fmap=fmap).train(k), 20 - k)
        for a, b in zip(resumed, full[k:]):
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])


def test_init_batch_does_not_shift_the_train_stream(tfr_dir):
    a, b = _data(tfr_dir), _data(tfr_dir)
    a.init_batch
    assert _ids(_take(a.train(), 5)) == _ids(_take(b.train(), 5))


def test_two_ranks_read_disjoint_shards_that_cover_everything(tfr_dir):
    train, test = [], []
    for rank in (0, 1):
        data = _data(tfr_dir, rank=rank, size=2, n_batch_train=5)
        # shards 0,2 or 1,3 of 4 (sorted names): 8 + 7 images each; 10 batches > 1 epoch
        train.append(set(_ids(_take(data.train(), 10))))
        test.append(_ids(_take(data.test(), 100)))
    assert train[0].isdisjoint(train[1]) and train[0] | train[1] == set(range(30))
    assert len(test[0]) == len(test[1]) == 5  # n_test=10 over 2 ranks
    assert set(test[0]).isdisjoint(test[1]) and set(test[0]) | set(test[1]) == set(range(30, 40))


def test_lsun_validation_is_read_whole_by_every_rank(tfr_dir):
    tests = [_ids(_take(_data(tfr_dir, "lsun", rank=r, size=2, n_test=-1).test(), 1000))
             for r in (0, 1)]
    # default n_test for lsun is 300 per rank; the 10 validation images repeat, as the original's
    assert tests[0] == tests[1] == [30 + i % 10 for i in range(300)]


def test_celeba_attributes_are_exposed(tfr_dir):
    x, y, a = _take(_data(tfr_dir).train(with_attr=True), 1)[0]
    ids = x[:, 0, 0, 0].astype(int)
    np.testing.assert_array_equal(a, np.where((ids[:, None] >> np.arange(40) % 6) & 1, 1, -1))
    _, _, at = _take(_data(tfr_dir).test(with_attr=True), 1)[0]
    assert at.shape == (2, 40)


def test_lsun_realnvp_takes_a_deterministic_random_64_crop(tmp_path):
    # shorter side 12 (the original's 96), files named for image_size 8 (r03, as r06 for 64)
    rng = np.random.default_rng(0)
    big = [rng.integers(0, 256, (12, 16, 3), dtype=np.uint8) for _ in range(6)]
    for img, i in zip(big, range(6)):
        img[0, 0, 0] = i
    data_loaders.write_examples(str(tmp_path), "train", 8, big, [0] * 6, shards=2)
    data_loaders.write_examples(str(tmp_path), "validation", 8, big[:2], [0] * 2)
    data = _data(tmp_path, "lsun_realnvp", n_batch_train=2, n_test=2)
    batches = _take(data.train(), 6)
    crops = [(c, src) for x, _ in batches for c in x for src in big
             if any(np.array_equal(c, src[i:i + 8, j:j + 8]) for i in range(5) for j in range(9))]
    assert len(crops) == 12  # every crop is an 8x8 window of a source image
    offsets = {next((i, j) for i in range(5) for j in range(9) if np.array_equal(c, s[i:i + 8, j:j + 8]))
               for c, s in crops}
    assert len(offsets) > 1  # random, not a fixed window
    resumed = _take(_data(tmp_path, "lsun_realnvp", n_batch_train=2, n_test=2).train(2), 4)
    for a, b in zip(resumed, batches[2:]):
        np.testing.assert_array_equal(a[0], b[0])
    (xt, _), = _take(data.test(), 1)
    assert xt.shape == (2, 8, 8, 3)


def test_more_ranks_than_shards_is_an_error(tfr_dir):
    with pytest.raises(ValueError, match="5 ranks but only 4 train TFRecord shards"):
        _data(tfr_dir, rank=0, size=5)
    with pytest.raises(ValueError, match="3 ranks but only 2 validation TFRecord shards"):
        _data(tfr_dir, rank=0, size=3, n_test=30)


def test_missing_or_incomplete_data_is_named(tfr_dir, tmp_path):
    with pytest.raises(ValueError, match="'celeba' reads TFRecords: pass --data_dir"):
        data_loaders.get_data("celeba")
    with pytest.raises(FileNotFoundError, match="nowhere/train' does not exist"):
        _data(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"image_size 16 .*found resolutions r03 \(8x8\)"):
        _data(tfr_dir, image_size=16, n_batch_train=16)
    os.remove(tfr_dir / "train" / "train-r03-s-0002-of-0004.tfrecords")
    with pytest.raises(FileNotFoundError, match="1 of 4 missing \\(train-r03-s-0002-of-0004"):
        _data(tfr_dir)


def test_image_size_mismatch_is_an_error(tmp_path):
    # 8x8 images in files named for 16x16
    data_loaders.write_examples(str(tmp_path), "train", 16, _images(2), [0, 0])
    data_loaders.write_examples(str(tmp_path), "validation", 16, _images(2), [0, 0])
    with pytest.raises(ValueError, match="holds 8x8x3 images, expected 16x16x3 for image_size 16"):
        _data(tmp_path, image_size=16, n_batch_train=16, n_test=2)


def test_a_later_record_of_the_wrong_size_fails_the_stream(tmp_path):
    x = list(_images(3)) + [np.zeros((4, 4, 3), np.uint8)]
    data_loaders.write_examples(str(tmp_path), "train", 8, x, [0] * 4)
    data_loaders.write_examples(str(tmp_path), "validation", 8, x[:1], [0])
    data = _data(tmp_path, n_test=1)  # the first record is 8x8: accepted
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"shape differs from \[8, 8, 3\]"):
        _take(data.train(), 4)


def test_wrong_channel_count_is_an_error(tmp_path):
    for split in ("train", "validation"):
        os.makedirs(tmp_path / split)
        example = tf.train.Example(features=tf.train.Features(feature={
            "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=[8, 8, 1])),
            "data": tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(64)])),
            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[0]))}))
        with tf.io.TFRecordWriter(str(tmp_path / split / tfrecord_name(split, 3, 0, 1))) as w:
            w.write(example.SerializeToString())
    with pytest.raises(ValueError, match="8x8 images with 1 channels, expected 3"):
        _data(tmp_path, n_test=1)


def _corrupt(path, at):
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_corrupt_file_is_named(tfr_dir):
    bad = tfr_dir / "train" / "train-r03-s-0001-of-0004.tfrecords"
    _corrupt(bad, 40)  # inside the first record's payload
    with pytest.raises(tf.errors.DataLossError, match="corrupt TFRecord file .*train-r03-s-0001-of-0004"):
        _data(tfr_dir, rank=1, size=2)
    with pytest.raises(ValueError, match="train-r03-s-0001-of-0004"):  # caught as bad input too
        _data(tfr_dir, rank=1, size=2)
    with pytest.raises(tf.errors.DataLossError, match="train-r03-s-0001-of-0004"):
        list(data_loaders.read_tfrecords(str(tfr_dir / "train")))
    assert data_loaders.find_corrupt_file(str(tfr_dir / "train")) == str(bad)


def test_corruption_met_while_streaming_can_be_named(tfr_dir):
    bad = tfr_dir / "train" / "train-r03-s-0002-of-0004.tfrecords"
    _corrupt(bad, bad.stat().st_size - 100)  # the last record: the first-record check passes
    data = _data(tfr_dir)
    with pytest.raises(tf.errors.DataLossError) as raised:
        _take(data.train(), 20)
    assert "train-r03" not in raised.value.message  # TF's own message does not name the file
    assert "train-r03-s-0002-of-0004" in data.explain_data_loss(raised.value).message
    with pytest.raises(tf.errors.DataLossError, match="corrupt TFRecord file .*s-0002-of-0004"):
        data.init_batch
