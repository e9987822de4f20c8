"""Tests for glow_tf.latent (encode/decode/reconstruct, interpolation, attribute directions, latent and
label files) and the latent commands of `python -m glow_tf`, against the original's reference vectors
(tests/fixtures/original_glow), exact invertibility, hand-computed values and a planted attribute.

`digits_run_dir` trains a small Glow on scikit-learn's digits once per session and writes it as a
train.py run (config.json + checkpoints/); test_sample.py uses it too.
"""
import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import glow_tf
from glow_tf import latent
from glow_tf.__main__ import main

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "original_glow"
REFERENCE_MODELS = ("additive_reverse", "additive_shuffle", "affine_invconv", "affine_lu_ycond")


# --- shared fixtures --------------------------------------------------------------------------------------
def digits():
    """scikit-learn's 1797 8x8 digits as uint8 RGB (round(v * 255 / 16), grey tiled) and labels."""
    from sklearn.datasets import load_digits  # noqa: PLC0415

    d = load_digits()
    x = np.round(d.images * 255 / 16).astype(np.uint8)
    return np.tile(x[..., None], (1, 1, 1, 3)), d.target.astype(np.int32)


def digits_run_dir(tmp_path_factory):
    """A train.py-style run of a small additive Glow trained 120 steps on digits; built once per
    session (cached in the session's temporary folder, so every test module shares it)."""
    run = tmp_path_factory.getbasetemp() / "digits_run"
    if (run / "checkpoints" / "checkpoint").exists():
        return run
    from glow_tf.optim import Optimizer  # noqa: PLC0415

    x, _ = digits()
    config = glow_tf.GlowConfig(image_size=8, n_levels=2, depth=3, width=24, n_y=10)
    tf.random.set_seed(0)
    glow = glow_tf.Glow(config, seed=0)
    glow.initialize(x[:256])
    opt = Optimizer(glow.trainable_variables, kind="adam", beta2=0.999)

    @tf.function
    def step(xb, lr):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(glow.objective(xb)["loss"])
        opt.apply(tape.gradient(loss, glow.trainable_variables), lr)
        return loss

    rng = np.random.default_rng(0)
    first = last = None
    for i in range(120):
        loss = float(step(x[rng.integers(0, len(x), 64)], tf.constant(2e-3 * min(1.0, (i + 1) / 20))))
        first = loss if first is None else first
        last = loss
    assert last < first - 2, f"the digits model did not train: {first:.2f} -> {last:.2f} bits/dim"
    os.makedirs(run, exist_ok=True)
    config.save(run / "config.json")
    tf.train.CheckpointManager(tf.train.Checkpoint(model=glow), str(run / "checkpoints"), 3).save()
    return run


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    return digits_run_dir(tmp_path_factory)


@pytest.fixture(scope="session")
def digits_glow(digits_run):
    return glow_tf.load_run(str(digits_run))[0]


def reference(name):
    """(glow with the original's weights, reference arrays) for one tests/fixtures/original_glow folder."""
    folder = FIXTURES / name
    config = glow_tf.GlowConfig.from_dict(json.loads((folder / "hps.json").read_text()), strict=False)
    return glow_tf.load_original_checkpoint(str(folder / "model.ckpt"), config), np.load(folder / "reference.npz")


def _y(glow, ref):
    return ref["y"] if glow.config.ycond else None


def _quantised(glow, x):
    step = 2 ** (8 - glow.config.n_bits_x)
    return x // step * step


# --- encode / decode against the original -----------------------------------------------------------------
@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_encode_matches_the_originals_eps_in_its_flat_order(name):
    glow, ref = reference(name)
    z = latent.encode(glow, ref["x"], _y(glow, ref), noise=ref["noise"], batch_size=5)
    flat = np.concatenate([ref[f"eps_{i}"].reshape(16, -1) for i in range(glow.config.n_levels)], axis=1)
    np.testing.assert_allclose(z, flat, atol=1e-4)
    for mine, theirs in zip(latent.unflatten_eps(glow.config, z), [ref[f"eps_{i}"] for i in range(2)]):
        np.testing.assert_allclose(mine, theirs, atol=1e-4)


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_decode_matches_the_originals_decoder_and_inverts_encode(name):
    glow, ref = reference(name)
    eps = [ref[f"eps_{i}"] for i in range(glow.config.n_levels)]
    x = latent.decode(glow, eps, _y(glow, ref), batch_size=3, postprocess=False)
    np.testing.assert_allclose(x + 0.5, ref["decoded"], atol=1e-4)  # = preprocessed x + noise + 0.5
    pixels = latent.decode(glow, latent.flatten_eps(glow.config, eps), _y(glow, ref))
    np.testing.assert_array_equal(pixels, _quantised(glow, ref["x"]))


def test_flatten_is_row_major_nhwc_per_level_then_concatenated():
    config = glow_tf.GlowConfig(image_size=8, n_levels=2, depth=1, width=4)  # eps shapes (4,4,6), (2,2,24)
    eps = [np.arange(96, dtype=np.float32).reshape(1, 4, 4, 6),
           1000 + np.arange(96, dtype=np.float32).reshape(1, 2, 2, 24)]
    flat = latent.flatten_eps(config, eps)
    assert flat.shape == (1, 192)
    assert flat[0, 6] == eps[0][0, 0, 1, 0] and flat[0, 96 + 24] == eps[1][0, 0, 1, 0]
    for a, b in zip(latent.unflatten_eps(config, flat), eps):
        np.testing.assert_array_equal(a, b)


def test_latents_of_the_wrong_shape_are_refused():
    glow, _ = reference("additive_reverse")
    with pytest.raises(ValueError, match=r"shape \(2, 191\).*\[N, 192\]"):
        latent.decode(glow, np.zeros((2, 191)))
    with pytest.raises(ValueError, match="1 per-level latent arrays given; this model has 2 levels"):
        latent.decode(glow, [np.zeros((2, 4, 4, 6))])
    with pytest.raises(ValueError, match=r"eps_1 has shape \(2, 2, 2, 12\)"):
        latent.decode(glow, [np.zeros((2, 4, 4, 6)), np.zeros((2, 2, 2, 12))])
    with pytest.raises(ValueError, match="NaN"):
        latent.decode(glow, np.full((1, 192), np.nan))


def test_images_of_the_wrong_size_and_labels_are_refused():
    glow, _ = reference("additive_reverse")
    with pytest.raises(ValueError, match=r"shape \(1, 16, 16, 3\).*\[N, 8, 8, 3\]"):
        latent.encode(glow, np.zeros((1, 16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        latent.encode(glow, np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="unconditional"):
        latent.encode(glow, np.zeros((1, 8, 8, 3), np.uint8), y=0)
    ycond, _ = reference("affine_lu_ycond")
    with pytest.raises(ValueError, match=r"class 10 is out of range.*n_y=10"):
        latent.decode(ycond, np.zeros((2, 192)), y=[3, 10])
    with pytest.raises(ValueError, match="class-conditional"):
        latent.decode(ycond, np.zeros((2, 192)))


# --- dequantisation noise and reconstruction --------------------------------------------------------------
def test_noise_modes():
    config = glow_tf.GlowConfig(image_size=8, n_levels=2, depth=1, width=4, n_bits_x=5)
    centre = latent.dequantization_noise(config, 2, "centre")
    assert (centre == 0.5 / 32).all()
    a = latent.dequantization_noise(config, 5, "random", seed=3)
    assert a.min() >= 0 and a.max() < 1 / 32 and a.std() > 0.005
    # image i's noise depends on (seed, i) only: the same with an offset start
    np.testing.assert_array_equal(latent.dequantization_noise(config, 2, "random", seed=3, start=3), a[3:])
    assert not np.array_equal(latent.dequantization_noise(config, 5, "random", seed=4), a)
    with pytest.raises(ValueError, match="noise='middle'"):
        latent.dequantization_noise(config, 1, "middle")


def test_trained_digits_model_reconstructs_its_inputs_exactly(digits_glow):
    x, _ = digits()
    x = x[:400]
    np.testing.assert_array_equal(latent.reconstruct(digits_glow, x, noise="centre", batch_size=128), x)
    # with the original's random noise the latents change but the pixels come back (a value within
    # float round-off of a bin edge may fall into the neighbouring bin)
    rec = latent.reconstruct(digits_glow, x, noise="random", seed=0)
    assert np.mean(rec == x) > 0.999 and np.abs(rec.astype(int) - x).max() <= 1
    z1 = latent.encode(digits_glow, x[:8], noise="random", seed=0, batch_size=3)
    # repeatable, whatever the batching (float round-off aside)
    np.testing.assert_allclose(z1, latent.encode(digits_glow, x[:8], noise="random", seed=0), atol=1e-5)
    assert not np.allclose(z1, latent.encode(digits_glow, x[:8], noise="centre"))


# --- interpolation and manipulation -----------------------------------------------------------------------
def test_mix_and_interpolate_latents_by_hand():
    z1, z2 = np.array([0.0, 2.0], np.float32), np.array([4.0, -2.0], np.float32)
    np.testing.assert_allclose(latent.mix(z1, z2, 0.25), [1.0, 1.0])
    path = latent.interpolate_latents(z1, z2, 5)
    np.testing.assert_allclose(path, [[0, 2], [1, 1], [2, 0], [3, -1], [4, -2]])
    assert (path[0] == z1).all() and (path[-1] == z2).all()
    with pytest.raises(ValueError, match="steps=1"):
        latent.interpolate_latents(z1, z2, 1)


def test_interpolate_endpoints_are_the_reconstructions(digits_glow):
    x, _ = digits()
    frames = latent.interpolate(digits_glow, x[0], x[1], steps=6, noise="centre")
    assert frames.shape == (6, 8, 8, 3)
    np.testing.assert_array_equal(frames[0], x[0])
    np.testing.assert_array_equal(frames[-1], x[1])
    z = latent.encode(digits_glow, x[:2], noise="centre")
    np.testing.assert_array_equal(frames[2], latent.decode(digits_glow, latent.mix(z[0], z[1], 0.4)[None])[0])
    assert not (frames[2] == x[0]).all() and not (frames[2] == x[1]).all()


def test_range_alphas_are_the_demos_manipulate_range():
    # demo: z - dz + scale * (k / (points - 1)) * 2 dz, k = 0..points-1
    np.testing.assert_allclose(latent.range_alphas(5), [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_allclose(latent.range_alphas(5, 0.5), [-1, -0.75, -0.5, -0.25, 0])
    np.testing.assert_allclose(latent.range_alphas(2, 2.0), [-1, 3])


def test_manipulate_at_alpha_zero_is_the_reconstruction(digits_glow):
    x, _ = digits()
    z = latent.encode(digits_glow, x[5:6], noise="centre")[0]
    direction = np.random.default_rng(0).standard_normal(z.shape).astype(np.float32)
    out = latent.manipulate(digits_glow, z, direction, [0.0, 0.5, -1.0])
    np.testing.assert_array_equal(out[0], x[5])
    np.testing.assert_array_equal(out[1], latent.decode(digits_glow, (z + 0.5 * direction)[None])[0])
    np.testing.assert_array_equal(out[2], latent.decode(digits_glow, (z - direction)[None])[0])
    with pytest.raises(ValueError, match="direction has shape"):
        latent.manipulate(digits_glow, z, direction[:10], [1.0])


# --- attribute directions ---------------------------------------------------------------------------------
def test_attribute_direction_by_hand():
    z = np.array([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0], [2.0, 2.0]])
    # with = rows 0, 1 -> mean [2, 1]; without = rows 2, 3 -> mean [1, 3]; difference [1, -2]
    np.testing.assert_allclose(latent.attribute_direction(z, [1, 1, -1, -1]), [1.6, -3.2], rtol=1e-6)
    np.testing.assert_allclose(latent.attribute_direction(z, [1, 1, 0, 0], scale=1.0), [1.0, -2.0])
    both = latent.attribute_direction(z, np.array([[1, -1], [1, 1], [-1, 1], [-1, -1]]))
    np.testing.assert_allclose(both[1], 1.6 * (np.array([1.5, 3.0]) - np.array([1.5, 1.0])), rtol=1e-6)
    # streaming over batches gives the same directions as all at once
    means = latent.AttributeMeans(2, ["a"])
    means.update(z[:1], [[1]])
    means.update(z[1:], [[1], [-1], [-1]])
    np.testing.assert_allclose(means.directions()[0], [1.6, -3.2], rtol=1e-6)
    assert means.n_with.tolist() == [2] and means.n_without.tolist() == [2]


def test_attribute_direction_errors():
    z = np.zeros((3, 2))
    with pytest.raises(ValueError, match="attribute '0' has 3 images with it and 0 without"):
        latent.attribute_direction(z, [1, 1, 1])
    with pytest.raises(ValueError, match="label 2"):
        latent.attribute_direction(z, [1, 2, -1])


def test_direction_recovers_a_planted_latent_difference():
    rng = np.random.default_rng(0)
    planted = rng.standard_normal(64)
    labels = rng.choice([-1, 1], 4000)
    z = rng.standard_normal((4000, 64)) + np.outer(labels == 1, planted)
    d = latent.attribute_direction(z, labels)
    np.testing.assert_allclose(d, 1.6 * planted, atol=0.25)
    assert d @ planted / np.linalg.norm(d) / np.linalg.norm(planted) > 0.99


def test_direction_of_a_planted_image_attribute_adds_it(digits_glow):
    """Digits where the attribute is a bright 2x3 corner patch: the direction from labelled encodings
    is the paired latent difference the patch causes, and moving unseen digits along it paints the patch."""
    x, _ = digits()
    mask = np.zeros((8, 8, 3), bool)
    mask[0:2, 0:3] = True
    base = x[:600]
    labels = np.random.default_rng(1).choice([-1, 1], len(base))
    patched = np.where(mask, 255, base).astype(np.uint8)
    data = np.where((labels == 1)[:, None, None, None], patched, base)
    d = latent.attribute_direction(latent.encode(digits_glow, data, noise="centre", batch_size=200), labels)
    paired = (latent.encode(digits_glow, patched, noise="centre", batch_size=200)
              - latent.encode(digits_glow, base, noise="centre", batch_size=200)).mean(0)
    assert d @ paired / np.linalg.norm(d) / np.linalg.norm(paired) > 0.95
    np.testing.assert_allclose(np.linalg.norm(d) / latent.DEMO_SCALE, np.linalg.norm(paired), rtol=0.1)

    held_out = x[1000:1060]
    z = latent.encode(digits_glow, held_out, noise="centre")
    moved = np.stack([latent.manipulate(digits_glow, z[i], d, [0.0, 1 / latent.DEMO_SCALE]) for i in range(len(z))])
    change = (moved[:, 1].astype(float) - moved[:, 0]).mean(0)
    assert change[mask].mean() > 120 and np.abs(change[~mask]).mean() < 20
    assert np.corrcoef(change.ravel(), mask.ravel())[0, 1] > 0.8


def test_directions_files(tmp_path):
    d = np.arange(6, dtype=np.float32).reshape(2, 3)
    latent.save_directions(tmp_path / "d.npz", d, ["Smiling", "Young"], n_with=[3, 4], n_without=[5, 6])
    loaded = latent.load_directions(tmp_path / "d.npz", n_dims=3)
    assert list(loaded) == ["Smiling", "Young"]
    np.testing.assert_array_equal(loaded["Young"], d[1])
    np.testing.assert_array_equal(latent.pick_direction(loaded, "1"), d[1])
    with pytest.raises(ValueError, match="no direction 'Bald'; available: Smiling, Young"):
        latent.pick_direction(loaded, "Bald")
    with pytest.raises(ValueError, match="3 dimensions; this model's latents have 4"):
        latent.load_directions(tmp_path / "d.npz", n_dims=4)
    # the demo's z_manipulate.npy: [40, D], CelebA's attribute order
    np.save(tmp_path / "z_manipulate.npy", np.tile(np.arange(40, dtype=np.float32)[:, None], (1, 3)))
    demo = latent.load_directions(tmp_path / "z_manipulate.npy")
    assert demo["Smiling"][0] == 31 and demo["Young"][0] == 39 and demo["Narrow_Eyes"][0] == 23


def test_latent_files(tmp_path):
    glow, ref = reference("affine_lu_ycond")
    config = glow.config
    z = np.random.default_rng(0).standard_normal((3, 192)).astype(np.float32)
    latent.save_latents(tmp_path / "z.npz", config, z, y=[1, 2, 3], files=np.array(["a", "b", "c"]))
    data = np.load(tmp_path / "z.npz")
    assert data["eps_0"].shape == (3, 4, 4, 6) and data["eps_1"].shape == (3, 2, 2, 24)
    np.testing.assert_array_equal(latent.flatten_eps(config, [data["eps_0"], data["eps_1"]]), z)
    got, y = latent.load_latents(tmp_path / "z.npz", config)
    np.testing.assert_array_equal(got, z)
    assert y.tolist() == [1, 2, 3]
    np.savez(tmp_path / "levels.npz", eps_0=data["eps_0"], eps_1=data["eps_1"])
    np.testing.assert_array_equal(latent.load_latents(tmp_path / "levels.npz", config)[0], z)
    np.save(tmp_path / "z.npy", z)  # the original's --inference z.npy
    np.testing.assert_array_equal(latent.load_latents(tmp_path / "z.npy", config)[0], z)
    np.save(tmp_path / "bad.npy", z[:, :100])
    with pytest.raises(ValueError, match=r"bad.npy.*\(3, 100\).*\[N, 192\]"):
        latent.load_latents(tmp_path / "bad.npy", config)
    with pytest.raises(FileNotFoundError, match="no latents file"):
        latent.load_latents(tmp_path / "none.npz", config)


# --- labels: CSV and the CelebA TFRecords -----------------------------------------------------------------
def test_read_label_csv(tmp_path):
    (tmp_path / "l.csv").write_text("image_id,Smiling,Young\na.png,1,-1\nb.png, -1, 1\n\nc.png,0,1\n")
    files, names, labels = latent.read_label_csv(tmp_path / "l.csv")
    assert files == ["a.png", "b.png", "c.png"] and names == ["Smiling", "Young"]
    assert labels.tolist() == [[1, -1], [-1, 1], [0, 1]]
    assert latent.read_label_csv(tmp_path / "l.csv", ["Young"])[2].tolist() == [[-1], [1], [1]]
    with pytest.raises(ValueError, match="no attribute 'Bald'"):
        latent.read_label_csv(tmp_path / "l.csv", ["Bald"])
    (tmp_path / "bad.csv").write_text("f,Smiling\na.png,yes\n")
    with pytest.raises(ValueError, match="line 2"):
        latent.read_label_csv(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("f,Smiling\na.png,2\n")
    with pytest.raises(ValueError, match=r"-1, 0 or 1, got \[2\]"):
        latent.read_label_csv(tmp_path / "bad2.csv")


def write_celeba_tfrecord(path, images, attr):
    """Records in the format of openai's CelebA TFRecords: shape, data (raw HWC uint8), label, attr (40 ±1)."""
    def int64(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(map(int, values))))
    with tf.io.TFRecordWriter(str(path)) as writer:
        for x, a in zip(images, attr):
            feature = {"shape": int64(x.shape), "data": tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[x.tobytes()])), "label": int64([0]), "attr": int64(a)}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def test_read_celeba_tfrecords(tmp_path):
    x, _ = digits()
    attr = np.random.default_rng(0).choice([-1, 1], (10, 40))
    write_celeba_tfrecord(tmp_path / "train-r03-s-0000-of-0002.tfrecords", x[:6], attr[:6])
    write_celeba_tfrecord(tmp_path / "train-r03-s-0001-of-0002.tfrecords", x[6:10], attr[6:10])
    batches = list(latent.read_celeba_tfrecords(tmp_path, batch_size=4))
    images = np.concatenate([b[0] for b in batches])
    np.testing.assert_array_equal(images, x[:10])
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), attr)
    assert len(list(latent.read_celeba_tfrecords(str(tmp_path / "*.tfrecords"), max_images=3))[0][0]) == 3
    with pytest.raises(FileNotFoundError, match="no TFRecord files"):
        list(latent.read_celeba_tfrecords(tmp_path / "nothing"))


# --- the command line -------------------------------------------------------------------------------------
def _write_pngs(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for i, x in enumerate(images):
        Image.fromarray(x).save(folder / f"img_{i:03d}.png")
    return str(folder)


def _run(argv, capsys):
    status = main(argv)
    return status, capsys.readouterr().err


def test_cli_encode_decode_reconstruct_round_trip(digits_run, tmp_path, capsys):
    x, _ = digits()
    folder = _write_pngs(tmp_path / "in", x[:12])
    model = ["--logdir", str(digits_run), "--quiet"]
    assert main(["encode", folder, "--out", str(tmp_path / "z.npz"), "--noise", "centre", *model]) == 0
    data = np.load(tmp_path / "z.npz")
    assert data["eps"].shape == (12, 192) and data["eps_1"].shape == (12, 2, 2, 24) and "y" not in data
    assert [os.path.basename(f) for f in data["files"]] == [f"img_{i:03d}.png" for i in range(12)]
    glow = glow_tf.load_run(str(digits_run))[0]
    np.testing.assert_allclose(data["eps"], latent.encode(glow, x[:12], noise="centre"), atol=1e-5)

    assert main(["decode", str(tmp_path / "z.npz"), "--out", str(tmp_path / "d.png"), "--n_cols", "12",
                 "--png_dir", str(tmp_path / "dec"), *model]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "d.png")), np.concatenate(list(x[:12]), axis=1))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "dec" / "decoded_00011.png")), x[11])

    status, err = _run(["reconstruct", folder, "--out", str(tmp_path / "r.png"), "--noise", "centre",
                        "--n_cols", "6", "--logdir", str(digits_run)], capsys)
    assert status == 0 and "100.00% of sub-pixels equal" in err
    grid = np.asarray(Image.open(tmp_path / "r.png"))
    assert grid.shape == (32, 48, 3)  # rows: inputs 0-5, reconstructions 0-5, inputs 6-11, reconstructions 6-11
    np.testing.assert_array_equal(grid[8:16], np.concatenate(list(x[:6]), axis=1))
    np.testing.assert_array_equal(grid[24:32], np.concatenate(list(x[6:12]), axis=1))


def test_cli_interpolate_and_manipulate(digits_run, tmp_path):
    x, _ = digits()
    a, b = _write_pngs(tmp_path / "a", x[:1]), _write_pngs(tmp_path / "b", x[1:2])
    model = ["--logdir", str(digits_run), "--quiet", "--noise", "centre"]
    assert main(["interpolate", a, b, "--steps", "5", "--out", str(tmp_path / "i.png"),
                 "--gif", str(tmp_path / "i.gif"), *model]) == 0
    strip = np.asarray(Image.open(tmp_path / "i.png"))
    assert strip.shape == (8, 40, 3)
    np.testing.assert_array_equal(strip[:, :8], x[0])
    np.testing.assert_array_equal(strip[:, -8:], x[1])
    with Image.open(tmp_path / "i.gif") as gif:
        assert gif.n_frames == 8  # 5 forwards, 3 back

    d = np.random.default_rng(0).standard_normal((1, 192)).astype(np.float32)
    latent.save_directions(tmp_path / "d.npz", d, ["blob"])
    assert main(["manipulate", a, b, "--directions", str(tmp_path / "d.npz"), "--attr", "blob",
                 "--out", str(tmp_path / "m.png"), *model]) == 0  # the demo's 5 points, -1 .. 1
    m = np.asarray(Image.open(tmp_path / "m.png"))
    assert m.shape == (16, 40, 3)
    np.testing.assert_array_equal(m[:8, 16:24], x[0])  # alpha 0: the reconstruction
    np.testing.assert_array_equal(m[8:, 16:24], x[1])
    glow = glow_tf.load_run(str(digits_run))[0]
    z = latent.encode(glow, x[:1], noise="centre")[0]
    np.testing.assert_array_equal(m[:8, 32:40], latent.decode(glow, z[None] + d)[0])
    assert main(["manipulate", a, "--directions", str(tmp_path / "d.npz"), "--attr", "0", "--alphas", "-2", "0",
                 "--out", str(tmp_path / "m2.png"), *model]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "m2.png"))[:, :8],
                                  latent.decode(glow, z[None] - 2 * d)[0])


def test_cli_direction_from_csv_and_tfrecords_agree_with_the_library(digits_run, tmp_path):
    x, _ = digits()
    images = x[:40]
    attr = np.random.default_rng(0).choice([-1, 1], (40, 40))
    folder = _write_pngs(tmp_path / "imgs", images)
    rows = ["file," + ",".join(latent.CELEBA_ATTRIBUTES)]
    rows += [f"img_{i:03d}.png," + ",".join(map(str, a)) for i, a in enumerate(attr)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    write_celeba_tfrecord(tmp_path / "celeba.tfrecords", images, attr)
    model = ["--logdir", str(digits_run), "--quiet", "--noise", "centre", "--batch_size", "16"]
    assert main(["direction", "--labels", str(tmp_path / "labels.csv"), "--image_root", folder,
                 "--attr", "Smiling", "Young", "--out", str(tmp_path / "csv.npz"), *model]) == 0
    assert main(["direction", "--tfrecords", str(tmp_path / "celeba.tfrecords"), "--attr", "Smiling", "Young",
                 "--out", str(tmp_path / "tfr.npz"), *model]) == 0
    glow = glow_tf.load_run(str(digits_run))[0]
    expected = latent.attribute_direction(latent.encode(glow, images, noise="centre"), attr[:, [31, 39]])
    for name in ("csv", "tfr"):
        got = latent.load_directions(tmp_path / f"{name}.npz")
        assert list(got) == ["Smiling", "Young"]
        np.testing.assert_allclose(np.stack(list(got.values())), expected, atol=1e-5)
    counts = np.load(tmp_path / "csv.npz")
    assert counts["n_with"].tolist() == [(attr[:, 31] == 1).sum(), (attr[:, 39] == 1).sum()]


def test_cli_errors(digits_run, tmp_path, capsys):
    x, _ = digits()
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(big)
    model = ["--logdir", str(digits_run), "--quiet"]
    status, err = _run(["encode", str(big), "--out", str(tmp_path / "z.npz"), *model], capsys)
    assert status == 2 and "big.png' is 16x16 (WxH); the model expects 8x8" in err
    assert main(["encode", str(big), "--resize", "--out", str(tmp_path / "z.npz"), *model]) == 0

    np.savez(tmp_path / "wrong.npz", eps=np.zeros((2, 100), np.float32))
    status, err = _run(["decode", str(tmp_path / "wrong.npz"), "--out", str(tmp_path / "d.png"), *model], capsys)
    assert status == 2 and "latents have shape (2, 100); this model expects flat latents [N, 192]" in err

    status, err = _run(["encode", str(big), "--resize", "--y", "3", "--out", str(tmp_path / "z.npz"), *model], capsys)
    assert status == 2 and "unconditional" in err
    latent.save_directions(tmp_path / "d.npz", np.zeros((1, 50)), ["a"])
    status, err = _run(["manipulate", str(big), "--resize", "--directions", str(tmp_path / "d.npz"), "--attr", "a",
                        "--out", str(tmp_path / "m.png"), *model], capsys)
    assert status == 2 and "50 dimensions; this model's latents have 192" in err
    status, err = _run(["direction", "--out", str(tmp_path / "x.npz"), *model], capsys)
    assert status == 2 and "--labels FILE.csv or as --tfrecords" in err


@pytest.mark.slow
def test_export_saved_model_signatures(digits_run, tmp_path):
    x, _ = digits()
    assert main(["export", "--logdir", str(digits_run), "--out", str(tmp_path / "sm"), "--quiet"]) == 0
    assert glow_tf.GlowConfig.load(tmp_path / "sm" / "assets.extra" / "config.json").depth == 3
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    glow = glow_tf.load_run(str(digits_run))[0]
    z = latent.encode(glow, x[:5], noise="centre")
    out = loaded.signatures["decode"](eps=tf.constant(z))
    np.testing.assert_array_equal(out["images"].numpy(), x[:5])
    np.testing.assert_allclose(out["x"].numpy(), latent.decode(glow, z, postprocess=False), atol=1e-5)
    eps = loaded.signatures["encode"](x=tf.constant(x[:5]))["eps"]  # fresh noise, as the original
    np.testing.assert_array_equal(loaded.signatures["decode"](eps=eps)["images"].numpy(), x[:5])
    s = loaded.signatures["sample"](temperature=tf.constant([0.0, 0.0, 1.0]))
    assert (s["eps"].numpy()[:2] == 0).all() and s["eps"].numpy()[2].std() > 0.5
    np.testing.assert_array_equal(s["images"].numpy()[:2], np.repeat(latent.decode(glow, np.zeros((1, 192))), 2, 0))
