"""Reversible backpropagation (glow_tf/reversible.py, Glow.backprop): the gradients equal the stored-
activation step's, on the original's training fixtures, on every kind of layer, on a trained model,
with and without XLA; the reconstruction-error measure and the guard; the flags of train.py.

The truth is the "store" path: plain autodiff through the same encode, which tests/test_training_reference.py
checks against the original's own gradients and weights. Gradients are compared with that test's
tolerance: |ours - store| <= RTOL |store| + ATOL max|store| + ATOL_FLOOR, per variable.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from allocator_peaks import measure_in_bfc_process
from glow_tf import Glow, GlowConfig
from glow_tf import reversible
from glow_tf.checkpoint import original_variable_map
from glow_tf.distributed import Distributed
from glow_tf.optim import Optimizer, beta2_from, warmup_lr
from glow_tf.training import make_train_step

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "original_training")
RTOL, ATOL, ATOL_FLOOR = 1e-5, 1e-5, 1e-7  # the training reference's tolerances


def _fixture_folders():
    roots = [FIXTURES, os.environ.get("GLOW_TRAINING_REFERENCE_DIR")]
    return [os.path.join(r, d) for r in roots if r and os.path.isdir(r) for d in sorted(os.listdir(r))
            if os.path.exists(os.path.join(r, d, "hps.json"))]


def assert_close(ours, truth, what):
    ours, truth = np.asarray(ours, np.float64), np.asarray(truth, np.float64)
    allowed = RTOL * np.abs(truth) + ATOL * np.max(np.abs(truth), initial=0.0) + ATOL_FLOOR
    err = np.abs(ours - truth)
    assert ours.shape == truth.shape and (err <= allowed).all(), (
        f"{what}: {int((err > allowed).sum())} of {truth.size} elements differ; worst |diff| {err.max():.3g}, "
        f"max |store| {np.abs(truth).max():.3g}")


def gradients(glow, mode, x, y, noise, fn="function"):
    """(loss, [gradient of every trainable variable]) of the mean loss, computed in backprop `mode`."""
    glow.backprop = mode

    def run(x, y, noise):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(glow.objective(x, y, noise=noise)["loss"])
        return loss, tape.gradient(loss, glow.trainable_variables)

    if fn != "eager":
        run = tf.function(run, jit_compile=fn == "jit")
    loss, grads = run(x, y, noise)
    assert all(g is not None for g in grads), "a trainable variable got no gradient"
    return float(loss), [tf.convert_to_tensor(g).numpy() for g in grads]


def assert_same_gradients(glow, x, y, noise, fn="function"):
    loss0, store = gradients(glow, "store", x, y, noise, fn)
    loss1, rev = gradients(glow, "reversible", x, y, noise, fn)
    assert loss1 == pytest.approx(loss0, rel=1e-6)
    assert len(rev) == len(store) == len(glow.trainable_variables)
    for var, a, b in zip(glow.trainable_variables, rev, store):
        assert_close(a, b, f"gradient of {var.name} {tuple(var.shape)}")


# --- the original's training fixtures ----------------------------------------------------------
@pytest.mark.parametrize("folder", _fixture_folders(), ids=os.path.basename)
def test_training_reference_fixtures_replayed_reversibly(folder):
    """Each fixture replayed as train.py runs it (the original's starting weights, init batch, batches,
    noise and warm-up learning rates) with --backprop reversible: the init and every step's statistics
    equal the original's, and at every step the gradients equal the store path's on the same weights."""
    with open(os.path.join(folder, "hps.json")) as f:
        hps = json.load(f)
    load = lambda name: dict(np.load(os.path.join(folder, name)))  # noqa: E731
    batches, before, after_init = load("batches.npz"), load("before_init.npz"), load("after_init.npz")
    config = GlowConfig.from_dict(hps, strict=False)
    glow = Glow(config)
    glow.backprop = "reversible"  # the init must not care: it always runs the plain pass
    names = original_variable_map(glow)
    for name, var in names.items():
        var.assign(before[name])
    glow.initialize(batches["init_x"], batches["init_y"] if config.ycond else None, noise=batches["init_noise"])
    for name, var in names.items():
        assert_close(var.numpy(), after_init[name], f"after the init: {name}")
    optimizer = Optimizer(glow.trainable_variables, kind=hps["optimizer"], beta1=hps["beta1"],
                          beta2=beta2_from(hps["train_its"], hps["polyak_epochs"]), weight_decay=hps["weight_decay"])
    step = make_train_step(glow, optimizer, Distributed(use_horovod=False), seed=0)
    for k in range(1, hps["steps"] + 1):
        x, y, noise = batches[f"x_{k}"], batches[f"y_{k}"], batches[f"noise_{k}"]
        assert_same_gradients(glow, x, y if config.ycond else None, noise, "eager")
        glow.backprop = "reversible"
        lr = warmup_lr(hps["lr"], (k - 1) * hps["n_batch_train"], hps["n_train"] * hps["epochs_warmup"])
        stats, _, finite = step(x, y, tf.constant(lr, tf.float32), tf.constant(k - 1, tf.int64), noise=noise)
        assert bool(finite)
        assert_close(stats.numpy(), load(f"step_{k}.npz")["stats"], f"step {k}: [loss, bits_x, bits_y, pred_loss]")


# --- every kind of layer, away from init -------------------------------------------------------
LAYERS = {
    "invconv-affine-learntop": dict(flow_permutation="invconv", flow_coupling="affine", learntop=True),
    "lu-additive-ycond-classifier": dict(flow_permutation="invconv", lu=True, flow_coupling="additive", ycond=True,
                                         n_y=3, weight_y=0.5, learntop=True),
    "shuffle-affine": dict(flow_permutation="shuffle", flow_coupling="affine"),
    "reverse-additive": dict(flow_permutation="reverse", flow_coupling="additive"),
}


def _perturbed_model(kw, seed=1, depth=3):
    """A 2-level model after the init, every weight then moved by noise (the zero-initialised coupling
    outputs, split priors, top prior and classifier included), so that no layer is the identity."""
    config = GlowConfig(image_size=8, n_levels=2, depth=depth, width=8, **kw)
    glow = Glow(config, seed=seed)
    rng = np.random.RandomState(seed)
    x = rng.randint(0, 256, (8, 8, 8, 3)).astype(np.uint8)
    y = np.array([0, 1, 2, 1, 2, 0, 0, 1], np.int32) if config.ycond else None
    noise = rng.uniform(0, 1 / 256, x.shape).astype(np.float32)
    glow.initialize(x, y, noise=noise)
    for v in glow.trainable_variables:
        v.assign_add(rng.normal(0, 0.05, v.shape).astype(np.float32))
    return glow, x, y, noise


@pytest.mark.parametrize("kind,fn", [("invconv-affine-learntop", "function"), ("invconv-affine-learntop", "jit"),
                                     ("lu-additive-ycond-classifier", "eager"), ("lu-additive-ycond-classifier", "jit"),
                                     ("shuffle-affine", "function"), ("reverse-additive", "function")])
def test_gradients_equal_store_for_every_layer_kind(kind, fn):
    glow, x, y, noise = _perturbed_model(LAYERS[kind])
    assert_same_gradients(glow, x, y, noise, fn)


def test_gradient_of_the_input_equals_store():
    """d loss / d x (what a user differentiating log p(x) gets) flows through the reversible chain."""
    glow, x, y, noise = _perturbed_model(LAYERS["invconv-affine-learntop"])
    z = tf.constant(glow.dequantize(x, noise).numpy())
    out = {}
    for mode in ("store", "reversible"):
        glow.backprop = mode
        with tf.GradientTape() as tape:
            tape.watch(z)
            eps, log_det, _ = glow.encode_dequantized(z)
            target = tf.reduce_sum(log_det) + tf.add_n([tf.reduce_sum(tf.square(e)) for e in eps])
        out[mode] = tape.gradient(target, z).numpy()
    assert_close(out["reversible"], out["store"], "gradient of the input")


def test_a_wrong_inverse_is_caught():
    """The tests' own check: a step whose decode is off by a little gives gradients the comparison
    rejects and a reconstruction error the measure reports."""
    glow, x, y, noise = _perturbed_model(LAYERS["shuffle-affine"])
    actnorm = glow.levels[1].steps[1].actnorm
    honest = actnorm.decode
    actnorm.decode = lambda z: (honest(z)[0] * 1.001, honest(z)[1])
    try:
        with pytest.raises(AssertionError, match="differ"):
            assert_same_gradients(glow, x, y, noise, "eager")
        errors = reversible.reconstruction_errors(glow, glow.dequantize(x, noise))
    finally:
        del actnorm.decode
    assert errors[1][1] > 1e-4 and errors[0][0] < 1e-5


# --- a trained model --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained():
    """The digits (8x8, 4 bit) model of the quick start's shape, shrunk (2 levels x 4 steps, width 32),
    trained 300 steps at the quick start's learning rate: its weights are far from their init."""
    from data_loaders.digits import load_digits_4bit

    x_train, y_train, x_test, y_test = load_digits_4bit(8)
    config = GlowConfig(image_size=8, n_levels=2, depth=4, width=32, flow_coupling="affine", learntop=True,
                        ycond=True, n_y=10, n_bits_x=4)
    glow = Glow(config, seed=0)
    glow.initialize(x_train[:256], y_train[:256], seed=[0, 0])
    at_init = reversible.reconstruction_errors(glow, glow.dequantize(x_test[:64], seed=[1, 0]))
    start = [v.numpy() for v in glow.trainable_variables]
    optimizer = Optimizer(glow.trainable_variables, beta2=beta2_from(300))
    step = make_train_step(glow, optimizer, Distributed(use_horovod=False), seed=0)
    rng = np.random.RandomState(0)
    losses = []
    for k in range(300):
        i = rng.randint(0, len(x_train), 32)
        stats, _, _ = step(x_train[i], y_train[i], tf.constant(min(1.0, (k + 1) / 50) * 0.004),
                           tf.constant(k, tf.int64))
        losses.append(float(stats[0]))
    moved = max(float(np.abs(v.numpy() - s).max()) for v, s in zip(glow.trainable_variables, start))
    return glow, (x_test[:32], y_test[:32]), at_init, losses, moved


def test_trained_model_gradients_equal_store(trained):
    glow, (x, y), _, losses, moved = trained
    assert np.mean(losses[-20:]) < np.mean(losses[:20]) - 0.5 and moved > 0.1  # really trained
    noise = np.random.RandomState(2).uniform(0, 1 / 16, x.shape).astype(np.float32)
    assert_same_gradients(glow, x, y, noise)
    assert_same_gradients(glow, x, y, noise, "jit")


def test_reconstruction_error_at_init_and_after_training(trained):
    """Every step's rebuilt input is within float32 round-off of the stored one (relative < 1e-5 for
    this shallow model), and the error is largest at a level's first step (it accumulates)."""
    glow, (x, y), at_init, _, _ = trained
    after = reversible.reconstruction_errors(glow, glow.dequantize(x, seed=[3, 0]))
    for errors in (at_init, after):
        assert [len(e) for e in errors] == [4, 4]
        assert all(0 <= e < 1e-5 for level in errors for e in level), errors
    assert all(level[-1] <= level[0] + 1e-7 for level in after)


def test_guard_records_and_warns(capfd):
    """set_reversible_check(N): every N-th backward pass records each level's relative rebuild error
    and warns on stderr above the threshold; below it, silent."""
    glow, x, y, noise = _perturbed_model(LAYERS["invconv-affine-learntop"])
    glow.set_reversible_check(2, threshold=1e-12)  # any round-off is above it
    for _ in range(3):
        gradients(glow, "reversible", x, y, noise, "eager")
    errors = glow.reversible_monitor.errors.numpy()
    assert int(glow.reversible_monitor.count.numpy()) == 3 and int(glow.reversible_monitor.checked_at.numpy()) == 2
    assert ((errors >= 0) & (errors < 1e-5)).all(), errors
    err = capfd.readouterr().err
    assert err.count("rebuilt input differs") == 2 * len(glow.levels) and "level 0's" in err  # passes 0 and 2
    glow.set_reversible_check(1)  # the default threshold, 1e-4
    gradients(glow, "reversible", x, y, noise, "function")
    assert "rebuilt input differs" not in capfd.readouterr().err


def test_guard_under_xla_records():
    glow, x, y, noise = _perturbed_model(LAYERS["lu-additive-ycond-classifier"])
    glow.set_reversible_check(1)
    assert_same_gradients(glow, x, y, noise, "jit")
    errors = glow.reversible_monitor.errors.numpy()
    assert ((errors >= 0) & (errors < 1e-5)).all(), errors


# --- the modes and the flags ------------------------------------------------------------------
def test_backprop_mode_from_the_flags():
    assert reversible.backprop_mode(None, 1) == "checkpoint" and reversible.backprop_mode(None, 0) == "store"
    for mode in reversible.BACKPROP_MODES:
        assert reversible.backprop_mode(mode, 1) == mode
    assert reversible.backprop_mode("reversible", 0) == "reversible"
    with pytest.raises(ValueError, match="contradicts --gradient_checkpointing 0"):
        reversible.backprop_mode("checkpoint", 0)
    with pytest.raises(ValueError, match="--gradient_checkpointing 2"):
        reversible.backprop_mode(None, 2)
    glow = Glow(GlowConfig(image_size=8, n_levels=2, depth=1, width=4))
    glow.gradient_checkpointing = True
    assert glow.backprop == "checkpoint" and glow.gradient_checkpointing
    glow.gradient_checkpointing = False
    assert glow.backprop == "store"
    with pytest.raises(ValueError, match="backprop 'reverse'"):
        glow.backprop = "reverse"
    with pytest.raises(ValueError, match="--reversible_check_every 5 checks reversible"):
        glow.configure_backprop("store", 1, 5)


TINY = ["--problem", "digits", "--dal", "0", "--anchor_size", "8", "--n_levels", "2", "--depth", "2", "--width", "16",
        "--n_train", "256", "--epochs_warmup", "1", "--epochs_full_valid", "1", "--epochs_full_sample", "100",
        "--flow_coupling", "1", "--learntop", "--seed", "3", "--n_batch_init", "128", "--progress", "off"]


def _train(args, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, os.path.join(REPO, "train.py"), *TINY, "--logdir", str(tmp_path), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=900)


def test_train_py_reversible_run(tmp_path):
    """train.py --backprop reversible --reversible_check_every 1 through its real entry point: the
    run completes, its test bits/dim fall after training, nothing is warned (round-off only)."""
    proc = _train(["--epochs", "2", "--backprop", "reversible", "--reversible_check_every", "1"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "rebuilt input differs" not in proc.stderr
    with open(tmp_path / "test.txt") as f:
        tests = [record for record in map(json.loads, f) if "bits_x" in record]  # the first line: the flags
    assert len(tests) == 2 and float(tests[-1]["bits_x"]) < float(tests[0]["bits_x"])  # after the init and epoch 1


def test_train_py_contradicting_flags(tmp_path):
    proc = _train(["--epochs", "1", "--backprop", "checkpoint", "--gradient_checkpointing", "0"], tmp_path)
    assert proc.returncode != 0
    assert "--backprop checkpoint contradicts --gradient_checkpointing 0" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.returncode == 2, proc.stderr  # a usage error, before any work
    assert proc.stderr.strip().splitlines()[-1].startswith("train.py: error: --backprop checkpoint"), proc.stderr


# One process per measurement (allocator_peaks).
_ACTIVATION_PEAK = r"""
import json, sys
import numpy as np, tensorflow as tf
from common import transient_bytes
from glow_tf import Glow, GlowConfig
mode, depths = sys.argv[1], [int(d) for d in sys.argv[2].split(",")]
out = {}
for depth in depths:
    glow = Glow(GlowConfig(image_size=16, n_levels=2, depth=depth, width=64, flow_coupling="affine",
                           flow_permutation="invconv", learntop=True), seed=0)
    x = np.random.RandomState(0).randint(0, 256, [16, 16, 16, 3]).astype("uint8")
    glow.initialize(x, seed=[0, 0])
    glow.backprop = mode
    noise = tf.constant(np.random.RandomState(1).uniform(0, 1.0 / 256, x.shape), tf.float32)
    @tf.function
    def input_gradient(noise):  # activations only: no parameter gradient is asked for
        with tf.GradientTape() as tape:
            tape.watch(noise)
            loss = tf.reduce_mean(glow.objective(x, noise=noise)["loss"])
        return tf.reduce_sum(tape.gradient(loss, noise))
    out[depth] = transient_bytes(lambda: input_gradient(noise).numpy())
print(json.dumps(out))
"""


def _activation_peaks(mode, depths):
    """{depth: bytes}: the allocator's peak of a forward + input-gradient pass beyond what was held
    before it, least of 3 calls, as bench/memory.py measures it (a 16 px, 2-level, width-64 model at
    batch 16: per flow step its activations outweigh its filters)."""
    peaks = measure_in_bfc_process(_ACTIVATION_PEAK, mode, ",".join(map(str, depths)))
    return {int(k): v for k, v in peaks.items()}


@pytest.mark.slow
def test_reversible_activation_memory_is_flat_in_depth():
    """From K=2 to K=8, reversible's activation peak stays within 15% while store's grows with the
    steps; it once grew by one filter-sized copy per layer, made ahead by the executor
    (networks.folded_filter)."""
    rev = _activation_peaks("reversible", [2, 8])
    store = _activation_peaks("store", [2, 8])
    assert store[8] > 2.0 * store[2]  # the measure sees activations
    assert rev[8] < 1.15 * rev[2], rev
    assert rev[8] < 0.3 * store[8]
