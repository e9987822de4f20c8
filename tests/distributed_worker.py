"""The per-rank program of tests/test_distributed.py, started once by `horovodrun -np 2 ... python THIS`.

    distributed_worker.py suite OUTDIR
        runs the jobs listed in OUTDIR/jobs.json one after another in this one process (each rank
        pays horovodrun's start and the TensorFlow import once, not once per job) and saves each
        job's results to OUTDIR/JOB/rank{rank}.pkl. A job is
          {"name", "kind": "train", "args": [...], "rank1_args": [...]}: train.main with the flags
            (plus, on rank 1, rank1_args) in OUTDIR/JOB/cwd{rank}, which must stay empty; saved: the
            variables right after build_model (the data-dependent init or restore and its
            broadcast), the final variables, and every training batch this rank consumed, in order;
          {"name", "kind": "step"}: one training step on this rank's share of a fixed batch with
            fixed noise (one_step), then one with a NaN in rank 1's noise only; the test runs
            one_step in one process on the whole batch; with "backprop": "reversible", the step and
            REVERSIBLE_STEPS more on the same batch in that mode (no NaN step).
        A job that ends in SystemExit (train.py's errors) saves {"exit": its code} and prints the
        message as the interpreter would at exit; any other exception saves {"error": traceback}.
        Either way the next job runs. Each job starts with the line JOB_MARKER + name on stdout and
        stderr, so the test splits what each rank printed by job, and ends with a check that both
        ranks finished the same job (train.py's checks stop every worker together, so they must
        stay in step).

Each job runs as in a fresh process: train.main seeds TensorFlow and numpy itself, Distributed()
may be built again (hvd.init is idempotent), the recording wrappers are undone after the job, and
each job has its own working directory (each job's results equal those of the job launched alone,
bit for bit). What a shared process cannot show is the real processes' side of an error: their
exit code, and rank 1 not waiting for a rank 0 whose process has ended; the test of a failure on
rank 0 only therefore also launches train.py by itself.
"""
import json
import os
import pickle
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import data_loaders  # noqa: E402
import train  # noqa: E402
from glow_tf import Glow, GlowConfig  # noqa: E402
from glow_tf.cli import train as train_cli  # noqa: E402
from glow_tf.distributed import Distributed  # noqa: E402
from glow_tf.optim import Optimizer  # noqa: E402
from glow_tf.training import make_train_step  # noqa: E402

# one_step's model and batch: a tiny affine Glow on 8x8 images, STEP_BATCH images per worker.
STEP_CONFIG = GlowConfig(image_size=8, n_levels=2, depth=2, width=16, flow_coupling="affine", learntop=True,
                         n_y=10)
STEP_BATCH = 6
STEP_LR = 0.01
REVERSIBLE_STEPS = 2  # the --backprop reversible step job's steps after the first
# The line that starts each job in a rank's stdout and stderr, followed by the job's name.
JOB_MARKER = "distributed_worker.py: job "


def step_inputs(n_workers):
    """(x uint8, y, init noise, step noise) for n_workers * STEP_BATCH images, from fixed generators."""
    rng = np.random.RandomState(0)
    n = n_workers * STEP_BATCH
    x = rng.randint(0, 256, size=(n, 8, 8, 3)).astype(np.uint8)
    y = rng.randint(0, 10, size=n).astype(np.int32)
    init_noise = rng.uniform(0, 1 / 256, size=x.shape).astype(np.float32)
    step_noise = rng.uniform(0, 1 / 256, size=x.shape).astype(np.float32)
    return x, y, init_noise, step_noise


def one_step(dist, x, y, init_noise, step_noise, nan_on_rank=None, backprop="store", more_steps=0):
    """The same Glow on every worker (fixed seed), the actnorm init with statistics over all workers'
    batches, then one step of training.make_train_step with explicit noise, its gradients computed in
    `backprop` mode. Returns numpy values.

    With `more_steps`, that many further steps follow on the same batch and noise (counters 1, 2, ...);
    their statistics are `more_stats` and the weights after them `more_params`.

    With `nan_on_rank`, a second step follows in which only that worker's noise holds a NaN; it
    records that worker-wide decision (`second_finite`) and whether the weights stayed unchanged.
    """
    glow = Glow(STEP_CONFIG, seed=5)
    with dist.allreduced_actnorm_init():
        glow.initialize(x, noise=init_noise)
    after_init = [v.numpy() for v in glow.variables]
    glow.backprop = backprop
    optimizer = Optimizer(glow.trainable_variables, beta2=0.99)
    step = make_train_step(glow, optimizer, dist, seed=0)
    stats, grad_norm, finite = step(tf.constant(x), tf.constant(y), tf.constant(STEP_LR), tf.constant(0, tf.int64),
                                    noise=tf.constant(step_noise))
    result = {"after_init": after_init, "stats": stats.numpy(), "grad_norm": float(grad_norm),
              "finite": bool(finite), "m1": [m.numpy() for m in optimizer.m1],
              "params": [v.numpy() for v in glow.trainable_variables]}
    more = [step(tf.constant(x), tf.constant(y), tf.constant(STEP_LR), tf.constant(k, tf.int64),
                 noise=tf.constant(step_noise)) for k in range(1, more_steps + 1)]
    if more_steps:
        result["more_stats"] = [s.numpy() for s, _, _ in more]
        result["more_finite"] = [bool(f) for _, _, f in more]
        result["more_params"] = [v.numpy() for v in glow.trainable_variables]
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


def run_train(train_args):
    """train.main(train_args) with data_loaders.get_data and the CLI's build_run wrapped for recording."""
    consumed, after_build = [], []
    get_data, build_run = data_loaders.get_data, train_cli.build_run

    def recording_get_data(*args, **kwargs):
        data = get_data(*args, **kwargs)
        train_stream = data.train
        data.train = lambda start_batch=0: _Recording(train_stream(start_batch), consumed)
        return data

    def recording_build_run(*args, **kwargs):
        run = build_run(*args, **kwargs)
        after_build.extend(v.numpy() for v in run.glow.variables)
        return run

    data_loaders.get_data, train_cli.build_run = recording_get_data, recording_build_run
    try:
        glow = train.main(train_args)
    finally:
        data_loaders.get_data, train_cli.build_run = get_data, build_run
    return {"after_build": after_build, "final": [v.numpy() for v in glow.variables], "consumed": consumed}


def run_step(backprop="store"):
    """one_step on this rank's share of step_inputs: with --backprop store, a NaN in rank 1's noise for a
    second step; in another mode, REVERSIBLE_STEPS further steps on the same batch."""
    dist = Distributed()
    x, y, init_noise, step_noise = step_inputs(dist.size)
    mine = slice(dist.rank * STEP_BATCH, (dist.rank + 1) * STEP_BATCH)
    if backprop == "store":
        return one_step(dist, x[mine], y[mine], init_noise[mine], step_noise[mine], nan_on_rank=1)
    return one_step(dist, x[mine], y[mine], init_noise[mine], step_noise[mine], backprop=backprop,
                    more_steps=REVERSIBLE_STEPS)


def run_job(job, jobdir, rank):
    """One job's results on this rank; {"exit": code} for a SystemExit, {"error": traceback} for another error."""
    cwd = os.path.join(jobdir, f"cwd{rank}")  # this rank's working directory: it must stay empty
    os.makedirs(cwd, exist_ok=True)
    start = os.getcwd()
    os.chdir(cwd)
    try:
        if job["kind"] == "step":
            return run_step(job.get("backprop", "store"))
        return run_train(job["args"] + (job.get("rank1_args", []) if rank == 1 else []))
    except SystemExit as e:
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr, flush=True)  # as the interpreter prints it when the process ends
        return {"exit": e.code}
    except Exception:  # noqa: BLE001 (recorded for the job's tests; the next job still runs)
        traceback.print_exc()
        sys.stderr.flush()
        return {"error": traceback.format_exc()}
    finally:
        os.chdir(start)


def run_suite(outdir):
    """Runs OUTDIR/jobs.json's jobs in order, saving each one's results before the next starts."""
    with open(os.path.join(outdir, "jobs.json")) as f:
        jobs = json.load(f)
    dist = Distributed()
    rank = dist.rank
    for job in jobs:
        print(JOB_MARKER + job["name"], flush=True)
        print(JOB_MARKER + job["name"], file=sys.stderr, flush=True)
        jobdir = os.path.join(outdir, job["name"])
        result = run_job(job, jobdir, rank)
        with open(os.path.join(jobdir, f"rank{rank}.pkl"), "wb") as f:
            pickle.dump(result, f)
        finished = dist.allgather_object(job["name"])
        if finished != [job["name"]] * dist.size:
            raise SystemExit(f"distributed_worker.py: the ranks are out of step after job {job['name']!r}: "
                             f"they finished {finished}")


def main(argv):
    if len(argv) != 2 or argv[0] != "suite":
        raise SystemExit(f"distributed_worker.py: expected `suite OUTDIR`, got {argv}")
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    run_suite(os.path.abspath(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
