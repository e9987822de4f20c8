#!/usr/bin/env python
"""Learning: test bits/dim of the bench configuration after a fixed budget of steps on real digits.

    python bench/learning.py --data_dir ~/mnist             # MNIST: the four standard files, or t10k only
    python bench/learning.py --problem cifar10 --data_dir ~/cifar-10-batches-py
    python bench/learning.py --quick --problem digits       # seconds (for the tests)

MNIST is prepared as the original prepares it (get_mnist_cifar.py): 28x28 padded to 32x32 with
zeros and the grey channel tiled to RGB. When --data_dir holds only the t10k files, those 10,000 images are split by a fixed permutation (numpy default_rng(0))
into --n_train (8,000) training and --n_test (2,000) test images; with the four standard files the
train files give the training images and t10k the test images (the first --n_train / --n_test).
Other problems go through data_loaders.get_data. Training is train.py's loop
(glow_tf.training.loop.train, with an epoch of --eval_every steps and a test pass after each) after
a data-dependent init on an init batch: make_train_step (adamax, Polyak), the original's linear
warm-up of the learning rate, its augmentation (--dal), the train batch's stream and the test step
with stateless noise; a hook records the learning curve.
"""
import argparse
import math
import os
import sys

import common

T10K = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")


def _has(data_dir, name):
    return any(os.path.isfile(os.path.join(data_dir, name + ext)) for ext in (".gz", ""))


def mnist_split(data_dir, n_train, n_test):
    """(x_train, y_train, x_test, y_test) uint8 [N, 32, 32, 3] from local MNIST IDX files (see above)."""
    from data_loaders import mnist_cifar

    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"--data_dir {data_dir!r} does not exist; expected a folder with MNIST's "
                                f"t10k-*-idx*-ubyte[.gz] files (and optionally the train-* ones)")
    if all(_has(data_dir, f) for f in TRAIN + T10K):
        x_train, y_train, x_test, y_test = mnist_cifar.load_mnist(data_dir)
        if n_train > len(x_train) or n_test > len(x_test):
            raise ValueError(f"--n_train {n_train} / --n_test {n_test} exceed the {len(x_train)} / {len(x_test)} "
                             f"images in {data_dir!r}")
        return x_train[:n_train], y_train[:n_train], x_test[:n_test], y_test[:n_test]
    if not all(_has(data_dir, f) for f in T10K):
        raise FileNotFoundError(f"no MNIST files in {data_dir!r}; expected {T10K[0]}[.gz] and {T10K[1]}[.gz] "
                                f"(and optionally {TRAIN[0]}[.gz], {TRAIN[1]}[.gz])")
    import numpy as np

    x = mnist_cifar.read_idx(mnist_cifar._find(data_dir, T10K[0]))
    y = mnist_cifar.read_idx(mnist_cifar._find(data_dir, T10K[1])).reshape(-1)
    if n_train + n_test > len(x):
        raise ValueError(f"--n_train {n_train} + --n_test {n_test} exceed the {len(x)} t10k images in {data_dir!r}")
    order = np.random.default_rng(0).permutation(len(x))
    x = mnist_cifar.mnist_to_rgb32(x)
    train, test = order[:n_train], order[n_train:n_train + n_test]
    return x[train], y[train], x[test], y[test]


def load_data(args):
    """A data_loaders Data object for --problem / --data_dir (the split above for mnist)."""
    import data_loaders
    from data_loaders.arrays import ArrayData
    from data_loaders.core import N_Y

    image_size = common.config_dict(args.config)["image_size"]
    if args.problem == "mnist":
        arrays = mnist_split(args.data_dir, args.n_train, args.n_test)
        batches = data_loaders.batch_sizes(args.n_batch_train, args.n_batch_init, image_size, image_size)
        return ArrayData("mnist", *arrays, n_y=N_Y["mnist"], image_size=image_size, n_test=-1, batches=batches,
                         dal=args.dal, seed=args.seed, rank=0, size=1)
    return data_loaders.get_data(args.problem, args.data_dir, image_size=image_size, n_test=args.n_test,
                                 n_batch_train=args.n_batch_train, n_batch_init=args.n_batch_init,
                                 anchor_size=image_size, dal=args.dal, seed=args.seed)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--problem", default="mnist", choices=["mnist", "cifar10", "digits", "folder"],
                   help="data (mnist: see above; the others as train.py's --problem)")
    p.add_argument("--data_dir", default="", help="local data (required for mnist: a folder with its IDX files)")
    p.add_argument("--n_train", type=int, default=8000, help="MNIST training images")
    p.add_argument("--n_test", type=int, default=2000, help="test images")
    p.add_argument("--steps", type=int, default=1000, help="training steps (the fixed budget)")
    p.add_argument("--eval_every", type=int, default=200, help="steps between test evaluations")
    p.add_argument("--n_batch_train", type=int, default=16, help="train batch (the bench configuration's)")
    p.add_argument("--n_batch_init", type=int, default=256, help="data-dependent init batch")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate after warm-up (train.py's default)")
    p.add_argument("--warmup_images", type=int, default=-1,
                   help="images of linear lr warm-up (-1: one pass over the training images)")
    p.add_argument("--dal", type=int, default=1, help="augmentation level (train.py's --dal; 1: shifts)")
    p.add_argument("--gradient_checkpointing", type=int, default=0, help="recompute flow steps in the backward pass")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a tiny model and 30 steps (for the tests)")
    args = p.parse_args(argv)
    if args.problem == "mnist" and not args.data_dir:
        p.error("--problem mnist needs --data_dir: a folder with MNIST's IDX files (the four standard files, "
                "or the t10k pair alone)")
    args.config = "quick" if args.quick else "bench"
    if args.quick:
        args.steps, args.eval_every, args.n_batch_init = 30, 15, 32
        args.n_train, args.n_test = min(args.n_train, 512), min(args.n_test, 64)
    for name in ("n_train", "n_test", "steps", "eval_every", "n_batch_train", "n_batch_init"):
        if getattr(args, name) < 1:
            p.error(f"--{name} {getattr(args, name)}: expected a positive integer")
    if args.steps % args.eval_every:
        p.error(f"--steps {args.steps}: expected a multiple of --eval_every {args.eval_every}")
    try:
        data = load_data(args)
    except (ValueError, FileNotFoundError) as e:
        p.error(str(e))

    from glow_tf import Glow, GlowConfig
    from glow_tf.cli.train import parse_config
    from glow_tf.distributed import Distributed
    from glow_tf.optim import Optimizer, beta2_from
    from glow_tf.seeds import INIT_NOISE, noise_seed
    from glow_tf.training.hooks import Hook
    from glow_tf.training.loop import Run, train
    from glow_tf.training.steps import RunState

    cfg = common.config_dict(args.config)
    config = GlowConfig(**{**cfg, "image_size": data.image_size})
    glow = Glow(config, seed=args.seed)
    x_init, _ = data.init_batch
    glow.initialize(x_init, seed=noise_seed(args.seed, INIT_NOISE, 0))
    glow.gradient_checkpointing = bool(args.gradient_checkpointing)
    optimizer = Optimizer(glow.trainable_variables, beta2=beta2_from(math.ceil(data.n_train / data.local_batch_train)))
    n_warmup = data.n_train if args.warmup_images < 0 else args.warmup_images
    # train.py's loop with an "epoch" of --eval_every steps, a test pass after each, no checkpoints; the
    # warm-up (n_train * epochs_warmup images in train.py) is n_warmup images.
    flags = parse_config(["--problem", args.problem, "--lr", str(args.lr), "--n_batch_train", str(data.local_batch_train),
                          "--anchor_size", str(data.image_size), "--n_train", str(max(n_warmup, 1)),
                          "--epochs_warmup", str(int(n_warmup > 0)), "--epochs", str(args.steps // args.eval_every + 1),
                          "--epochs_full_valid", "1", "--seed", str(args.seed)])
    dist = Distributed()
    shape = argparse.Namespace(train_its=args.eval_every)
    run = Run(config=flags, dist=dist, model_config=config, shape=shape, data=data, glow=glow, optimizer=optimizer,
              state=RunState(), resumed=False, seed=args.seed)

    common.emit({"bench": "learning", "machine": common.machine(), "problem": args.problem, "config": cfg,
                 "n_train": data.n_train, "n_test": data.n_test, "batch": data.local_batch_train,
                 "steps": args.steps, "lr": args.lr, "warmup_images": n_warmup, "dal": args.dal})
    curve = []

    class Curve(Hook):
        """One record of the learning curve after the init and after every --eval_every steps."""

        def record(self, step, train_bits, test_bits):
            r = {"bench": "learning", "step": step, "images": step * data.local_batch_train,
                 "epoch": step * data.local_batch_train / data.n_train, "train_bits_x": train_bits,
                 "test_bits_x": test_bits, "train_seconds": float(run.state.train_time),
                 "skipped_steps": int(run.state.n_nonfinite)}
            common.emit(r)
            curve.append(r)

        def on_train_start(self, run, baseline):
            self.record(0, None, float(baseline[1]))

        def on_epoch_end(self, run, end):
            train_bits = float(end.train[1]) if end.progress.results else None
            self.record(int(run.state.step), train_bits, float(end.test[1]))

    train(run, [Curve()])
    common.print_table(f"Test bits/dim, {args.problem} ({data.n_train} train / {data.n_test} test images), "
                       f"{args.config} configuration, batch {data.local_batch_train}, lr {args.lr}",
                       ["step", "epoch", "train bits/dim", "test bits/dim", "train s"],
                       [[r["step"], common.fmt(r["epoch"], 2), common.fmt(r["train_bits_x"], 3),
                         common.fmt(r["test_bits_x"], 3), common.fmt(r["train_seconds"], 0)] for r in curve])
    return 0


if __name__ == "__main__":
    sys.exit(main())
