"""glow_tf/training: the compiled train step's non-finite guard, stream seeds, the JSON-lines logger, the
run's configuration (TrainConfig: its checks and the original's cadence) and the loop's hooks."""
import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from glow_tf import Glow, GlowConfig
from glow_tf.distributed import Distributed
from glow_tf.optim import Optimizer
from glow_tf.seeds import noise_seed
from glow_tf.cli.train import load_data, parse_config
from glow_tf.errors import ConfigError
from glow_tf.training import (Hook, ResultLogger, build_run, make_sampler, make_test_step, make_train_step, open_run,
                              train)


def tiny_model():
    glow = Glow(GlowConfig(image_size=8, n_levels=2, depth=1, width=8, flow_coupling="affine"), seed=0)
    x = np.random.RandomState(0).randint(0, 256, size=(8, 8, 8, 3)).astype(np.uint8)
    glow.initialize(x, seed=[0, 0])
    return glow, x


def snapshot(variables):
    return [v.numpy().copy() for v in variables]


def test_a_step_updates_and_a_nonfinite_step_leaves_every_variable_bit_identical():
    glow, x = tiny_model()
    opt = Optimizer(glow.trainable_variables, beta2=0.99)
    step = make_train_step(glow, opt, Distributed(use_horovod=False), seed=0)
    before = snapshot(glow.variables + opt.variables)
    stats, grad_norm, finite = step(x, None, tf.constant(1e-3), tf.constant(0, tf.int64))
    assert bool(finite) and np.isfinite(grad_norm.numpy()) and stats.shape == (4,)
    after = snapshot(glow.variables + opt.variables)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))

    actnorm = glow.levels[0].steps[0].actnorm
    actnorm.logs_var.assign(tf.fill(actnorm.logs_var.shape, np.inf))  # exp(inf): the loss is not finite
    poisoned = snapshot(glow.variables + opt.variables)
    _, _, finite = step(x, None, tf.constant(1e-3), tf.constant(1, tf.int64))
    assert not bool(finite)
    for a, b in zip(poisoned, snapshot(glow.variables + opt.variables)):
        np.testing.assert_array_equal(a, b)


def test_stream_seeds_are_distinct_per_stream_counter_and_worker_and_repeatable():
    seeds = {tuple(noise_seed(w, s, c).numpy()) for w in range(3) for s in range(4) for c in range(5)}
    assert len(seeds) == 3 * 4 * 5
    np.testing.assert_array_equal(noise_seed(2, 1, 7), noise_seed(2, 1, 7))


def test_result_logger_writes_the_original_format_and_truncates_on_resume(tmp_path):
    path = str(tmp_path / "train.txt")
    log = ResultLogger(path, {"lr": 0.001})
    for epoch in (1, 2, 3):
        log.log(epoch=epoch, loss=np.float32(1.0 / epoch), n_processed=epoch * 64)
    lines = [json.loads(line) for line in open(path)]
    assert lines[0] == {"lr": 0.001}
    assert lines[2] == {"epoch": 2, "loss": "0.5000", "n_processed": 128}
    # a run resumed from the checkpoint of epoch 2 drops epoch 3 and keeps the header once
    log = ResultLogger(path, {"lr": 0.001}, resume_epoch=2)
    log.log(epoch=3, loss=0.25, n_processed=192)
    lines = [json.loads(line) for line in open(path)]
    assert [r.get("epoch") for r in lines] == [None, 1, 2, 3] and lines[3]["loss"] == "0.2500"


def test_jit_compiled_step_computes_the_same_numbers():
    """--jit 1 (XLA) computes the loss and gradients of the plain tf.function, for the default plain
    1x1 conv too, up to float32 re-association (XLA fuses and reorders sums). (Weights after a few
    Adamax steps are not compared: m1/max|g| turns round-off in near-zero gradients into O(lr) steps.)"""
    glow, x = tiny_model()
    for v in glow.trainable_variables:  # non-trivial coupling networks and priors
        v.assign(v + 0.02 * tf.random.stateless_normal(v.shape, [1, 2]))

    # explicit noise: stateless random ops may pick another algorithm under XLA
    noise = np.random.RandomState(1).uniform(0, 1 / 256, x.shape).astype(np.float32)

    def loss_and_grads():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(glow.objective(x, noise=noise)["loss"])
        return loss, tape.gradient(loss, glow.trainable_variables)

    (loss0, grads0), (loss1, grads1) = (tf.function(loss_and_grads, jit_compile=jit)() for jit in (False, True))
    np.testing.assert_allclose(loss1, loss0, rtol=2e-6)
    for v, g0, g1 in zip(glow.trainable_variables, grads0, grads1):
        np.testing.assert_allclose(g1, g0, rtol=1e-3, atol=1e-5 * float(tf.reduce_max(tf.abs(g0))), err_msg=v.name)

    opt = Optimizer(glow.trainable_variables, beta2=0.99)
    step = make_train_step(glow, opt, Distributed(use_horovod=False), seed=0, jit=True)
    _, _, finite = step(x, None, tf.constant(1e-3), tf.constant(0, tf.int64))
    assert bool(finite)


def test_train_config_checks_name_the_bad_value(tmp_path):
    """TrainConfig is where train.py's flags are checked: each bad value is a ConfigError naming it."""
    config = parse_config(["--logdir", str(tmp_path)])
    for changes, message in [({"optimizer": "sgd"}, "--optimizer 'sgd': expected adam or adamax"),
                             ({"n_batch_train": 0}, "--n_batch_train 0: expected a positive integer"),
                             ({"epochs_warmup": -1}, "--epochs_warmup -1: expected >= 0"),
                             ({"image_size": 24}, "--image_size 24: expected a power of two"),
                             ({"inference": True, "resume": True}, "--inference needs --restore_path"),
                             ({"elastic": 2}, "--elastic 2: expected 0 or 1"),
                             ({"elastic": 1, "init_allreduce": 1}, "--elastic 1 trains; it does not combine with --init_allreduce 1")]:
        with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(")):
            dataclasses.replace(config, **changes)
    with pytest.raises(ConfigError, match="image_size=8 is not divisible by 2\\*\\*n_levels=16"):
        dataclasses.replace(config, n_levels=4).model_config(image_size=8, n_y=10)


def test_cadence_is_the_originals():
    """Reports at epochs 1-9, every 10th up to 50, then every --epochs_full_valid; a test pass every
    --epochs_full_valid; samples at 1, 10 and every --epochs_full_sample among the reported epochs
    (the original's train.py, with its defaults 50 and 50, and with 20 and 30)."""
    def epochs(config, what):
        return [e for e in range(1, 181) if getattr(config.cadence(e), what)]

    config = parse_config([])
    assert epochs(config, "report") == [*range(1, 10), 10, 20, 30, 40, 50, 100, 150]
    assert epochs(config, "test") == [50, 100, 150]
    assert epochs(config, "sample") == [1, 10, 50, 100, 150]
    config = parse_config(["--epochs_full_valid", "20", "--epochs_full_sample", "30"])
    assert epochs(config, "report") == [*range(1, 10), 10, 20, 30, 40, 60, 80, 100, 120, 140, 160, 180]
    assert epochs(config, "test") == [20, 40, 60, 80, 100, 120, 140, 160, 180]
    assert epochs(config, "sample") == [1, 10, 30, 60, 120, 180]


class Recorder(Hook):
    def __init__(self):
        self.calls = []

    def on_train_start(self, run, baseline):
        self.calls.append(("start", baseline is not None))

    def on_epoch_start(self, run, epoch):
        self.calls.append(("epoch_start", epoch))

    def on_step_end(self, run, epoch, stats, seconds):
        self.calls.append(("step", int(run.state.step)))

    def on_epoch_end(self, run, end):
        self.calls.append(("epoch_end", end.epoch, end.test is not None, end.progress.steps, int(run.state.epoch)))

    def on_train_end(self, run):
        self.calls.append(("end",))

    def close(self):
        self.calls.append(("close",))


def test_the_loop_calls_its_hooks_in_order(tmp_path):
    """glow_tf.training.train as a library: the tiny run's 3 epochs of 4 steps, a test pass at epoch 2
    (--epochs_full_valid 2), each hook point in order; nothing written (no output hooks)."""
    setup = open_run(parse_config(["--config", "tiny", "--epochs", "4", "--logdir", str(tmp_path / "run")]),
                     load_data)
    run = build_run(setup)
    recorder = Recorder()
    train(run, [recorder])
    expected = [("start", True)]
    for epoch in (1, 2, 3):
        expected += [("epoch_start", epoch), *[("step", 4 * (epoch - 1) + k) for k in (1, 2, 3, 4)],
                     ("epoch_end", epoch, epoch == 2, 4, epoch)]
    assert recorder.calls == [*expected, ("end",), ("close",)]
    assert sorted(os.listdir(tmp_path / "run")) == ["config.json"]  # written by build_run, not the loop


def test_all_finite_from_the_global_norm_is_the_element_by_element_answer():
    """steps.all_finite: True only when every element is finite, also when the squares overflow the
    norm to infinity while every element is finite (1e30), where the norm alone would say no."""
    from glow_tf.training.steps import all_finite

    def check(tensors):
        tensors = [tf.constant(t, tf.float32) for t in tensors]
        got = bool(tf.function(lambda ts: all_finite(ts, tf.linalg.global_norm(ts)))(tensors))
        assert got == all(bool(np.all(np.isfinite(t.numpy()))) for t in tensors)
        return got

    assert check([[1.0, -2.0], [[3.0]]])
    assert not check([[1.0, np.nan], [[3.0]]])
    assert not check([[1.0, 2.0], [[-np.inf]]])
    assert check([[1e30, -1e30], [[1.0]]])  # finite elements whose squares overflow
    assert not check([[1e30, np.inf], [[1.0]]])


@pytest.mark.parametrize("backprop", ["store", "checkpoint", "reversible"])
def test_no_glow_tf_function_goes_through_autograph(monkeypatch, backprop):
    """Tracing train.py's steps and sampler, or a user's own tf.function (autograph on) around the
    objective and its gradient, converts none of glow_tf's functions: the model's control flow is over
    its configuration, and converting a flow's layers made a step 40% more costly to trace."""
    from tensorflow.python.autograph.impl import api

    converted = []
    convert = api._convert_actual

    def recording(entity, program_ctx):
        if getattr(entity, "__module__", "").startswith("glow_tf"):
            converted.append(f"{entity.__module__}.{entity.__qualname__}")
        return convert(entity, program_ctx)

    monkeypatch.setattr(api, "_convert_actual", recording)
    glow, x = tiny_model()
    glow.backprop = backprop
    opt = Optimizer(glow.trainable_variables, beta2=0.99)
    counter = tf.constant(0, tf.int64)
    make_train_step(glow, opt, Distributed(use_horovod=False), seed=0)(x, None, tf.constant(1e-3), counter)
    make_test_step(glow, Distributed(use_horovod=False), seed=0)(x, None, counter)
    make_sampler(glow, seed=0)(tf.zeros([2], tf.int32), tf.constant(0.7), counter)

    @tf.function  # autograph on, as a user's training loop has it
    def users_step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(glow.objective(x)["loss"])
        return tape.gradient(loss, glow.trainable_variables)

    users_step(x)
    assert converted == [], converted
