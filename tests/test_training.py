"""glow_tf/training.py: the compiled train step's non-finite guard, stream seeds and the JSON-lines logger."""
import json

import numpy as np
import tensorflow as tf

from glow_tf import Glow, GlowConfig
from glow_tf.distributed import Distributed
from glow_tf.optim import Optimizer
from glow_tf.training import ResultLogger, make_train_step, stream_seed


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
    seeds = {tuple(stream_seed(w, s, c).numpy()) for w in range(3) for s in range(4) for c in range(5)}
    assert len(seeds) == 3 * 4 * 5
    np.testing.assert_array_equal(stream_seed(2, 1, 7), stream_seed(2, 1, 7))


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
