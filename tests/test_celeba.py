"""`--problem celeba` on the official aligned-and-cropped layout (data_loaders/celeba.py) and the CelebA
attribute directions of `python -m glow_tf direction` (get_manipulators.py's formula).

Synthetic folders in the release's layout (drawn images, not CelebA's) check the parsing, the crop and
the streams; the real 1,000-face sample is read from $GLOW_CELEBA_SAMPLE or from
shared/data/celeba_sample beside the repository's folder (skipped when absent, a failure under CI=true).
"""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import data_loaders
import glow_tf
from data_loaders import celeba
from glow_tf import checkpoint, directions
from celeba_sample import celeba_sample_dir

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
NAMES = directions.CELEBA_ATTRIBUTES


def write_folder(root, images, labels, names=None, crlf=True, partition=None, count=None):
    """A folder in the release's layout: JPEGs (4:4:4, quality 100) and list_attr_celeba.txt with CRLF
    line ends, a trailing space after the names and two spaces before +1 values, as the release."""
    (root / celeba.IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    names = [f"{i + 1:06d}.jpg" for i in range(len(images))] if names is None else names
    for name, image in zip(names, images):
        Image.fromarray(image).save(root / celeba.IMAGE_DIR / name, quality=100, subsampling=0)
    end = "\r\n" if crlf else "\n"
    rows = [f"{count or len(names)}", " ".join(NAMES) + " "]
    rows += [name + "".join(f" {v:2d}" for v in row) for name, row in zip(names, labels)]
    (root / celeba.ATTRIBUTE_FILE).write_bytes(end.join(rows).encode() + end.encode())
    if partition is not None:
        (root / celeba.PARTITION_FILE).write_text("".join(f"{n} {p}\n" for n, p in zip(names, partition)))
    return names


def random_labels(n, rng):
    labels = rng.choice([-1, 1], size=(n, 40)).astype(np.int8)
    labels[0], labels[1] = 1, -1  # every attribute has images with and without it
    return labels


def marked_crop_image(height, width, crop):
    """200 inside the face crop, 30 outside, and 100 on the crop's first row and first column."""
    top, left, side = crop
    image = np.full((height, width, 3), 30, np.uint8)
    image[top:top + side, left:left + side] = 200
    image[top, left:left + side] = 100
    image[top:top + side, left] = 100
    return image


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """(folder, labels): 20 half-size images of smooth random colour fields, with attributes."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("celeba")
    small = rng.integers(0, 256, size=(20, 6, 5, 3)).astype(np.uint8)
    images = [np.asarray(Image.fromarray(s).resize((89, 109), Image.BILINEAR)) for s in small]
    labels = random_labels(20, rng)
    write_folder(root, images, labels)
    return root, labels


def test_attribute_file_is_parsed_with_crlf_and_repeated_spaces(synthetic):
    root, labels = synthetic
    folder = celeba.CelebAFolder(str(root))
    assert folder.files == [f"{i + 1:06d}.jpg" for i in range(20)]
    np.testing.assert_array_equal(folder.labels, labels)
    assert folder.shape == (109, 89) and folder.crop == (20, 7, 74) and not folder.has_partition


def test_crop_is_real_nvps_square_at_both_sizes(tmp_path):
    """Half size: rows 20..93, columns 7..80; full size: rows 40..187, columns 15..162 (Real NVP's
    148x148 at (40, 15)). On an image that is 200 inside that square (its first row and column 100) and
    30 outside, the loader gives what Pillow's crop of that box and Lanczos resize give (within 0.5
    levels on average; a crop one pixel off in any direction is several levels off)."""
    real_nvp = {(218, 178): (40, 15, 148), (109, 89): (20, 7, 74)}  # (top, left, side), written out here
    for (height, width), (top, left, side) in real_nvp.items():
        root = tmp_path / f"{width}"
        image = marked_crop_image(height, width, (top, left, side))
        write_folder(root, [image] * 2, random_labels(2, np.random.default_rng(1)))
        folder = celeba.CelebAFolder(str(root))
        x = folder.load(folder.split_files("all")[0][:1], 64)[0].astype(float)
        decoded = Image.open(folder.split_files("all")[0][0])
        pil = np.asarray(decoded.crop((left, top, left + side, top + side)).resize((64, 64), Image.LANCZOS))
        assert np.abs(x - pil).mean() < 0.5, (width, np.abs(x - pil).mean())
        assert np.all(x[0, 8:] < 185) and np.all(x[8:, 0] < 185) and np.all(np.abs(x[8:, 8:] - 200) <= 3)


def test_split_without_partition_file_holds_out_the_last_tenth(synthetic):
    root, _ = synthetic
    folder = celeba.CelebAFolder(str(root))
    train, _ = folder.split_files("train")
    valid, _ = folder.split_files("valid")
    assert [os.path.basename(p) for p in train] == [f"{i:06d}.jpg" for i in range(1, 19)]
    assert [os.path.basename(p) for p in valid] == ["000019.jpg", "000020.jpg"]
    assert folder.split_files("test")[0] == []


def test_partition_file_and_missing_images(tmp_path):
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, size=(109, 89, 3)).astype(np.uint8) for _ in range(6)]
    names = write_folder(tmp_path, images, random_labels(6, rng), partition=[0, 0, 1, 2, 0, 1], count=202599)
    # the attribute file names an image that is not in the folder (a subset of the release)
    text = (tmp_path / celeba.ATTRIBUTE_FILE).read_bytes() + b"000099.jpg" + b"  1" * 40 + b"\r\n"
    (tmp_path / celeba.ATTRIBUTE_FILE).write_bytes(text)
    folder = celeba.CelebAFolder(str(tmp_path))
    assert folder.has_partition and folder.missing == 1
    assert [os.path.basename(p) for p in folder.split_files("train")[0]] == [names[0], names[1], names[4]]
    assert [os.path.basename(p) for p in folder.split_files("valid")[0]] == [names[2], names[5]]
    assert [os.path.basename(p) for p in folder.split_files("test")[0]] == [names[3]]


def test_get_data_streams_resume_and_shard(synthetic):
    root, _ = synthetic
    data = data_loaders.get_data("celeba", str(root), image_size=8, n_batch_train=4, anchor_size=8, n_batch_init=6,
                                 seed=3)
    assert (data.n_y, data.image_size, data.n_train, data.n_test) == (1, 8, 18, 2)
    first = [x for x, _ in data.train(0).take(6).as_numpy_iterator()]
    later = [x for x, _ in data.train(4).take(2).as_numpy_iterator()]
    np.testing.assert_array_equal(np.stack(first[4:]), np.stack(later))
    # one epoch of 18 images is a permutation of the training split, each image decoded as folder.load
    folder = celeba.CelebAFolder(str(root))
    expected = folder.load(folder.split_files("train")[0], 8)
    epoch = np.concatenate(first)[:18]
    assert sorted(map(bytes, epoch)) == sorted(map(bytes, expected))
    x_init, y_init = data.init_batch
    assert x_init.shape == (6, 8, 8, 3) and not y_init.any()
    test = np.concatenate([x for x, _ in data.test(0).as_numpy_iterator()])
    np.testing.assert_array_equal(test, folder.load(folder.split_files("valid")[0], 8))
    ranks = [data_loaders.get_data("celeba", str(root), image_size=8, n_batch_train=4, anchor_size=8, seed=3,
                                   rank=r, size=2) for r in range(2)]
    assert [d.n_train for d in ranks] == [9, 9]
    assert not set(map(bytes, next(ranks[0].train().as_numpy_iterator())[0])) & \
        set(map(bytes, next(ranks[1].train().as_numpy_iterator())[0]))


def test_the_real_sample(tmp_path):
    """The first 1,000 release images: parsed as an independent reading of the file gives, 900/100
    split, half size, and the crop + resize as Pillow's crop and Lanczos resize (which rounds to uint8
    between its two passes: within 0.5 levels on average, 3 for 99% of the values)."""
    path = celeba_sample_dir()
    folder = celeba.CelebAFolder(path)
    with open(os.path.join(path, celeba.ATTRIBUTE_FILE)) as f:
        rows = [line.split() for line in f.read().splitlines()[2:] if line.strip()]
    assert folder.files == [r[0] for r in rows] and len(rows) == 1000
    np.testing.assert_array_equal(folder.labels, np.array([[int(v) for v in r[1:]] for r in rows]))
    assert folder.shape == (109, 89) and len(folder.split_files("train")[0]) == 900
    paths = folder.split_files("valid")[0][:4]
    ours = folder.load(paths, 64).astype(float)
    pil = np.stack([np.asarray(Image.open(p).convert("RGB").crop((7, 20, 81, 94)).resize((64, 64), Image.LANCZOS))
                    for p in paths]).astype(float)
    assert np.abs(ours - pil).mean() < 0.5 and np.percentile(np.abs(ours - pil), 99) <= 3


# --- directions -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def celeba_run(synthetic, tmp_path_factory):
    """A run folder as train.py leaves it for --problem celeba on the synthetic folder: config.json,
    a checkpoint of a small initialised Glow, and train.txt's flags line."""
    root, _ = synthetic
    run = tmp_path_factory.mktemp("celeba_run")
    config = glow_tf.GlowConfig(image_size=8, n_levels=2, depth=1, width=8, flow_coupling="affine", learntop=True)
    glow = glow_tf.Glow(config, seed=0)
    folder = celeba.CelebAFolder(str(root))
    glow.initialize(folder.load(folder.split_files("all")[0], 8))
    config.save(str(run / "config.json"))
    prefix = tf.train.CheckpointManager(tf.train.Checkpoint(model=glow), str(run / "checkpoints"), 1).save()
    checkpoint.write_manifest(prefix)
    (run / "train.txt").write_text(json.dumps({"problem": "celeba", "data_dir": str(root)}) + "\n")
    return run, glow


def cli(*argv):
    return subprocess.run([sys.executable, "-m", "glow_tf", *map(str, argv)], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=300)


def get_manipulators(z, attr):
    """openai demo/get_manipulators.py, as written there: per attribute, the mean latent of the +1
    images minus the mean of the -1 images, all 40 stacked and times 1.6, float32."""
    def get_manipulator(index):
        z_pos = np.mean([z[i] for i in range(len(z)) if attr[i][index] == 1], axis=0)
        z_neg = np.mean([z[i] for i in range(len(z)) if attr[i][index] == -1], axis=0)
        return z_pos - z_neg
    return 1.6 * np.array([get_manipulator(i) for i in range(40)], dtype=np.float32)


def test_direction_is_get_manipulators_on_the_runs_celeba_folder(celeba_run, synthetic, tmp_path):
    """`direction --logdir RUN` (the run's own CelebA folder, train split, one pass with a progress
    bar) writes z_manipulate.npy's bare [40, D] array, equal to get_manipulators' formula on the same
    latents; the .npz form holds the same array with the names and counts."""
    run, glow = celeba_run
    root, labels = synthetic
    out = cli("direction", "--logdir", run, "--noise", "centre", "--batch_size", 5, "--out", tmp_path / "z.npy")
    assert out.returncode == 0, out.stderr
    assert "encode: 100%" in out.stderr and "18/18" in out.stderr  # the bar, with its total
    folder = celeba.CelebAFolder(str(root))
    paths, attr = folder.split_files("train")
    z = glow.encode(folder.load(paths, 8), noise="centre")
    expected = get_manipulators(z, attr)
    found = np.load(tmp_path / "z.npy")
    assert found.dtype == np.float32 and found.shape == (40, 192)
    np.testing.assert_allclose(found, expected, rtol=0, atol=2e-6 * np.abs(expected).max())
    out = cli("direction", "--celeba", root, "--split", "train", "--logdir", run, "--noise", "centre",
              "--attr", "Smiling", "Young", "--out", tmp_path / "d.npz", "--quiet")
    assert out.returncode == 0, out.stderr
    saved = np.load(tmp_path / "d.npz")
    assert list(saved["names"]) == ["Smiling", "Young"]
    np.testing.assert_allclose(saved["directions"], expected[[NAMES.index("Smiling"), NAMES.index("Young")]],
                               rtol=0, atol=2e-6 * np.abs(expected).max())
    assert saved["n_with"].tolist() == [(attr[:, NAMES.index(a)] == 1).sum() for a in ("Smiling", "Young")]
    # the demo's corrections apply when the bare file is loaded, as in demo/model.py
    loaded = directions.load_directions(str(tmp_path / "z.npy"))
    np.testing.assert_array_equal(loaded["Young"], -found[NAMES.index("Young")])


def one_error_line(result):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_bad_celeba_input_is_one_line_and_writes_nothing(celeba_run, synthetic, tmp_path):
    run, _ = celeba_run
    root, _ = synthetic
    no_attr = tmp_path / "no_attr"
    (no_attr / celeba.IMAGE_DIR).mkdir(parents=True)
    out = tmp_path / "d.npz"
    line = one_error_line(cli("direction", "--celeba", no_attr, "--logdir", run, "--out", out, "--quiet"))
    assert "has no list_attr_celeba.txt" in line and str(no_attr) in line
    line = one_error_line(cli("direction", "--celeba", root, "--logdir", run, "--attr", "Smiling", "Smiley",
                              "--out", out, "--quiet"))
    assert "no attribute 'Smiley' in the CelebA attributes" in line
    assert not out.exists()
    logdir = tmp_path / "train_run"
    result = subprocess.run([sys.executable, "train.py", "--problem", "celeba", "--data_dir", str(no_attr),
                             "--logdir", str(logdir)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1 and "has no list_attr_celeba.txt" in lines[0], result.stderr
    assert not logdir.exists() or not any(logdir.iterdir())
