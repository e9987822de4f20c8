#!/usr/bin/env python
"""What train.py's loop costs per step without and with --elastic's commits, side by side in one
process, on one model and one data stream:

    python bench/elastic_overhead.py            # the bench config's model on digits-sized data
    python bench/elastic_overhead.py --quick    # a tiny model, seconds

Each variant is one epoch of glow_tf.training.loop.train_epoch (the library's step loop) with other
hooks, timed in turn, rotating the order each round (median step time over all rounds):
  bare     no hook: the loop itself (learning rate, next batch, step, counters, the non-finite guard);
  loop     the hooks every non-elastic run has at each step (the progress bar, off as in a log file);
  commit   those and ElasticCommits with a commit every --commit_steps steps: each commit copies every
           variable to host memory as glow_tf.elastic.ElasticState.save does (without Horovod, whose
           check for new hosts adds one small broadcast per commit).
Prints one JSON line per variant and the ratios to `bare`.
"""
import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from glow_tf.cli.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import numpy as np  # noqa: E402

from glow_tf.cli.train import load_data, parse_config  # noqa: E402
from glow_tf.training.hooks import ElasticCommits, ProgressBar  # noqa: E402
from glow_tf.training.loop import EpochProgress, train_epoch  # noqa: E402
from glow_tf.training.setup import build_run, open_run  # noqa: E402
from glow_tf.training.steps import make_train_step  # noqa: E402

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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model and few rounds")
    parser.add_argument("--rounds", type=int, default=0, help="rounds (default 5, 3 with --quick)")
    parser.add_argument("--steps", type=int, default=20, help="steps per variant per round")
    parser.add_argument("--commit_steps", type=int, default=10, help="steps between commits of `commit`")
    opts = parser.parse_args(argv)
    rounds = opts.rounds or (3 if opts.quick else 5)
    logdir = tempfile.mkdtemp(prefix="elastic_overhead_")  # build_run writes the model's config.json there
    config = parse_config([*(SMALL if opts.quick else BENCH), "--n_train", str(opts.steps * 64),
                           "--elastic_commit_steps", str(opts.commit_steps), "--logdir", logdir])
    setup = open_run(config, load_data)
    setup = dataclasses.replace(setup, shape=dataclasses.replace(setup.shape, train_its=opts.steps))
    run = build_run(setup)
    train_step = make_train_step(run.glow, run.optimizer, run.dist, 0)
    iterator = iter(run.data.train())
    commits = HostCopies([*run.glow.variables, *run.optimizer.variables, *run.state.variables])

    def epoch(hooks):
        run.progress = EpochProgress()
        train_epoch(run, train_step, iterator, 1, hooks)

    variants = {
        "bare": lambda: epoch([]),
        "loop": lambda: epoch([ProgressBar(show=False, verbose=False)]),
        "commit": lambda: epoch([ProgressBar(show=False, verbose=False), ElasticCommits(commits)]),
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
        print(json.dumps({"variant": name, "median_step_s": round(m, 5), "ratio_to_bare":
                          round(m / medians["bare"], 3), "rounds": rounds, "steps": opts.steps}))
    print(f"step time: bare loop {medians['bare'] * 1e3:.1f} ms, with a run's step hooks "
          f"{medians['loop'] / medians['bare']:.3f}x, and a commit every {opts.commit_steps} steps "
          f"{medians['commit'] / medians['bare']:.3f}x ({commits.n} commits)")
    shutil.rmtree(logdir)


if __name__ == "__main__":
    main()
