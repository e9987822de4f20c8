"""Train Glow: openai/glow's train.py in TensorFlow 2, with exact resume.

The original's flags keep their names, defaults and meanings (the few exceptions are listed in
docs/differences.md), so the original README's commands run unchanged, e.g. CIFAR-10 (3.35 bits/dim
in the paper, there on 8 GPUs):

    python train.py --problem cifar10 --image_size 32 --n_level 3 --depth 32 --flow_permutation 2 \
        --flow_coupling 1 --seed 0 --learntop --lr 0.001 --n_bits_x 8

or by name, `python train.py --config cifar10` (configs/ holds one file per setting of the paper;
flags given after it override it). Data-parallel over N workers: `horovodrun -np N python train.py
...` (docs/cluster.md); with `--elastic 1` under an elastic horovodrun, workers may leave and join
while the run goes on (docs/elastic.md). `--resume` continues --logdir's run exactly from its newest
intact checkpoint; `--restore_path` also takes a TF1 checkpoint of the original release, to evaluate
or fine-tune it.

This module is the command line only: the flags (build_parser), the run's configuration made from
them (parse_config: a glow_tf.training.TrainConfig), this worker's data (load_data), and `train`,
which runs glow_tf.training and turns its errors (glow_tf.errors.GlowError) into one line
`train.py: ...` and exit status 1. The loop itself is glow_tf/training/loop.py.
"""
import argparse
import sys

import tensorflow as tf

import data_loaders
from glow_tf.determinism import set_determinism
from glow_tf.distributed import peer_stopped
from glow_tf.errors import ConfigError, DataError, GlowError
from glow_tf.training.config import TrainConfig
from glow_tf.training.loop import fit
from glow_tf.training.setup import build_run, infer, open_run

PROGRAM = "train.py"  # the name the messages start with


def build_parser():
    """The argument parser: the original's flags (names, defaults, help), then this port's."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", type=str, default="",
                        help="A named config from configs/ (e.g. digits, cifar10) or a path to one: its flags "
                             "become the defaults, and flags given on the command line override them")
    parser.add_argument("--verbose", action="store_true", help="Verbose mode")
    parser.add_argument("--restore_path", type=str, default="",
                        help="Resume from this run directory or checkpoint prefix, or load a TF1 checkpoint of "
                             "the original release (then the optimiser starts fresh, as fine-tuning)")
    parser.add_argument("--inference", action="store_true",
                        help="Encode and reconstruct the test set (needs --restore_path): writes z.npy, x.npy, "
                             "y.npy into --logdir")
    parser.add_argument("--logdir", type=str, default="./logs", help="Location to save logs")
    parser.add_argument("--resume", action="store_true",
                        help="Resume from --logdir's latest checkpoint when it has one, else start a new run there "
                             "(the same as --restore_path LOGDIR when a checkpoint exists)")

    # Dataset hyperparams:
    parser.add_argument("--problem", type=str, default="cifar10",
                        help=f"Problem: {' | '.join(data_loaders.PROBLEMS)}")
    parser.add_argument("--category", type=str, default="", help="LSUN category")
    parser.add_argument("--data_dir", type=str, default="", help="Location of data")
    parser.add_argument("--dal", type=int, default=1, help="Data augmentation level: 0=None, 1=Standard, 2=Extra")

    # New dataloader params
    parser.add_argument("--fmap", type=int, default=1, help="# Threads for parallel file reading")
    parser.add_argument("--pmap", type=int, default=16, help="# Threads for parallel map")

    # Optimization hyperparams:
    parser.add_argument("--n_train", type=int, default=50000, help="Train epoch size")
    parser.add_argument("--n_test", type=int, default=-1, help="Valid epoch size")
    parser.add_argument("--n_batch_train", type=int, default=64, help="Minibatch size")
    parser.add_argument("--n_batch_test", type=int, default=50,
                        help="Minibatch size (unused, as in the original: the test batch follows the train batch)")
    parser.add_argument("--n_batch_init", type=int, default=256,
                        help="Minibatch size for data-dependent init")
    parser.add_argument("--optimizer", type=str, default="adamax", help="adam or adamax")
    parser.add_argument("--lr", type=float, default=0.001, help="Base learning rate")
    parser.add_argument("--beta1", type=float, default=.9, help="Adam beta1")
    parser.add_argument("--polyak_epochs", type=float, default=1,
                        help="Nr of averaging epochs for Polyak and beta2")
    parser.add_argument("--weight_decay", type=float, default=1., help="Weight decay. Switched off by default.")
    parser.add_argument("--epochs", type=int, default=1000000, help="Total number of training epochs")
    parser.add_argument("--epochs_warmup", type=int, default=10, help="Warmup epochs")
    parser.add_argument("--epochs_full_valid", type=int, default=50, help="Epochs between valid")
    parser.add_argument("--gradient_checkpointing", type=int, default=1,
                        help="Use memory saving gradients (recompute each flow step in the backward pass)")

    # Model hyperparams:
    parser.add_argument("--image_size", type=int, default=-1, help="Image size")
    parser.add_argument("--anchor_size", type=int, default=32,
                        help="Anchor size for deciding batch size")
    parser.add_argument("--width", type=int, default=512, help="Width of hidden layers")
    parser.add_argument("--depth", type=int, default=32, help="Depth of network")
    parser.add_argument("--weight_y", type=float, default=0.00, help="Weight of log p(y|x) in weighted loss")
    parser.add_argument("--n_bits_x", type=int, default=8, help="Number of bits of x")
    parser.add_argument("--n_levels", type=int, default=3, help="Number of levels")

    # Synthesis/Sampling hyperparameters:
    parser.add_argument("--n_sample", type=int, default=1, help="minibatch size for sample (unused, as the original)")
    parser.add_argument("--epochs_full_sample", type=int, default=50, help="Epochs between full scale sample")

    # Ablation
    parser.add_argument("--learntop", action="store_true", help="Learn spatial prior")
    parser.add_argument("--ycond", action="store_true", help="Use y conditioning")
    parser.add_argument("--seed", type=int, default=0, help="Random seed")
    parser.add_argument("--flow_permutation", type=str, default="2",
                        help="Type of flow. 0=reverse (realnvp), 1=shuffle, 2=invconv (ours); or the names")
    parser.add_argument("--flow_coupling", type=str, default="0",
                        help="Coupling type: 0=additive, 1=affine; or the names")

    # Added by this port
    parser.add_argument("--lu", action="store_true", help="LU-decomposed 1x1 convolution (the original's off branch)")
    parser.add_argument("--use_ema", type=int, default=0,
                        help="Evaluate and sample with the Polyak-averaged weights (the original used the raw "
                             "weights: 0)")
    parser.add_argument("--jit", type=int, default=0, help="Compile the training step with XLA (jit_compile)")
    parser.add_argument("--epochs_checkpoint", type=int, default=1,
                        help="Epochs between checkpoints of the latest state (for resume)")
    parser.add_argument("--keep_checkpoints", type=int, default=3, help="Latest checkpoints kept")
    parser.add_argument("--max_nonfinite_steps", type=int, default=20,
                        help="Stop after this many consecutive steps with a non-finite loss or gradient "
                             "(each such step is skipped and counted)")
    parser.add_argument("--progress", type=str, default="auto", choices=["auto", "on", "off"],
                        help="Progress bar with images/s and bits/dim (auto: when stderr is a terminal)")
    parser.add_argument("--init_allreduce", type=int, default=0,
                        help="Data-parallel runs: initialise each actnorm from the mean and variance over every "
                             "worker's init batch (1), instead of rank 0's batch as the original (0)")
    parser.add_argument("--elastic", type=int, default=0,
                        help="Horovod elastic training (1): workers may leave or join a run started with "
                             "horovodrun --min-np/--max-np/--host-discovery-script; see docs/elastic.md")
    parser.add_argument("--elastic_commit_steps", type=int, default=100,
                        help="With --elastic 1: steps between in-memory commits (and at every epoch end); a "
                             "lost worker costs at most the steps since the last commit")
    parser.add_argument("--backprop", type=str, default=None, choices=["store", "checkpoint", "reversible"],
                        help="How gradients are computed: store every activation, checkpoint (recompute each flow "
                             "step), or reversible (rebuild each step's input by its inverse; docs/reversible.md). "
                             "Default: --gradient_checkpointing decides (1: checkpoint, the original's default; "
                             "0: store); --backprop checkpoint with --gradient_checkpointing 0 is an error")
    parser.add_argument("--reversible_check_every", type=int, default=0,
                        help="With --backprop reversible: every N steps compare each level's rebuilt input with the "
                             "stored one and warn above 1e-4 relative error (0: off)")
    parser.add_argument("--deterministic", type=int, default=0, choices=(0, 1),
                        help="TensorFlow's op determinism (1): deterministic cuDNN/XLA kernels on GPU, so that a "
                             "run and its --resume repeat bit for bit there too; slower (docs/training.md)")
    return parser


def parse_config(argv=None):
    """The run's TrainConfig: a --config's flags are the defaults, the command line overrides them; a
    bad value is a usage error (exit status 2) naming it."""
    parser = build_parser()
    chosen, _ = parser.parse_known_args(argv)
    if chosen.config:
        import configs  # noqa: PLC0415 (only runs with --config need it)
        try:
            flags, _ = configs.load(chosen.config)
        except (ValueError, FileNotFoundError) as e:
            parser.error(f"--config {chosen.config!r}: {e}")
        unknown = sorted(set(flags) - {action.dest for action in parser._actions})
        if unknown:
            parser.error(f"--config {chosen.config!r} sets {unknown}, which are not flags of train.py")
        parser.set_defaults(**flags)
    args = parser.parse_args(argv)  # argparse expands unique prefixes: the original README's --n_level works
    try:
        return TrainConfig.from_flags(args)
    except ConfigError as e:
        parser.error(str(e))


def load_data(config, dist):
    """This worker's shard of --problem's data (data_loaders.get_data)."""
    try:
        return data_loaders.get_data(config.problem, config.data_dir, image_size=config.image_size,
                                     n_test=config.n_test, n_batch_train=config.n_batch_train,
                                     n_batch_init=config.n_batch_init, anchor_size=config.anchor_size, dal=config.dal,
                                     fmap=config.fmap, pmap=config.pmap, category=config.category, seed=config.seed,
                                     rank=dist.rank, size=dist.size)
    except (ValueError, FileNotFoundError) as e:
        raise DataError(str(e)) from None


def announce(config, setup):
    """The run's first console lines (the chief's): the config's target, the data, the workers, the model."""
    if config.config:
        import configs  # noqa: PLC0415
        print(f"{PROGRAM}: --config {config.config}: should reach {configs.load(config.config)[1]}", flush=True)
    data, model = setup.data, setup.model_config
    print(f"{PROGRAM}: {config.problem} {data.image_size}x{data.image_size}, {setup.dist.size} worker(s), batch "
          f"{data.local_batch_train} per worker, {setup.shape.train_its} steps per epoch; model "
          f"{model.n_levels} levels x {model.depth} steps, width {model.width}", flush=True)


def train(argv=None):
    """Trains (or with --inference encodes) as `python train.py ARGS` does; returns the Glow. A
    GlowError, or a worker stopped by another one's failure, ends in SystemExit with one line."""
    config = parse_config(argv)
    set_determinism(config.deterministic)  # before any op runs
    try:
        setup = open_run(config, load_data)
        if setup.dist.is_chief:
            announce(config, setup)
        run = build_run(setup)
        if config.inference:
            return infer(run)
        if config.elastic:
            from glow_tf import elastic  # noqa: PLC0415 (needs horovod)
            return elastic.train_elastic(run, setup.plan)
        return fit(run)
    except GlowError as e:
        raise SystemExit(f"{PROGRAM}: {e}") from None
    except tf.errors.OpError as e:
        if not peer_stopped(e):
            raise
        # Another worker failed and Horovod shut down: its own error is the one to read.
        raise SystemExit(f"{PROGRAM}: stopping: another worker stopped (its error is printed above)") from None


def main(argv=None):
    """The `glow-tf train` console entry point: train, exit status 0."""
    train(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
