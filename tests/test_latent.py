"""Tests for the latent API (the Glow methods encode/decode/reconstruct/mix/interpolate/manipulate/
project, glow_tf.latents and glow_tf.directions) and the latent commands of `python -m glow_tf`,
against the original's reference vectors (tests/fixtures/original_glow), exact invertibility,
hand-computed values and a planted attribute.

The trained model is the session's class-conditional digits run (conftest.py: `digits_run`,
`digits_glow`); the original's models (`original_model`) cover the unconditional ones.
"""
import functools
import os
import pathlib
import threading

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import glow_tf
from glow_tf import directions, latents
from glow_tf.__main__ import main

pytestmark = pytest.mark.usefixtures("cli_loads_each_model_once")
FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "original_glow"


@functools.lru_cache(maxsize=None)
def digits():
    """scikit-learn's 1797 8x8 digits as uint8 RGB (round(v * 255 / 16), grey tiled) and labels."""
    from sklearn.datasets import load_digits  # noqa: PLC0415

    d = load_digits()
    x = np.round(d.images * 255 / 16).astype(np.uint8)
    return np.tile(x[..., None], (1, 1, 1, 3)), d.target.astype(np.int32)


def _y(glow, ref):
    return ref["y"] if glow.config.ycond else None


def _quantised(glow, x):
    step = 2 ** (8 - glow.config.n_bits_x)
    return x // step * step


# --- encode / decode against the original -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["additive_shuffle", "affine_lu_ycond"])
def test_encode_and_decode_match_the_original_in_its_flat_order(name, original_model):
    """The flat order and the uint8 round trip; test_original_reference.py checks every reference
    model's eps and decodings through the same methods."""
    glow, ref = original_model(name)
    z = glow.encode(ref["x"], _y(glow, ref), noise=ref["noise"], batch_size=5)
    eps = [ref[f"eps_{i}"] for i in range(glow.config.n_levels)]
    np.testing.assert_allclose(z, np.concatenate([e.reshape(16, -1) for e in eps], axis=1), atol=1e-4)
    for mine, theirs in zip(glow.unflatten(z), eps):
        np.testing.assert_allclose(mine, theirs, atol=1e-4)
    x = glow.decode(eps, _y(glow, ref), batch_size=3, postprocess=False)
    np.testing.assert_allclose(x + 0.5, ref["decoded"], atol=1e-4)  # = preprocessed x + noise + 0.5
    np.testing.assert_array_equal(glow.decode(glow.flatten(eps), _y(glow, ref)), _quantised(glow, ref["x"]))


def test_flatten_is_row_major_nhwc_per_level_then_concatenated(original_model):
    glow, _ = original_model("additive_shuffle")  # eps shapes (4, 4, 6), (2, 2, 24)
    eps = [np.arange(96, dtype=np.float32).reshape(1, 4, 4, 6),
           1000 + np.arange(96, dtype=np.float32).reshape(1, 2, 2, 24)]
    flat = glow.flatten(eps)
    assert flat.shape == (1, 192)
    assert flat[0, 6] == eps[0][0, 0, 1, 0] and flat[0, 96 + 24] == eps[1][0, 0, 1, 0]
    for a, b in zip(glow.unflatten(flat), eps):
        np.testing.assert_array_equal(a, b)


def test_latents_of_the_wrong_shape_are_refused(original_model):
    glow, _ = original_model("additive_shuffle")
    with pytest.raises(ValueError, match=r"shape \(2, 191\).*\[N, 192\]"):
        glow.decode(np.zeros((2, 191)))
    with pytest.raises(ValueError, match="1 per-level latent arrays given; this model has 2 levels"):
        glow.decode([np.zeros((2, 4, 4, 6))])
    with pytest.raises(ValueError, match=r"eps_1 has shape \(2, 2, 2, 12\)"):
        glow.decode([np.zeros((2, 4, 4, 6)), np.zeros((2, 2, 2, 12))])
    with pytest.raises(ValueError, match="NaN"):
        glow.decode(np.full((1, 192), np.nan))
    with pytest.raises(ValueError, match="batch_size=0; expected an integer >= 1"):
        glow.decode(np.zeros((1, 192)), batch_size=0)


def test_images_of_the_wrong_size_and_labels_are_refused(original_model):
    glow, _ = original_model("additive_shuffle")
    with pytest.raises(ValueError, match=r"shape \(1, 16, 16, 3\).*\[N, 8, 8, 3\]"):
        glow.encode(np.zeros((1, 16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        glow.encode(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="unconditional"):
        glow.encode(np.zeros((1, 8, 8, 3), np.uint8), y=0)
    with pytest.raises(ValueError, match=r"noise has shape \(1, 8, 8, 3\); expected the images' shape \(2, 8, 8, 3\)"):
        glow.encode(np.zeros((2, 8, 8, 3), np.uint8), noise=np.zeros((1, 8, 8, 3)))
    ycond, _ = original_model("affine_lu_ycond")
    with pytest.raises(ValueError, match=r"class 10 is out of range.*n_y=10"):
        ycond.decode(np.zeros((2, 192)), y=[3, 10])
    with pytest.raises(ValueError, match="class-conditional"):
        ycond.decode(np.zeros((2, 192)))


# --- dequantisation noise and reconstruction --------------------------------------------------------------
def test_noise_modes():
    config = glow_tf.GlowConfig(image_size=8, n_levels=2, depth=1, width=4, n_bits_x=5)
    centre = latents.dequantization_noise(config, 2, "centre")
    assert (centre == 0.5 / 32).all()
    a = latents.dequantization_noise(config, 5, "random", seed=3)
    assert a.min() >= 0 and a.max() < 1 / 32 and a.std() > 0.005
    # image i's noise depends on (seed, i) only: the same with an offset start
    np.testing.assert_array_equal(latents.dequantization_noise(config, 2, "random", seed=3, start=3), a[3:])
    assert not np.array_equal(latents.dequantization_noise(config, 5, "random", seed=4), a)
    with pytest.raises(ValueError, match="noise='middle'"):
        latents.dequantization_noise(config, 1, "middle")
    with pytest.raises(ValueError, match="seed=-1; expected an integer >= 0"):
        latents.dequantization_noise(config, 1, "random", seed=-1)


def test_trained_digits_model_reconstructs_its_inputs_exactly(digits_glow):
    x, y = digits()
    x, y = x[:400], y[:400]
    np.testing.assert_array_equal(digits_glow.reconstruct(x, y, noise="centre", batch_size=128), x)
    # with the original's random noise the latents change but the pixels come back (a value within
    # float round-off of a bin edge may fall into the neighbouring bin)
    rec = digits_glow.reconstruct(x, y, noise="random", seed=0)
    assert np.mean(rec == x) > 0.999 and np.abs(rec.astype(int) - x).max() <= 1
    z1 = digits_glow.encode(x[:8], y[:8], noise="random", seed=0, batch_size=3)
    # repeatable, whatever the batching (float round-off aside)
    np.testing.assert_allclose(z1, digits_glow.encode(x[:8], y[:8], noise="random", seed=0), atol=1e-5)
    assert not np.allclose(z1, digits_glow.encode(x[:8], y[:8], noise="centre"))
    # the class takes part: other labels, other latents (and the same pixels back)
    other = (y[:8] + 1) % 10
    assert not np.allclose(digits_glow.encode(x[:8], other, noise="centre"),
                           digits_glow.encode(x[:8], y[:8], noise="centre"))
    np.testing.assert_array_equal(digits_glow.reconstruct(x[:8], other, noise="centre"), x[:8])


def test_concurrent_calls_from_eight_threads_equal_serial_calls(digits_run, digits_glow):
    """A fresh model (so the first calls trace concurrently) shared by 8 threads, as a web server's."""
    x, y = digits()
    shared = glow_tf.load_run(str(digits_run))[0]
    jobs = [(k % 3, x[10 * k:10 * k + 1 + k], y[10 * k:10 * k + 1 + k]) for k in range(8)]  # batches 1..8

    def call(glow, op, images, labels):
        if op == 0:
            return glow.encode(images, labels, noise="random", seed=7, batch_size=3)
        if op == 1:
            return glow.reconstruct(images, labels, noise="centre")
        return glow.sample(len(images), [0.6, 0.8], labels, seed=len(images))

    results, barrier = [None] * len(jobs), threading.Barrier(len(jobs))

    def worker(k):
        barrier.wait()
        results[k] = call(shared, *jobs[k])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, (op, images, labels) in enumerate(jobs):
        np.testing.assert_array_equal(results[k], call(digits_glow, op, images, labels),
                                      err_msg=f"job {k}, operation {op}")


# --- interpolation and mixing -----------------------------------------------------------------------------
def test_mix_by_hand():
    z1, z2 = np.array([0.0, 2.0], np.float32), np.array([4.0, -2.0], np.float32)
    path = latents.mix(z1, z2, np.linspace(0, 1, 5))
    np.testing.assert_allclose(path, [[0, 2], [1, 1], [2, 0], [3, -1], [4, -2]])
    assert (path[0] == z1).all() and (path[-1] == z2).all()
    np.testing.assert_allclose(latents.mix(z1, z2, 0.25), [[1.0, 1.0]])
    with pytest.raises(ValueError, match="cannot mix latents of 2 and 3 values"):
        latents.mix(z1, np.zeros(3), 0.5)


def test_interpolate_endpoints_are_the_reconstructions(digits_glow):
    x, _ = digits()
    frames = digits_glow.interpolate(x[0], x[1], steps=6, y=3, noise="centre")  # one class for the path
    assert frames.shape == (6, 8, 8, 3)
    np.testing.assert_array_equal(frames[0], x[0])
    np.testing.assert_array_equal(frames[-1], x[1])
    z = digits_glow.encode(x[:2], [3, 3], noise="centre")
    np.testing.assert_array_equal(frames[2], digits_glow.decode(0.6 * z[0] + 0.4 * z[1], [3])[0])
    np.testing.assert_array_equal(digits_glow.mix(z[0], z[1], [0.4], 3), frames[2:3])
    assert not (frames[2] == x[0]).all() and not (frames[2] == x[1]).all()
    with pytest.raises(ValueError, match="steps=1; expected an integer >= 2"):
        digits_glow.interpolate(x[0], x[1], steps=1, y=3)


# --- manipulation and projection --------------------------------------------------------------------------
def test_range_alphas_are_the_demos_manipulate_range():
    # demo: z - dz + scale * (k / (points - 1)) * 2 dz, k = 0..points-1
    np.testing.assert_allclose(directions.range_alphas(5), [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_allclose(directions.range_alphas(5, 0.5), [-1, -0.75, -0.5, -0.25, 0])
    np.testing.assert_allclose(directions.range_alphas(2, 2.0), [-1, 3])


def test_manipulate_at_alpha_zero_is_the_reconstruction(digits_glow):
    x, y = digits()
    z = digits_glow.encode(x[5:6], y[5:6], noise="centre")[0]
    direction = np.random.default_rng(0).standard_normal(z.shape).astype(np.float32)
    out = digits_glow.manipulate(z, direction, [0.0, 0.5, -1.0], y[5])
    assert out.shape == (3, 8, 8, 3)
    np.testing.assert_array_equal(out[0], x[5])
    np.testing.assert_array_equal(out[1], digits_glow.decode(z + 0.5 * direction, y[5:6])[0])
    np.testing.assert_array_equal(out[2], digits_glow.decode(z - direction, y[5:6])[0])
    with pytest.raises(ValueError, match=r"directions have shape \(10,\); this model expects one direction \[192\]"):
        digits_glow.manipulate(z, direction[:10], [1.0], y[5])
    with pytest.raises(ValueError, match=r"alphas \[\[1.0, 2.0\]\]: expected finite numbers"):
        digits_glow.manipulate(z, direction, [[1.0, 2.0]], y[5])


def test_manipulate_with_two_directions_at_once_is_their_sum(digits_glow):
    x, y = digits()
    z = digits_glow.encode(x[:3], y[:3], noise="centre")
    d = np.random.default_rng(1).standard_normal((2, 192)).astype(np.float32)
    both = digits_glow.manipulate(z, d, [[0.7, -0.4], [0.0, 0.0]], y[:3])  # two combinations for each of 3 latents
    assert both.shape == (3, 2, 8, 8, 3)
    np.testing.assert_array_equal(both[:, 0], digits_glow.decode(z + (0.7 * d[0] + -0.4 * d[1]), y[:3]))
    np.testing.assert_array_equal(both[:, 1], x[:3])
    # one direction after the other: the same up to float round-off in the latent sum
    first = z + 0.7 * d[0]
    sequential = digits_glow.manipulate(first, d[1], [-0.4], y[:3])[:, 0]
    assert np.abs(sequential.astype(int) - both[:, 0]).max() <= 1 and np.mean(sequential == both[:, 0]) > 0.99
    np.testing.assert_array_equal(digits_glow.manipulate(z[0], d, [0.7, -0.4], y[0])[0], both[0, 0])  # one combination


def test_project_gives_the_coefficient_that_removes_a_direction(digits_glow):
    rng = np.random.default_rng(2)
    z, d = rng.standard_normal((4, 192)).astype(np.float32), rng.standard_normal((2, 192)).astype(np.float32)
    p = digits_glow.project(z, d)
    assert p.shape == (4, 2)
    np.testing.assert_allclose(p[1, 0], z[1] @ d[0] / (d[0] @ d[0]), rtol=1e-5)  # demo: z . d / |d|^2
    assert np.shape(digits_glow.project(z[0], d[1])) == () and digits_glow.project(z, d[1]).shape == (4,)
    removed = directions.move(z[0], d[0], -p[0, 0])[0, 0]
    assert abs(float(removed @ d[0])) < 1e-3 * np.linalg.norm(d[0]) * np.linalg.norm(z[0])
    np.testing.assert_allclose(digits_glow.project(removed, d[0]), 0.0, atol=1e-5)
    np.testing.assert_array_equal(digits_glow.manipulate(z[0], d[0], -p[0, 0], 4), digits_glow.decode(removed, [4]))
    with pytest.raises(ValueError, match="direction 0 is all zeros"):
        digits_glow.project(z, np.zeros(192))


# --- attribute directions ---------------------------------------------------------------------------------
def test_attribute_direction_by_hand():
    z = np.array([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0], [2.0, 2.0]])
    # with = rows 0, 1 -> mean [2, 1]; without = rows 2, 3 -> mean [1, 3]; difference [1, -2]
    np.testing.assert_allclose(directions.attribute_direction(z, [1, 1, -1, -1]), [1.6, -3.2], rtol=1e-6)
    np.testing.assert_allclose(directions.attribute_direction(z, [1, 1, 0, 0], scale=1.0), [1.0, -2.0])
    both = directions.attribute_direction(z, np.array([[1, -1], [1, 1], [-1, 1], [-1, -1]]))
    np.testing.assert_allclose(both[1], 1.6 * (np.array([1.5, 3.0]) - np.array([1.5, 1.0])), rtol=1e-6)
    # streaming over batches gives the same directions as all at once
    means = directions.AttributeMeans(2, ["a"])
    means.update(z[:1], [[1]])
    means.update(z[1:], [[1], [-1], [-1]])
    np.testing.assert_allclose(means.directions()[0], [1.6, -3.2], rtol=1e-6)
    assert means.n_with.tolist() == [2] and means.n_without.tolist() == [2]


def test_attribute_direction_errors():
    z = np.zeros((3, 2))
    with pytest.raises(ValueError, match="attribute '0' has 3 images with it and 0 without"):
        directions.attribute_direction(z, [1, 1, 1])
    with pytest.raises(ValueError, match="label 2"):
        directions.attribute_direction(z, [1, 2, -1])


def test_direction_recovers_a_planted_latent_difference():
    rng = np.random.default_rng(0)
    planted = rng.standard_normal(64)
    labels = rng.choice([-1, 1], 4000)
    z = rng.standard_normal((4000, 64)) + np.outer(labels == 1, planted)
    d = directions.attribute_direction(z, labels)
    np.testing.assert_allclose(d, 1.6 * planted, atol=0.25)
    assert d @ planted / np.linalg.norm(d) / np.linalg.norm(planted) > 0.99


def test_direction_of_a_planted_image_attribute_adds_it(digits_glow):
    """Digits where the attribute is a bright 2x3 corner patch: the direction from labelled encodings
    is the paired latent difference the patch causes, and moving unseen digits along it paints the patch."""
    x, y = digits()
    mask = np.zeros((8, 8, 3), bool)
    mask[0:2, 0:3] = True
    base, classes = x[:600], y[:600]
    labels = np.random.default_rng(1).choice([-1, 1], len(base))
    patched = np.where(mask, 255, base).astype(np.uint8)
    data = np.where((labels == 1)[:, None, None, None], patched, base)
    d = directions.attribute_direction(digits_glow.encode(data, classes, noise="centre", batch_size=200), labels)
    paired = (digits_glow.encode(patched, classes, noise="centre", batch_size=200)
              - digits_glow.encode(base, classes, noise="centre", batch_size=200)).mean(0)
    assert d @ paired / np.linalg.norm(d) / np.linalg.norm(paired) > 0.95
    np.testing.assert_allclose(np.linalg.norm(d) / directions.DEMO_SCALE, np.linalg.norm(paired), rtol=0.1)

    z = digits_glow.encode(x[1000:1060], y[1000:1060], noise="centre")
    moved = digits_glow.manipulate(z, d, [0.0, 1 / directions.DEMO_SCALE], y[1000:1060])
    change = (moved[:, 1].astype(float) - moved[:, 0]).mean(0)
    assert change[mask].mean() > 120 and np.abs(change[~mask]).mean() < 20
    assert np.corrcoef(change.ravel(), mask.ravel())[0, 1] > 0.8


# --- files: directions, latents, label CSVs ---------------------------------------------------------------
def test_directions_files(tmp_path):
    d = np.arange(6, dtype=np.float32).reshape(2, 3)
    directions.save_directions(tmp_path / "d.npz", d, ["Smiling", "Young"], n_with=[3, 4], n_without=[5, 6])
    loaded = directions.load_directions(tmp_path / "d.npz", n_dims=3)
    assert list(loaded) == ["Smiling", "Young"]
    np.testing.assert_array_equal(loaded["Young"], d[1])
    np.testing.assert_array_equal(directions.pick_direction(loaded, "1"), d[1])
    with pytest.raises(ValueError, match="no attribute 'Bald' in the directions; available: Smiling, Young"):
        directions.pick_direction(loaded, "Bald")
    with pytest.raises(ValueError, match="3 dimensions; this model's latents have 4"):
        directions.load_directions(tmp_path / "d.npz", n_dims=4)
    # the demo's z_manipulate.npy: [40, D], CelebA's attribute order
    np.save(tmp_path / "z_manipulate.npy", np.tile(np.arange(40, dtype=np.float32)[:, None], (1, 3)))
    demo = directions.load_directions(tmp_path / "z_manipulate.npy")
    # with demo/model.py's load-time corrections: No_Beard and Young negated, Narrow_Eyes x 1.2
    assert demo["Smiling"][0] == 31 and demo["Young"][0] == -39 and demo["No_Beard"][0] == -24
    assert demo["Narrow_Eyes"][0] == pytest.approx(23 * 1.2) and demo["Male"][0] == 20


def test_latent_files(tmp_path, original_model):
    glow, _ = original_model("affine_lu_ycond")
    config = glow.config
    z = np.random.default_rng(0).standard_normal((3, 192)).astype(np.float32)
    latents.save_latents(tmp_path / "z.npz", config, z, y=[1, 2, 3], files=np.array(["a", "b", "c"]))
    data = np.load(tmp_path / "z.npz")
    assert data["eps_0"].shape == (3, 4, 4, 6) and data["eps_1"].shape == (3, 2, 2, 24)
    np.testing.assert_array_equal(glow.flatten([data["eps_0"], data["eps_1"]]), z)
    got, y = latents.load_latents(tmp_path / "z.npz", config)
    np.testing.assert_array_equal(got, z)
    assert y.tolist() == [1, 2, 3]
    np.savez(tmp_path / "levels.npz", eps_0=data["eps_0"], eps_1=data["eps_1"])
    np.testing.assert_array_equal(latents.load_latents(tmp_path / "levels.npz", config)[0], z)
    np.save(tmp_path / "z.npy", z)  # the original's --inference z.npy
    np.testing.assert_array_equal(latents.load_latents(tmp_path / "z.npy", config)[0], z)
    np.save(tmp_path / "bad.npy", z[:, :100])
    with pytest.raises(ValueError, match=r"bad.npy.*\(3, 100\).*\[N, 192\]"):
        latents.load_latents(tmp_path / "bad.npy", config)
    with pytest.raises(FileNotFoundError, match="no latents file"):
        latents.load_latents(tmp_path / "none.npz", config)


def test_read_label_csv(tmp_path):
    (tmp_path / "l.csv").write_text("image_id,Smiling,Young\na.png,1,-1\nb.png, -1, 1\n\nc.png,0,1\n")
    files, names, labels = directions.read_label_csv(tmp_path / "l.csv")
    assert files == ["a.png", "b.png", "c.png"] and names == ["Smiling", "Young"]
    assert labels.tolist() == [[1, -1], [-1, 1], [0, 1]]
    assert directions.read_label_csv(tmp_path / "l.csv", ["Young"])[2].tolist() == [[-1], [1], [1]]
    with pytest.raises(ValueError, match="no attribute 'Bald'"):
        directions.read_label_csv(tmp_path / "l.csv", ["Bald"])
    (tmp_path / "bad.csv").write_text("f,Smiling\na.png,yes\n")
    with pytest.raises(ValueError, match="line 2"):
        directions.read_label_csv(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("f,Smiling\na.png,2\n")
    with pytest.raises(ValueError, match=r"-1, 0 or 1, got \[2\]"):
        directions.read_label_csv(tmp_path / "bad2.csv")


def write_celeba_tfrecord(path, images, attr):
    """Records in the format of openai's CelebA TFRecords: shape, data (raw HWC uint8), label, attr (40 ±1)."""
    def int64(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(map(int, values))))
    with tf.io.TFRecordWriter(str(path)) as writer:
        for x, a in zip(images, attr):
            feature = {"shape": int64(x.shape), "data": tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[x.tobytes()])), "label": int64([0]), "attr": int64(a)}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


# --- the command line -------------------------------------------------------------------------------------
def _write_pngs(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for i, x in enumerate(images):
        Image.fromarray(x).save(folder / f"img_{i:03d}.png")
    return str(folder)


def _run(argv, capsys):
    status = main(argv)
    return status, capsys.readouterr().err


def _original(name):
    """The command-line flags of the original's model tests/fixtures/original_glow/NAME."""
    folder = FIXTURES / name
    return ["--restore_path", str(folder / "model.ckpt"), "--hps", str(folder / "hps.json"), "--quiet"]


def test_cli_encode_decode_reconstruct_round_trip(digits_run, digits_glow, original_model, tmp_path, capsys):
    x, y = digits()
    folder = _write_pngs(tmp_path / "in", x[:12])
    model = ["--logdir", str(digits_run), "--quiet"]
    labels = ["--y", ",".join(map(str, y[:12]))]  # one class per image
    assert main(["encode", folder, "--out", str(tmp_path / "z.npz"), "--noise", "centre", *labels, *model]) == 0
    data = np.load(tmp_path / "z.npz")
    assert data["eps"].shape == (12, 192) and data["eps_1"].shape == (12, 2, 2, 24)
    assert data["y"].tolist() == y[:12].tolist()  # the classes travel with the latents
    assert [os.path.basename(f) for f in data["files"]] == [f"img_{i:03d}.png" for i in range(12)]
    np.testing.assert_allclose(data["eps"], digits_glow.encode(x[:12], y[:12], noise="centre"), atol=1e-5)
    # an unconditional model (the original's) writes no labels
    assert main(["encode", folder, "--out", str(tmp_path / "u.npz"), "--noise", "centre",
                 *_original("additive_shuffle")]) == 0
    unconditional = np.load(tmp_path / "u.npz")
    assert "y" not in unconditional
    original, _ = original_model("additive_shuffle")
    np.testing.assert_allclose(unconditional["eps"], original.encode(x[:12], noise="centre"), atol=1e-5)

    assert main(["decode", str(tmp_path / "z.npz"), "--out", str(tmp_path / "d.png"), "--n_cols", "12",
                 "--png_dir", str(tmp_path / "dec"), *model]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "d.png")), np.concatenate(list(x[:12]), axis=1))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "dec" / "decoded_00011.png")), x[11])

    status, err = _run(["reconstruct", folder, "--out", str(tmp_path / "r.png"), "--noise", "centre",
                        "--n_cols", "6", *labels, "--logdir", str(digits_run)], capsys)
    assert status == 0 and "100.00% of sub-pixels equal" in err
    grid = np.asarray(Image.open(tmp_path / "r.png"))
    assert grid.shape == (32, 48, 3)  # rows: inputs 0-5, reconstructions 0-5, inputs 6-11, reconstructions 6-11
    np.testing.assert_array_equal(grid[8:16], np.concatenate(list(x[:6]), axis=1))
    np.testing.assert_array_equal(grid[24:32], np.concatenate(list(x[6:12]), axis=1))


def test_cli_interpolate_and_manipulate(digits_run, digits_glow, tmp_path):
    x, _ = digits()
    a, b = _write_pngs(tmp_path / "a", x[:1]), _write_pngs(tmp_path / "b", x[1:2])
    model = ["--logdir", str(digits_run), "--quiet", "--noise", "centre", "--y", "3"]  # one class for both
    assert main(["interpolate", a, b, "--steps", "5", "--out", str(tmp_path / "i.png"),
                 "--gif", str(tmp_path / "i.gif"), *model]) == 0
    strip = np.asarray(Image.open(tmp_path / "i.png"))
    assert strip.shape == (8, 40, 3)
    np.testing.assert_array_equal(strip[:, :8], x[0])
    np.testing.assert_array_equal(strip[:, -8:], x[1])
    with Image.open(tmp_path / "i.gif") as gif:
        assert gif.n_frames == 8  # 5 forwards, 3 back

    d = np.random.default_rng(0).standard_normal((1, 192)).astype(np.float32)
    directions.save_directions(tmp_path / "d.npz", d, ["blob"])
    assert main(["manipulate", a, b, "--directions", str(tmp_path / "d.npz"), "--attr", "blob",
                 "--out", str(tmp_path / "m.png"), *model]) == 0  # the demo's 5 points, -1 .. 1
    m = np.asarray(Image.open(tmp_path / "m.png"))
    assert m.shape == (16, 40, 3)
    np.testing.assert_array_equal(m[:8, 16:24], x[0])  # alpha 0: the reconstruction
    np.testing.assert_array_equal(m[8:, 16:24], x[1])
    z = digits_glow.encode(x[:1], [3], noise="centre")
    np.testing.assert_array_equal(m[:8, 32:40], digits_glow.decode(z + d, [3])[0])
    assert main(["manipulate", a, "--directions", str(tmp_path / "d.npz"), "--attr", "0", "--alphas", "-2", "0",
                 "--out", str(tmp_path / "m2.png"), *model]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "m2.png"))[:, :8],
                                  digits_glow.decode(z - 2 * d, [3])[0])


def test_cli_direction_from_csv_and_tfrecords_agree_with_the_library(digits_run, digits_glow, tmp_path):
    x, _ = digits()
    images = x[:40]
    attr = np.random.default_rng(0).choice([-1, 1], (40, 40))
    folder = _write_pngs(tmp_path / "imgs", images)
    rows = ["file," + ",".join(directions.CELEBA_ATTRIBUTES)]
    rows += [f"img_{i:03d}.png," + ",".join(map(str, a)) for i, a in enumerate(attr)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "tfr").mkdir()
    write_celeba_tfrecord(tmp_path / "tfr" / "train-r03-s-0000-of-0002.tfrecords", images[:25], attr[:25])
    write_celeba_tfrecord(tmp_path / "tfr" / "train-r03-s-0001-of-0002.tfrecords", images[25:], attr[25:])
    model = ["--logdir", str(digits_run), "--quiet", "--noise", "centre", "--batch_size", "16", "--y", "3"]
    assert main(["direction", "--labels", str(tmp_path / "labels.csv"), "--image_root", folder,
                 "--attr", "Smiling", "Young", "--out", str(tmp_path / "csv.npz"), *model]) == 0
    assert main(["direction", "--tfrecords", str(tmp_path / "tfr" / "*.tfrecords"), "--attr", "Smiling", "Young",
                 "--out", str(tmp_path / "tfr.npz"), *model]) == 0  # a glob, read in sorted order
    expected = directions.attribute_direction(digits_glow.encode(images, 3, noise="centre"), attr[:, [31, 39]])
    for name in ("csv", "tfr"):
        got = directions.load_directions(tmp_path / f"{name}.npz")
        assert list(got) == ["Smiling", "Young"]
        np.testing.assert_allclose(np.stack(list(got.values())), expected, atol=1e-5)
    counts = np.load(tmp_path / "csv.npz")
    assert counts["n_with"].tolist() == [(attr[:, 31] == 1).sum(), (attr[:, 39] == 1).sum()]
    # --max_images over a folder: the first 20 records
    assert main(["direction", "--tfrecords", str(tmp_path / "tfr"), "--attr", "31", "--max_images", "20",
                 "--out", str(tmp_path / "first.npz"), *model]) == 0
    first = directions.attribute_direction(digits_glow.encode(images[:20], 3, noise="centre"), attr[:20, 31])
    np.testing.assert_allclose(directions.load_directions(tmp_path / "first.npz")["Smiling"], first, atol=1e-5)


def test_cli_errors(digits_run, tmp_path, capsys):
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(big)
    model = ["--logdir", str(digits_run), "--quiet", "--y", "3"]
    status, err = _run(["encode", str(big), "--out", str(tmp_path / "z.npz"), *model], capsys)
    assert status == 2 and "big.png' is 16x16 (WxH); the model expects 8x8" in err
    assert main(["encode", str(big), "--resize", "--out", str(tmp_path / "z.npz"), *model]) == 0

    np.savez(tmp_path / "wrong.npz", eps=np.zeros((2, 100), np.float32))
    status, err = _run(["decode", str(tmp_path / "wrong.npz"), "--out", str(tmp_path / "d.png"), *model], capsys)
    assert status == 2 and "latents have shape (2, 100); this model expects flat latents [N, 192]" in err

    status, err = _run(["encode", str(big), "--resize", "--out", str(tmp_path / "z.npz"), *model[:-2]], capsys)
    assert status == 2 and "class-conditional" in err  # no --y
    status, err = _run(["encode", str(big), "--resize", "--y", "3", "--out", str(tmp_path / "z.npz"),
                        *_original("additive_shuffle")], capsys)
    assert status == 2 and "unconditional" in err
    directions.save_directions(tmp_path / "d.npz", np.zeros((1, 50)), ["a"])
    status, err = _run(["manipulate", str(big), "--resize", "--directions", str(tmp_path / "d.npz"), "--attr", "a",
                        "--out", str(tmp_path / "m.png"), *model], capsys)
    assert status == 2 and "50 dimensions; this model's latents have 192" in err
    status, err = _run(["direction", "--out", str(tmp_path / "x.npz"), *model], capsys)
    assert status == 2 and "--labels FILE.csv or as --tfrecords" in err
    status, err = _run(["direction", "--tfrecords", str(tmp_path / "none*.tfrecords"), "--out",
                        str(tmp_path / "x.npz"), *model], capsys)
    assert status == 2 and "no TFRecord files match" in err
    write_celeba_tfrecord(tmp_path / "big.tfrecords", np.zeros((1, 16, 16, 3), np.uint8), np.ones((1, 40)))
    status, err = _run(["direction", "--tfrecords", str(tmp_path / "big.tfrecords"), "--out",
                        str(tmp_path / "x.npz"), *model], capsys)
    assert status == 2 and "hold 16x16x3 images with 40 attributes; the model expects 8x8x3" in err


@pytest.mark.slow
def test_export_saved_model_signatures(digits_run, digits_glow, tmp_path):
    x, y = digits()
    x, y = x[:5], tf.constant(y[:5])
    assert main(["export", "--logdir", str(digits_run), "--out", str(tmp_path / "sm"), "--quiet"]) == 0
    assert glow_tf.GlowConfig.load(tmp_path / "sm" / "assets.extra" / "config.json").depth == 2
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    z = digits_glow.encode(x, y, noise="centre")
    out = loaded.signatures["decode"](eps=tf.constant(z), y=y)
    np.testing.assert_array_equal(out["images"].numpy(), x)
    np.testing.assert_allclose(out["x"].numpy(), digits_glow.decode(z, y, postprocess=False), atol=1e-5)
    eps = loaded.signatures["encode"](x=tf.constant(x), y=y)["eps"]  # fresh noise, as the original
    np.testing.assert_array_equal(loaded.signatures["decode"](eps=eps, y=y)["images"].numpy(), x)
    s = loaded.signatures["sample"](temperature=tf.constant([0.0, 0.0, 1.0]), y=tf.constant([2, 2, 2]))
    assert (s["eps"].numpy()[:2] == 0).all() and s["eps"].numpy()[2].std() > 0.5
    np.testing.assert_array_equal(s["images"].numpy()[:2], np.repeat(digits_glow.decode(np.zeros((1, 192)), [2]), 2, 0))
