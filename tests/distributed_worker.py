"""The per-rank program of tests/test_distributed.py, started by `horovodrun -np 2 ... python THIS`.

    distributed_worker.py train OUTDIR [--rank_args R "FLAGS"]... -- TRAIN.PY FLAGS
        runs train.main in OUTDIR/cwd{rank} with the flags (plus, on rank R, FLAGS) and saves to
        OUTDIR/rank{rank}.pkl what the test compares: the variables right after build_model (the
        data-dependent init or restore and its broadcast), the final variables, and every training
        batch this rank consumed, in order.
    distributed_worker.py step OUTDIR
        one training step on this rank's share of a fixed batch with fixed noise (one_step), then
        one with a NaN in rank 1's noise only, saved to OUTDIR/step{rank}.pkl; the test runs
        one_step in one process on the whole batch.
"""
import os
import pickle
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import data_loaders  # noqa: E402
import train  # noqa: E402
from glow_tf import Glow, GlowConfig  # noqa: E402
from glow_tf.distributed import Distributed  # noqa: E402
from glow_tf.optim import Optimizer  # noqa: E402
from glow_tf.training import make_train_step  # noqa: E402

# one_step's model and batch: a tiny affine Glow on 8x8 images, STEP_BATCH images per worker.
STEP_CONFIG = GlowConfig(image_size=8, n_levels=2, depth=2, width=16, flow_coupling="affine", learntop=True,
                         n_y=10)
STEP_BATCH = 6
STEP_LR = 0.01


def step_inputs(n_workers):
    """(x uint8, y, init noise, step noise) for n_workers * STEP_BATCH images, from fixed generators."""
    rng = np.random.RandomState(0)
    n = n_workers * STEP_BATCH
    x = rng.randint(0, 256, size=(n, 8, 8, 3)).astype(np.uint8)
    y = rng.randint(0, 10, size=n).astype(np.int32)
    init_noise = rng.uniform(0, 1 / 256, size=x.shape).astype(np.float32)
    step_noise = rng.uniform(0, 1 / 256, size=x.shape).astype(np.float32)
    return x, y, init_noise, step_noise


def one_step(dist, x, y, init_noise, step_noise, nan_on_rank=None):
    """The same Glow on every worker (fixed seed), the actnorm init with statistics over all workers'
    batches, then one step of training.make_train_step with explicit noise. Returns numpy values.

    With `nan_on_rank`, a second step follows in which only that worker's noise holds a NaN; it
    records that worker-wide decision (`second_finite`) and whether the weights stayed unchanged.
    """
    glow = Glow(STEP_CONFIG, seed=5)
    with dist.allreduced_actnorm_init():
        glow.initialize(x, noise=init_noise)
    after_init = [v.numpy() for v in glow.variables]
    optimizer = Optimizer(glow.trainable_variables, beta2=0.99)
    step = make_train_step(glow, optimizer, dist, seed=0)
    stats, grad_norm, finite = step(tf.constant(x), tf.constant(y), tf.constant(STEP_LR), tf.constant(0, tf.int64),
                                    noise=tf.constant(step_noise))
    result = {"after_init": after_init, "stats": stats.numpy(), "grad_norm": float(grad_norm),
              "finite": bool(finite), "m1": [m.numpy() for m in optimizer.m1],
              "params": [v.numpy() for v in glow.trainable_variables]}
    if nan_on_rank is not None:
        noise = step_noise.copy()
        if dist.rank == nan_on_rank:
            noise[0, 0, 0, 0] = np.nan
        _, _, finite = step(tf.constant(x), tf.constant(y), tf.constant(STEP_LR), tf.constant(1, tf.int64),
                            noise=tf.constant(noise))
        result["second_finite"] = bool(finite)
        result["second_unchanged"] = all(np.array_equal(v.numpy(), p)
                                         for v, p in zip(glow.trainable_variables, result["params"]))
    return result


class _Recording:
    """Wraps a train dataset; records each batch when train.main takes it (not when prefetched)."""

    def __init__(self, dataset, record):
        self.dataset, self.record = dataset, record

    def __iter__(self):
        for x, y in self.dataset:
            self.record.append(x.numpy())
            yield x, y


def run_train(outdir, train_args, rank):
    consumed, after_build = [], []
    get_data, build_model = data_loaders.get_data, train.build_model

    def recording_get_data(*args, **kwargs):
        data = get_data(*args, **kwargs)
        train_stream = data.train
        data.train = lambda start_batch=0: _Recording(train_stream(start_batch), consumed)
        return data

    def recording_build_model(*args, **kwargs):
        built = build_model(*args, **kwargs)
        after_build.extend(v.numpy() for v in built[0].variables)
        return built

    data_loaders.get_data, train.build_model = recording_get_data, recording_build_model
    cwd = os.path.join(outdir, f"cwd{rank}")  # this rank's working directory: it must stay empty
    os.makedirs(cwd, exist_ok=True)
    os.chdir(cwd)
    glow = train.main(train_args)
    with open(os.path.join(outdir, f"rank{rank}.pkl"), "wb") as f:
        pickle.dump({"after_build": after_build, "final": [v.numpy() for v in glow.variables],
                     "consumed": consumed}, f)


def main(argv):
    if "--" in argv:
        i = argv.index("--")
        argv, train_args = argv[:i], argv[i + 1:]
    else:
        train_args = []
    mode, outdir, options = argv[0], argv[1], argv[2:]
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rank = int(os.environ.get("HOROVOD_RANK", "0"))
    if mode == "train":
        while options:  # --rank_args R "FLAGS"
            flag, r, flags, options = options[0], int(options[1]), options[2], options[3:]
            assert flag == "--rank_args", flag
            if r == rank:
                train_args += shlex.split(flags)
        run_train(os.path.abspath(outdir), train_args, rank)
    elif mode == "step":
        dist = Distributed()
        x, y, init_noise, step_noise = step_inputs(dist.size)
        mine = slice(dist.rank * STEP_BATCH, (dist.rank + 1) * STEP_BATCH)
        result = one_step(dist, x[mine], y[mine], init_noise[mine], step_noise[mine], nan_on_rank=1)
        with open(os.path.join(outdir, f"step{dist.rank}.pkl"), "wb") as f:
            pickle.dump(result, f)
    else:
        raise SystemExit(f"distributed_worker.py: unknown mode {mode!r}; expected train or step")


if __name__ == "__main__":
    main(sys.argv[1:])
