"""Loading original TF1 checkpoints (names and shapes of openai/glow's graph), refusing ones that do
not fit, and this project's own tf.train.Checkpoint round trip (the actnorms' `initialized` flag)."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bijector_checks import perturb
from glow_tf import Glow, GlowConfig, load_original_checkpoint, original_variable_map

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": ""}
REFERENCE_DIR = os.path.join(os.path.dirname(__file__), "fixtures", "original_glow")
FOLDERS = sorted(f for f in os.listdir(REFERENCE_DIR) if os.path.isdir(os.path.join(REFERENCE_DIR, f)))


def _hps(folder):
    with open(os.path.join(REFERENCE_DIR, folder, "hps.json")) as f:
        return json.load(f)


def _prefix(folder):
    return os.path.join(REFERENCE_DIR, folder, "model.ckpt")


@pytest.mark.parametrize("folder", FOLDERS)
def test_variable_map_has_the_original_graphs_names_and_shapes(folder):
    """hps.json lists every variable of the original's graph (name -> shape), written by the original."""
    hps = _hps(folder)
    expected = {name.removesuffix(":0"): shape for name, shape in hps["variables"].items()}
    ours = {name: var.shape.as_list() for name, var in original_variable_map(Glow(GlowConfig.from_dict(
        hps, strict=False))).items()}
    assert ours == expected


def test_loaded_model_is_initialised_and_ddi_changes_nothing():
    hps = _hps("affine_invconv")
    glow = load_original_checkpoint(_prefix("affine_invconv"), hps)  # a dict config is accepted too
    assert glow.is_initialized
    before = [v.numpy().copy() for v in glow.variables]
    x = np.random.RandomState(0).randint(0, 256, [4, 8, 8, 3]).astype(np.uint8)
    glow.initialize(x)
    for b, v in zip(before, glow.variables):
        np.testing.assert_array_equal(v.numpy(), b, err_msg=v.name)


def test_polyak_weights_are_loaded_from_the_moving_averages(tmp_path):
    """A checkpoint holding `<name>/ExponentialMovingAverage` next to each weight, as the original's
    Saver wrote them: polyak=True loads the averages, the default the raw weights."""
    hps = _hps("additive_reverse")
    reader = tf.train.load_checkpoint(_prefix("additive_reverse"))
    raw = {n: tf.Variable(reader.get_tensor(n), name=n) for n in reader.get_variable_to_shape_map()}
    averaged = {f"{n}/ExponentialMovingAverage": tf.Variable(v + 1.0) for n, v in raw.items()}
    prefix = str(tmp_path / "model.ckpt")
    # tf.train.Checkpoint stores objects, not TF1 names: write the TF1 layout with raw_ops.SaveV2.
    names = list(raw) + list(averaged)
    tensors = [v.read_value() for v in list(raw.values()) + list(averaged.values())]
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors)
    plain = load_original_checkpoint(prefix, hps)
    polyak = load_original_checkpoint(prefix, hps, polyak=True)
    for name, var in original_variable_map(polyak).items():
        np.testing.assert_allclose(var.numpy(), raw[name].numpy() + 1.0, err_msg=name)
        np.testing.assert_allclose(original_variable_map(plain)[name].numpy(), raw[name].numpy(), err_msg=name)


def test_polyak_without_moving_averages_is_refused():
    with pytest.raises(ValueError, match="has no Polyak average 'model/.*/ExponentialMovingAverage'"):
        load_original_checkpoint(_prefix("additive_reverse"), _hps("additive_reverse"), polyak=True)


@pytest.mark.parametrize("change, match", [
    ({"depth": 3}, r"missing: model/0/2/"),
    ({"depth": 1}, r"not in this config: model/0/1/"),
    ({"width": 32}, r"wrong shape: model/0/0/f1/l_1/W: checkpoint \[3, 3, 7, 16\], config \[3, 3, 7, 32\]"),
    ({"flow_permutation": 2}, r"missing: model/0/0/invconv/W"),
    ({"learntop": True}, r"missing: model/prior/p/W"),
    ({"ycond": True}, r"missing: model/prior/y_emb/W"),
    ({"n_levels": 1, "depth": 2}, r"not in this config: .*model/1/0/"),
])
def test_a_checkpoint_that_does_not_fit_the_config_is_refused(change, match):
    hps = {**_hps("additive_reverse"), **change}
    with pytest.raises(ValueError, match=r"does not fit the config .*" + match):
        load_original_checkpoint(_prefix("additive_reverse"), GlowConfig.from_dict(hps, strict=False))


def test_learntop_checkpoint_into_a_config_without_it_is_refused():
    hps = {**_hps("additive_shuffle"), "learntop": False}
    with pytest.raises(ValueError, match=r"not in this config: model/prior/p/W"):
        load_original_checkpoint(_prefix("additive_shuffle"), GlowConfig.from_dict(hps, strict=False))


def test_missing_checkpoint_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no readable TF checkpoint at .*nothing_here"):
        load_original_checkpoint(str(tmp_path / "nothing_here"), GlowConfig(image_size=8, n_levels=2))


def test_checkpoint_round_trip_restores_weights_and_the_initialized_flags(tmp_path):
    config = GlowConfig(image_size=8, n_levels=2, depth=2, width=8, flow_coupling="affine", learntop=True)
    rng = np.random.RandomState(0)
    glow = Glow(config, seed=0)
    glow.initialize(rng.randint(0, 256, [8, 8, 8, 3]).astype(np.uint8))
    perturb(glow, 0.02, seed=1)
    path = tf.train.Checkpoint(model=glow).write(str(tmp_path / "ckpt"))

    restored = Glow(config, seed=1)  # other random weights and shuffles, all actnorms uninitialised
    assert not restored.is_initialized
    tf.train.Checkpoint(model=restored).read(path).assert_consumed()
    assert restored.is_initialized
    restored.initialize(rng.randint(0, 128, [8, 8, 8, 3]).astype(np.uint8))  # other data: must not re-init
    assert len(restored.variables) == len(glow.variables)
    for a, b in zip(glow.variables, restored.variables):
        np.testing.assert_array_equal(b.numpy(), a.numpy(), err_msg=a.name)
    x = rng.randint(0, 256, [2, 8, 8, 3]).astype(np.uint8)
    noise = np.full(x.shape, 0.5 / 256, np.float32)
    np.testing.assert_array_equal(restored.objective(x, noise=noise)["bits_x"],
                                  glow.objective(x, noise=noise)["bits_x"])


# --- checked checkpoints: damaged files are detected, skipped (never deleted) and named ----------
# configs/tiny.py's model (4 steps per epoch, as test_train.py's), without test passes or samples.
TINY = ["--config", "tiny", "--epochs_full_valid", "100", "--epochs_full_sample", "100"]


def _damage(prefix, how):
    """Damages checkpoint `prefix` as a full disk, an interrupted copy or a bad sector would."""
    import glob  # noqa: PLC0415
    data = glob.glob(prefix + ".data-*")[0]
    if how == "truncated_data":
        os.truncate(data, os.path.getsize(data) // 2)
    elif how == "truncated_index":
        os.truncate(prefix + ".index", os.path.getsize(prefix + ".index") // 2)
    elif how == "flipped_byte":
        with open(data, "r+b") as f:
            f.seek(os.path.getsize(data) // 2)
            byte = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([byte[0] ^ 0x01]))
    elif how == "missing_file":
        os.remove(data)


def _weights(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
            if n.startswith(("model/", "optimizer/", "progress/")) and not n.startswith("progress/train_time")}


def _file_bytes(folder):
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))
            if name.startswith("ckpt-")}


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    """A run with checkpoints at steps 4 and 8 (epochs 1 and 2), and ckpt-8's values."""
    import train  # noqa: PLC0415
    logdir = str(tmp_path_factory.mktemp("checked") / "run")
    train.main([*TINY, "--epochs", "3", "--logdir", logdir])
    prefix = os.path.join(logdir, "checkpoints", "ckpt-8")
    assert os.path.exists(prefix + ".sha256.json"), "no manifest was written"
    return logdir, _weights(prefix)


DAMAGES = ["truncated_data", "truncated_index", "flipped_byte", "missing_file"]


@pytest.mark.parametrize("manifest", [True, False], ids=["manifest", "no_manifest"])
@pytest.mark.parametrize("how", DAMAGES)
def test_each_damage_is_detected_with_or_without_manifest(two_checkpoints, tmp_path, how, manifest):
    from glow_tf.checkpoint import find_checkpoint, verify_checkpoint  # noqa: PLC0415
    run = tmp_path / "run"
    shutil.copytree(two_checkpoints[0], run)
    if not manifest:  # a run written before checkpoints were checked
        for f in (run / "checkpoints").glob("*.sha256.json"):
            f.unlink()
    prefix = str(run / "checkpoints" / "ckpt-8")
    assert verify_checkpoint(prefix) is None
    _damage(prefix, how)
    assert verify_checkpoint(prefix) is not None
    assert find_checkpoint(str(run)) == str(run / "checkpoints" / "ckpt-4")


def test_an_intact_run_given_by_a_relative_path_skips_nothing(two_checkpoints, tmp_path, monkeypatch, capfd):
    """`sample.py --logdir runs/digits`, as the README runs it: a relative folder finds each checkpoint
    once and reports none as damaged."""
    from glow_tf.checkpoint import find_checkpoint, list_checkpoints  # noqa: PLC0415
    shutil.copytree(two_checkpoints[0], tmp_path / "runs" / "digits")
    monkeypatch.chdir(tmp_path)
    capfd.readouterr()
    assert list_checkpoints(os.path.join("runs", "digits", "checkpoints")) == [
        os.path.join("runs", "digits", "checkpoints", "ckpt-8"), os.path.join("runs", "digits", "checkpoints", "ckpt-4")]
    assert find_checkpoint(os.path.join("runs", "digits")) == os.path.join("runs", "digits", "checkpoints", "ckpt-8")
    assert "damaged" not in capfd.readouterr().err


def test_a_garbled_or_missing_state_file_still_finds_the_checkpoints(two_checkpoints, tmp_path):
    from glow_tf.checkpoint import find_checkpoint  # noqa: PLC0415
    run = tmp_path / "run"
    shutil.copytree(two_checkpoints[0], run)
    (run / "checkpoints" / "checkpoint").write_bytes(b"\x00garbled{{")
    assert find_checkpoint(str(run)) == str(run / "checkpoints" / "ckpt-8")
    (run / "checkpoints" / "checkpoint").unlink()
    assert find_checkpoint(str(run)) == str(run / "checkpoints" / "ckpt-8")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncated_data", "flipped_byte"])  # a size check, a sha256 check; every kind
def test_resume_falls_back_to_the_previous_intact_checkpoint(two_checkpoints, tmp_path, capfd, how):
    """--resume with ckpt-8 damaged continues from ckpt-4 and reaches step 8 with exactly the
    uninterrupted run's ckpt-8 (every kind of damage leads to the same choice of ckpt-4: see above); the damaged files are kept, byte for byte, in checkpoints/damaged/."""
    import train  # noqa: PLC0415
    logdir, expected = two_checkpoints
    run = str(tmp_path / "run")
    shutil.copytree(logdir, run)
    _damage(os.path.join(run, "checkpoints", "ckpt-8"), how)
    damaged = _file_bytes(os.path.join(run, "checkpoints"))
    damaged = {k: v for k, v in damaged.items() if k.startswith("ckpt-8")}
    capfd.readouterr()
    train.main([*TINY, "--epochs", "3", "--logdir", run, "--resume"])
    err = capfd.readouterr().err
    assert "skipped damaged checkpoint(s) ckpt-8: " in err and "using ckpt-4" in err, err
    actual = _weights(os.path.join(run, "checkpoints", "ckpt-8"))
    assert actual.keys() == expected.keys()
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], atol=1e-6, err_msg=name)
    assert _file_bytes(os.path.join(run, "checkpoints", "damaged")) == damaged
    assert os.path.exists(os.path.join(run, "checkpoints", "ckpt-4.index"))
    with open(os.path.join(run, "train.txt")) as f:
        assert [json.loads(line)["epoch"] for line in f.readlines()[1:]] == [1, 2]


def test_resume_with_no_intact_checkpoint_names_every_file(two_checkpoints, tmp_path, capsys):
    import train  # noqa: PLC0415
    run = str(tmp_path / "run")
    shutil.copytree(two_checkpoints[0], run)
    _damage(os.path.join(run, "checkpoints", "ckpt-8"), "truncated_data")
    _damage(os.path.join(run, "checkpoints", "ckpt-4"), "missing_file")
    before = sorted(os.listdir(os.path.join(run, "checkpoints")))
    with pytest.raises(SystemExit) as stopped:
        train.main([*TINY, "--epochs", "3", "--logdir", run, "--resume"])
    message = str(stopped.value.code)
    assert message.startswith("train.py: ") and "\n" not in message, message
    assert "ckpt-8: ckpt-8.data-00000-of-00001 has " in message and "ckpt-4: ckpt-4.data-00000-of-00001 is missing" \
        in message, message
    assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == before  # nothing moved or deleted


@pytest.mark.slow
def test_sample_py_falls_back_or_names_the_damaged_files(two_checkpoints, tmp_path):
    """`python sample.py --logdir RUN`: with the newest checkpoint damaged it samples from the older one
    and says so in one line; with none intact it stops with one error line, without a traceback."""
    run = str(tmp_path / "run")
    shutil.copytree(two_checkpoints[0], run)
    _damage(os.path.join(run, "checkpoints", "ckpt-8"), "truncated_data")  # the case
    cmd = [sys.executable, os.path.join(REPO, "sample.py"), "--logdir", run, "--n", "4", "--quiet", "--out",
           str(tmp_path / "grid.png")]
    done = subprocess.run(cmd, env=ENV, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    skipped = [line for line in done.stderr.splitlines() if "skipped damaged" in line]
    assert len(skipped) == 1 and "ckpt-8: ckpt-8.data-00000-of-00001 has" in skipped[0] and "using ckpt-4" in \
        skipped[0], done.stderr
    assert os.path.exists(tmp_path / "grid.png")
    _damage(os.path.join(run, "checkpoints", "ckpt-4"), "flipped_byte")
    done = subprocess.run(cmd, env=ENV, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if "error:" in line]  # TF's start-up noise aside
    assert len(lines) == 1 and "no intact checkpoint" in lines[0] and "ckpt-4.data-00000-of-00001 does not match" \
        in lines[0] and "ckpt-8" in lines[0], done.stderr


def test_manifests_follow_the_managers_rotation(tmp_path):
    """Each save writes ckpt-N.sha256.json; when max_to_keep drops a checkpoint its manifest goes too."""
    from glow_tf.training import Checkpoints  # noqa: PLC0415
    checkpoints = Checkpoints(str(tmp_path), tf.train.Checkpoint(v=tf.Variable(1.0)),
                              GlowConfig(image_size=8, n_levels=1, depth=1, width=4), keep=2)
    for step in (1, 2, 3):
        checkpoints.save_latest(step)
    names = sorted(os.listdir(tmp_path / "checkpoints"))
    assert [n for n in names if n.endswith(".sha256.json")] == ["ckpt-2.sha256.json", "ckpt-3.sha256.json"], names
    with open(tmp_path / "checkpoints" / "ckpt-3.sha256.json") as f:
        files = json.load(f)["files"]
    assert sorted(files) == ["ckpt-3.data-00000-of-00001", "ckpt-3.index"]
    assert files["ckpt-3.index"]["bytes"] == os.path.getsize(tmp_path / "checkpoints" / "ckpt-3.index")


def test_load_run_with_polyak_loads_the_averages_the_checkpoint_holds(digits_run):
    """`load_run(..., polyak=True)` (`glow-tf ... --polyak`) gives the model the Polyak averages that
    train.py's checkpoint holds, entry by entry as the optimiser saved them, not the raw weights."""
    from glow_tf import load_run  # noqa: PLC0415

    averaged, prefix = load_run(str(digits_run), polyak=True)
    raw, _ = load_run(str(digits_run))
    reader = tf.train.load_checkpoint(prefix)
    differ = 0
    for i, (a, r) in enumerate(zip(averaged.trainable_variables, raw.trainable_variables)):
        np.testing.assert_array_equal(a.numpy(), reader.get_tensor(f"optimizer/ema/{i}/.ATTRIBUTES/VARIABLE_VALUE"))
        differ += not np.array_equal(a.numpy(), r.numpy())
    assert differ > len(raw.trainable_variables) // 2  # the averages are not the weights
