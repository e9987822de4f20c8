#!/usr/bin/env python
"""What train.py's loop costs per step without and with --elastic's commits, side by side in one
process, on one model and one data stream:

    python bench/elastic_overhead.py            # the bench config's model on digits-sized data
    python bench/elastic_overhead.py --quick    # a tiny model, seconds

Variants, timed in turn, rotating the order each round (median step time over all rounds):
  before   the loop body as it was before elastic training existed (learning rate, next batch, step,
           counters), written out here;
  loop     train.train_epoch without --elastic (what every non-elastic run runs);
  commit   train.train_epoch with a commit every --commit_steps steps: each commit copies every
           variable to host memory as glow_tf.elastic.ElasticState.save does (without Horovod, whose
           check for new hosts adds one small broadcast per commit).
Prints one JSON line per variant and the ratios to `before`.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import glow_tf  # noqa: E402, F401
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import train  # noqa: E402
from glow_tf.optim import warmup_lr  # noqa: E402
from glow_tf.training import make_train_step  # noqa: E402

SMALL = ["--problem", "digits", "--dal", "0", "--anchor_size", "8", "--n_levels", "2", "--depth", "2", "--width",
         "16", "--n_batch_init", "128", "--gradient_checkpointing", "0", "--flow_coupling", "1", "--learntop"]
BENCH = ["--problem", "digits", "--image_size", "32", "--dal", "0", "--anchor_size", "32", "--n_levels", "3",
         "--depth", "8", "--width", "128", "--n_batch_train", "16", "--n_batch_init", "16",
         "--gradient_checkpointing", "0", "--flow_coupling", "1", "--learntop"]


class HostCopies:
    """The in-memory part of an elastic commit: every variable copied to host memory."""

    def __init__(self, variables):
        self.variables, self.progress, self.n = variables, None, 0

    def commit(self):
        self.saved = [v.numpy().copy() for v in self.variables]
        self.n += 1

    save = commit


def before(run, train_step, iterator, n):
    """The pre-elastic loop body, n steps."""
    args, state, dist, data = run.args, run.state, run.dist, run.data
    results = []
    for _ in range(n):
        lr = warmup_lr(args.lr, int(state.n_processed), args.n_train * args.epochs_warmup)
        x, y = next(iterator)
        stats, _, finite = train_step(x, y, tf.constant(lr, tf.float32), state.step)
        state.step.assign_add(1)
        state.n_processed.assign_add(dist.size * args.n_batch_train)
        state.n_images.assign_add(dist.size * data.local_batch_train)
        if bool(finite):
            results.append(stats.numpy())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model and few rounds")
    parser.add_argument("--rounds", type=int, default=0, help="rounds (default 5, 3 with --quick)")
    parser.add_argument("--steps", type=int, default=20, help="steps per variant per round")
    parser.add_argument("--commit_steps", type=int, default=10, help="steps between commits of `commit`")
    opts = parser.parse_args(argv)
    rounds = opts.rounds or (3 if opts.quick else 5)
    args = train.get_arguments([*(SMALL if opts.quick else BENCH), "--n_train", str(opts.steps * 64),
                                "--elastic_commit_steps", str(opts.commit_steps), "--logdir", "/nonexistent"])
    dist = train.Distributed(use_horovod=False)
    data = train.load_data(args, dist)
    config = train.model_config(args, data)
    shape = train.run_shape(args, data, dist, config)
    shape = train.dataclasses.replace(shape, train_its=opts.steps)
    glow, optimizer, state, _ = train.build_model(args, shape, config, data, dist, None, None)
    run = train.Run(args, dist, config, shape, data, glow, optimizer, state, resumed=False)
    train_step = make_train_step(glow, optimizer, dist, 0)
    iterator = iter(data.train())
    commits = HostCopies([*glow.variables, *optimizer.variables, *state.variables])

    variants = {
        "before": lambda: before(run, train_step, iterator, opts.steps),
        "loop": lambda: train.train_epoch(run, train_step, iterator, 1, train.EpochProgress(), False, None),
        "commit": lambda: train.train_epoch(run, train_step, iterator, 1, train.EpochProgress(), False, commits),
    }
    for fn in variants.values():  # warm-up: tracing, the data pipeline
        fn()
    times = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            variants[name]()
            times[name].append((time.perf_counter() - t0) / opts.steps)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    for name, m in medians.items():
        print(json.dumps({"variant": name, "median_step_s": round(m, 5), "ratio_to_before":
                          round(m / medians["before"], 3), "rounds": rounds, "steps": opts.steps}))
    print(f"step time: before {medians['before'] * 1e3:.1f} ms, loop without --elastic "
          f"{medians['loop'] / medians['before']:.3f}x, with a commit every {opts.commit_steps} steps "
          f"{medians['commit'] / medians['before']:.3f}x ({commits.n} commits)")


if __name__ == "__main__":
    main()
