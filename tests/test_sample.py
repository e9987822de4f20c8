"""Tests for sampling (sample.py, `python -m glow_tf sample`, Glow.sample): temperature semantics of
openai f_sample (eps_std at the top prior and every split, means unscaled), seeding, the grids' class
labels, the outputs, original TF1 checkpoints, and clear errors. The original's reference `decoded_T`
is checked through Glow.decode in test_original_reference.py."""
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import glow_tf
import sample
from glow_tf import latents
from glow_tf.__main__ import grid_labels, main

# The trained model is the session's class-conditional digits run (conftest.py: digits_run, digits_glow).
pytestmark = pytest.mark.usefixtures("cli_loads_each_model_once")
ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "original_glow"


def _original(name):
    folder = FIXTURES / name
    return ["--restore_path", str(folder / "model.ckpt"), "--hps", str(folder / "hps.json"), "--quiet"]


def _png(path):
    return np.asarray(Image.open(path))


def _tiles(grid, size):
    """The images of a grid, row-major (inverse of images.grid for full rows)."""
    rows, cols = grid.shape[0] // size, grid.shape[1] // size
    return grid.reshape(rows, size, cols, size, -1).transpose(0, 2, 1, 3, 4).reshape(rows * cols, size, size, -1)


# --- temperature semantics --------------------------------------------------------------------------------
def test_temperature_zero_gives_the_prior_means_at_every_level(digits_glow):
    y = [0, 3, 3, 9]
    a = digits_glow.sample_latents(4, 0.0, seed=0)
    assert (a == 0).all() and (digits_glow.sample_latents(4, 0.0, seed=1) == 0).all()
    np.testing.assert_array_equal(digits_glow.sample(4, 0.0, y, seed=0), digits_glow.sample(4, 0.0, y, seed=1))
    np.testing.assert_array_equal(digits_glow.sample(4, 0.0, y, seed=0), digits_glow.decode(np.zeros((4, 192)), y))
    # independent check: re-encoding the (continuous) T=0 image lands on every prior's mean, eps = 0
    x = digits_glow.decode(a[:1], [3], postprocess=False)
    eps, _, _ = digits_glow.encode_dequantized(x, tf.constant([3]))
    assert max(float(np.abs(e).max()) for e in eps) < 1e-3
    # and a T=1 sample is not the mean
    t1 = digits_glow.decode(digits_glow.sample_latents(1, 1.0, seed=0), [3], postprocess=False)
    assert np.abs(t1 - x).max() > 0.05


def test_temperature_zero_of_a_class_conditional_model_is_each_class_mean(original_model):
    glow, _ = original_model("affine_lu_ycond")
    x = glow.sample(3, 0.0, y=[2, 2, 7], seed=5)
    np.testing.assert_array_equal(x[0], x[1])
    np.testing.assert_array_equal(x[2], glow.decode(np.zeros((1, 192)), y=7)[0])
    assert not np.array_equal(x[0], x[2])  # the top prior's mean depends on the class


def test_sample_at_temperature_is_the_decode_of_temperature_times_eps(digits_glow):
    config = digits_glow.config
    unit = latents.unit_eps(config, 6, seed=3)
    y = [1, 1, 2, 3, 5, 8]
    np.testing.assert_array_equal(digits_glow.sample(6, 0.7, y, seed=3), digits_glow.decode(0.7 * unit, y))
    # sample i depends on (seed, i) only
    np.testing.assert_array_equal(latents.unit_eps(config, 2, seed=3), unit[:2])
    np.testing.assert_array_equal(latents.unit_eps(config, 2, seed=3, start=4), unit[4:])
    big = latents.unit_eps(config, 200, seed=0)
    assert abs(big.mean()) < 0.02 and abs(big.std() - 1) < 0.02
    # per-level temperatures: 0 at the split, 0.5 at the top
    eps = digits_glow.sample_latents(6, [0.0, 0.5], seed=3)
    assert (eps[:, :96] == 0).all()
    np.testing.assert_array_equal(eps[:, 96:], 0.5 * unit[:, 96:])
    with pytest.raises(ValueError, match="seed=1.5; expected an integer >= 0"):
        digits_glow.sample(1, y=0, seed=1.5)


def test_check_temperature():
    assert latents.check_temperature(0.7, 3) == (0.7, 0.7, 0.7)
    assert latents.check_temperature([0, 0.5, 1], 3) == (0.0, 0.5, 1.0)
    with pytest.raises(ValueError, match="temperature -0.1 is invalid; expected a finite number >= 0"):
        latents.check_temperature(-0.1, 2)
    with pytest.raises(ValueError, match="temperature nan"):
        latents.check_temperature(float("nan"), 2)
    with pytest.raises(ValueError, match="3 per-level temperatures .* has 2 levels"):
        latents.check_temperature([1, 1, 1], 2)


def test_grid_labels_are_the_originals_column_classes():
    """openai train.py draw_samples: `[_y % n_y for _y in list(range(cols)) * rows]`, restated."""
    for n_y, cols, rows in ((10, 10, 10), (20, 10, 10), (3, 4, 4), (10, 3, 2)):
        original = [_y % n_y for _y in list(range(cols)) * rows]
        assert grid_labels(cols * rows, cols, n_y).tolist() == original
    assert grid_labels(100, 10, 20).tolist() != [i % 20 for i in range(100)]  # where i % n_y differs


# --- the command line -------------------------------------------------------------------------------------
def test_cli_same_seed_same_grid_and_samples_independent_of_n(digits_run, digits_glow, tmp_path):
    model = ["--logdir", str(digits_run), "--quiet"]
    # a, b, c: 9 samples, ceil(sqrt(9)) = 3 columns; d: 4 samples in 3 columns, so that the classes
    # (column c gets class c % n_y) of its samples are a's first four's
    for name, seed, n, cols in (("a", 0, 9, []), ("b", 0, 9, []), ("c", 1, 9, []), ("d", 0, 4, ["--n_cols", "3"])):
        assert main(["sample", "--temperature", "0.7", "--n", str(n), "--seed", str(seed), *cols,
                     "--out", str(tmp_path / f"{name}.png"), *model]) == 0
    a, b, c, d = (_png(tmp_path / f"{k}.png") for k in "abcd")
    assert a.shape == (24, 24, 3)  # 3 columns of 8x8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(_tiles(a, 8), digits_glow.sample(9, 0.7, grid_labels(9, 3, 10), seed=0))
    np.testing.assert_array_equal(_tiles(d, 8)[:4], _tiles(a, 8)[:4])


def test_cli_several_temperatures_one_row_each_with_npz_and_pngs(digits_run, digits_glow, tmp_path):
    out, npz = tmp_path / "rows.png", tmp_path / "s.npz"
    assert main(["sample", "--logdir", str(digits_run), "--quiet", "--temperature", "0", "0.5", "1,0.25",
                 "--n", "5", "--seed", "7", "--batch_size", "2", "--out", str(out), "--npz", str(npz),
                 "--png_dir", str(tmp_path / "pngs")]) == 0
    grid = _png(out)
    assert grid.shape == (24, 40, 3)  # 3 temperatures x 5 samples
    unit = latents.unit_eps(digits_glow.config, 5, seed=7)
    scales = [latents.temperature_scale(digits_glow.config, t) for t in (0.0, 0.5, [1.0, 0.25])]
    y = np.arange(5)  # one row per temperature: column c gets class c
    expected = np.concatenate([digits_glow.decode(unit * s, y) for s in scales])
    np.testing.assert_array_equal(_tiles(grid, 8), expected)
    data = np.load(npz)
    np.testing.assert_allclose(data["eps"], np.concatenate([unit * s for s in scales]), rtol=1e-6)
    np.testing.assert_array_equal(data["images"], expected)
    temperatures = data["temperature"].tolist()
    assert temperatures[4:6] == [[0.0, 0.0], [0.5, 0.5]] and temperatures[-1] == [1.0, 0.25]
    assert int(data["seed"]) == 7 and data["y"].tolist() == [*y] * 3 and data["eps_1"].shape == (15, 2, 2, 24)
    np.testing.assert_array_equal(_png(tmp_path / "pngs" / "sample_T1-0.25_00004.png"), expected[-1])
    # decoding the saved latents gives the same images back
    assert main(["decode", str(npz), "--logdir", str(digits_run), "--quiet", "--n_cols", "5",
                 "--out", str(tmp_path / "again.png")]) == 0
    np.testing.assert_array_equal(_png(tmp_path / "again.png"), grid)


def test_cli_class_conditional_original_checkpoint(tmp_path, original_model):
    glow, _ = original_model("affine_lu_ycond")
    unit = latents.unit_eps(glow.config, 4, seed=0)
    assert main(["sample", *_original("affine_lu_ycond"), "--cpu", "--n", "4", "--seed", "0", "--y", "3",
                 "--out", str(tmp_path / "y3.png")]) == 0
    np.testing.assert_array_equal(_tiles(_png(tmp_path / "y3.png"), 8), glow.decode(0.7 * unit, y=3))
    # without --y, grid column c gets class c % n_y (the original's sample grids): 6 samples in 4
    # columns are classes 0 1 2 3 / 0 1, not i % n_y; hps from a train.txt
    hps = json.loads((FIXTURES / "affine_lu_ycond" / "hps.json").read_text())
    (tmp_path / "train.txt").write_text(json.dumps(hps) + "\n" + json.dumps({"epoch": 1, "loss": "3.1"}) + "\n")
    args = _original("affine_lu_ycond")
    args[args.index("--hps") + 1] = str(tmp_path / "train.txt")
    assert main(["sample", *args, "--n", "6", "--n_cols", "4", "--seed", "0", "--temperature", "0",
                 "--npz", str(tmp_path / "s.npz"), "--out", str(tmp_path / "t0.png")]) == 0
    data = np.load(tmp_path / "s.npz")
    assert data["y"].tolist() == [0, 1, 2, 3, 0, 1]
    np.testing.assert_array_equal(data["images"], glow.decode(np.zeros((6, 192)), y=[0, 1, 2, 3, 0, 1]))
    np.testing.assert_array_equal(_tiles(_png(tmp_path / "t0.png"), 8)[:6], data["images"])


def test_cli_errors(digits_run, tmp_path, capsys):
    def error(argv, run=main):
        assert run(argv) == 2
        return capsys.readouterr().err

    out = ["--out", str(tmp_path / "x.png")]
    run = ["--logdir", str(digits_run), "--quiet", *out]
    negative = error(["sample", *run, "--temperature", "-0.5"])
    assert "temperature -0.5 is invalid; expected a finite number >= 0" in negative
    assert "3 per-level temperatures" in error(["sample", *run, "--temperature", "1,1,1"])
    unconditional = [*_original("additive_shuffle"), *out]
    assert "--y 2: class labels y=2 given, but this model is unconditional" in error(["sample", *unconditional,
                                                                                      "--y", "2"])
    ycond = [*_original("affine_lu_ycond"), *out]
    out_of_range = error(["sample", *ycond, "--y", "10"])
    assert "--y 10: class 10 is out of range: the model has n_y=10 classes (0..9)" in out_of_range
    assert "class -1 is out of range" in error(["sample", *ycond, "--y", "1,-1"])
    assert "expected a class number" in error(["sample", *ycond, "--y", "cat"])

    empty = tmp_path / "empty_run"
    empty.mkdir()
    glow_tf.GlowConfig(image_size=8, n_levels=2, depth=1, width=4).save(empty / "config.json")
    assert "no latest checkpoint in" in error(["sample", "--logdir", str(empty), *out])
    assert "no model given" in error(["sample", *out])
    # an original checkpoint without its hyper-parameters
    err = error(["sample", "--restore_path", str(FIXTURES / "additive_reverse" / "model.ckpt"), *out])
    assert "no config.json" in err and "--hps" in err
    # sample.py's latent commands: one error line, no traceback
    err = error(["decode", str(tmp_path / "missing.npz"), "--logdir", str(digits_run), *out], run=sample.run)
    assert err.startswith("sample.py decode: error: no latents file") and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_sample_py_command_line(digits_run, digits_glow, tmp_path):
    """The issue's command, run as a user would (sample.py's default command is `sample`)."""
    cmd = [sys.executable, str(ROOT / "sample.py"), "--logdir", str(digits_run), "--temperature", "0.7",
           "--n", "64", "--seed", "0", "--out", str(tmp_path / "grid.png")]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    grid = _png(tmp_path / "grid.png")
    assert grid.shape == (64, 64, 3)
    np.testing.assert_array_equal(_tiles(grid, 8), digits_glow.sample(64, 0.7, grid_labels(64, 8, 10), seed=0))
