#!/usr/bin/env python
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

Read top to bottom: the flags; the checks that may fail on one worker; the model (built and
initialised from data, or restored); the outputs; the training loop with the original's cadence of
evaluations, samples and checkpoints; the same loop under Horovod's elastic API.
"""
import argparse
import contextlib
import dataclasses
import os
import sys
import time

import glow_tf  # noqa: F401  (first: it imports TensorFlow with its start-up noise filtered out)
import numpy as np
import tensorflow as tf
from tqdm import tqdm

import data_loaders
from glow_tf import Glow, GlowConfig
from glow_tf.checkpoint import (CHECKPOINT_DIRS, CONFIG_NAME, find_checkpoint, find_config, list_checkpoints,
                                load_original_checkpoint)
from glow_tf.distributed import Distributed, peer_stopped
from glow_tf.optim import Optimizer, beta2_from, warmup_lr
from glow_tf.seeds import INIT_NOISE, noise_seed
from glow_tf.training import (STAT_NAMES, Checkpoints, Reporter, RunState, draw_samples, make_sampler,
                              make_test_step, make_train_step)


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
    parser.add_argument("--backprop", type=str, default=None, choices=["store", "checkpoint", "reversible"],
                        help="How gradients are computed: store every activation, checkpoint (recompute each flow "
                             "step), or reversible (rebuild each step's input by its inverse; docs/reversible.md). "
                             "Default: --gradient_checkpointing decides (1: checkpoint, the original's default; "
                             "0: store); --backprop checkpoint with --gradient_checkpointing 0 is an error")
    parser.add_argument("--reversible_check_every", type=int, default=0,
                        help="With --backprop reversible: every N steps compare each level's rebuilt input with the "
                             "stored one and warn above 1e-4 relative error (0: off)")
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
    return parser


def get_arguments(argv=None):
    """The parsed, checked flags: a --config's flags are the defaults, the command line overrides them."""
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
    check_arguments(parser, args)
    return args


def check_arguments(parser, args):
    if args.optimizer not in ("adam", "adamax"):
        parser.error(f"--optimizer {args.optimizer!r}: expected adam or adamax (the original's adam2 is not ported)")
    for name in ("epochs", "n_train", "n_batch_train", "n_batch_init", "anchor_size", "epochs_full_valid",
                 "epochs_full_sample", "epochs_checkpoint", "keep_checkpoints", "max_nonfinite_steps",
                 "elastic_commit_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} {getattr(args, name)}: expected a positive integer")
    if args.epochs_warmup < 0:
        parser.error(f"--epochs_warmup {args.epochs_warmup}: expected >= 0")
    if args.image_size != -1 and (args.image_size < 1 or args.image_size & (args.image_size - 1)):
        parser.error(f"--image_size {args.image_size}: expected a power of two (or -1 for the problem's default)")
    if args.inference and not restore_source(args):
        parser.error("--inference needs --restore_path (the original silently encoded with an untrained model)")
    if args.elastic not in (0, 1):
        parser.error(f"--elastic {args.elastic}: expected 0 or 1")
    if args.elastic and (args.inference or args.init_allreduce):
        parser.error(f"--elastic 1 trains; it does not combine with --{'inference' if args.inference else 'init_allreduce 1'}")


def restore_source(args):
    """What to restore: --restore_path, or with --resume --logdir when it holds a checkpoint ("" for none)."""
    if args.restore_path:
        return args.restore_path
    if args.resume and list_checkpoints(os.path.join(args.logdir, CHECKPOINT_DIRS["latest"])):
        return args.logdir
    return ""


@dataclasses.dataclass(frozen=True)
class RunShape:
    """What the flags, the data and the number of workers imply; the original added these to its hps,
    and they head train.txt and test.txt beside the flags."""
    image_size: int
    n_y: int
    local_batch_train: int
    local_batch_test: int
    local_batch_init: int
    train_its: int  # steps per epoch: n_train over the anchored global batch n_batch_train * workers
    full_test_its: int
    n_bins: float
    size: int
    top_shape: list


def run_shape(args, data, dist, config):
    return RunShape(image_size=data.image_size, n_y=data.n_y, local_batch_train=data.local_batch_train,
                    local_batch_test=data.local_batch_test, local_batch_init=data.local_batch_init,
                    train_its=int(np.ceil(args.n_train / (args.n_batch_train * dist.size))),
                    full_test_its=data.full_test_its, n_bins=2.0 ** args.n_bits_x, size=dist.size,
                    top_shape=list(config.top_shape))


def model_config(args, data):
    try:
        return GlowConfig(image_size=data.image_size, n_levels=args.n_levels, depth=args.depth, width=args.width,
                          flow_permutation=args.flow_permutation, flow_coupling=args.flow_coupling,
                          learntop=args.learntop, ycond=args.ycond, n_bits_x=args.n_bits_x, n_y=data.n_y,
                          weight_y=args.weight_y, lu=args.lu)
    except ValueError as e:
        raise SystemExit(f"train.py: {e}") from None


def load_data(args, dist):
    try:
        return data_loaders.get_data(args.problem, args.data_dir, image_size=args.image_size, n_test=args.n_test,
                                     n_batch_train=args.n_batch_train, n_batch_init=args.n_batch_init,
                                     anchor_size=args.anchor_size, dal=args.dal, fmap=args.fmap, pmap=args.pmap,
                                     category=args.category, seed=args.seed, rank=dist.rank, size=dist.size)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"train.py: {e}") from None


def is_original_checkpoint(prefix):
    """True for a TF1 checkpoint of the original release (variables named model/...)."""
    names = [name for name, _ in tf.train.list_variables(prefix)]
    return any(n.startswith("model/") for n in names) and "_CHECKPOINTABLE_OBJECT_GRAPH" not in names


def resolve_restore(args, config):
    """(kind, prefix) for what restore_source names: ("run", prefix) for a checkpoint of this port,
    whose config must equal `config`; ("original", prefix) for a TF1 checkpoint of the original
    release; (None, None) for a new run. Only the chief calls it: the other workers never read
    checkpoints."""
    source = restore_source(args)
    if not source:
        return None, None
    try:
        prefix = find_checkpoint(source)  # a run directory (its latest checkpoint) or a prefix
    except FileNotFoundError as e:
        raise SystemExit(f"train.py: --restore_path: {e}") from None
    if is_original_checkpoint(prefix):
        return "original", prefix
    try:
        saved = find_config(prefix)
    except FileNotFoundError as e:
        raise SystemExit(f"train.py: --restore_path: {e}") from None
    if saved != config:
        diff = {k: (v, getattr(config, k)) for k, v in saved.to_dict().items() if getattr(config, k) != v}
        raise SystemExit(f"train.py: --restore_path {source!r} does not fit the flags: "
                         + ", ".join(f"{k} is {a!r} in the checkpoint but {b!r} here" for k, (a, b) in diff.items()))
    return "run", prefix


def build_model(args, shape, config, data, dist, restore_kind, prefix):
    """(glow, optimizer, state, resumed): a fresh, initialised model or one restored from --restore_path.

    `restore_kind` ("run", "original" or None) is the same on every worker; only the chief reads the
    checkpoint (`prefix` is None elsewhere) and every worker ends with the chief's variables. With
    --elastic the workers call no collective here (a worker joining later could not take part): the
    chief's variables reach the others when the elastic loop first syncs.
    """
    state = RunState()
    seed = worker_seed(args, dist)
    together = contextlib.nullcontext if args.elastic else dist.stop_together
    glow = None
    if restore_kind == "original":
        with together():
            if dist.is_chief:
                try:
                    glow = load_original_checkpoint(prefix, config)
                except ValueError as e:
                    raise SystemExit(f"train.py: --restore_path: {e}") from None
    if glow is None:
        glow = Glow(config, seed=seed)
    if restore_kind is None:
        # Data-dependent init on the chief's batch, then broadcast (the original's init pass + broadcast);
        # or, with --init_allreduce, on every worker's batch from the chief's initial weights.
        x, y = data.init_batch if dist.is_chief or args.init_allreduce else (None, None)
        init_seed = noise_seed(seed, INIT_NOISE, 0)
        if args.init_allreduce and dist.size > 1:
            dist.broadcast_variables(glow.variables)
            with dist.allreduced_actnorm_init():
                glow.initialize(x, y if config.ycond else None, seed=init_seed)
        elif dist.is_chief:
            glow.initialize(x, y if config.ycond else None, seed=init_seed)
    glow.configure_backprop(args.backprop, args.gradient_checkpointing, args.reversible_check_every)
    optimizer = Optimizer(glow.trainable_variables, kind=args.optimizer, beta1=args.beta1,
                          beta2=beta2_from(shape.train_its, args.polyak_epochs), weight_decay=args.weight_decay)
    if restore_kind == "run":
        with together():
            if dist.is_chief:
                try:
                    tf.train.Checkpoint(model=glow, optimizer=optimizer, progress=state).restore(
                        prefix).assert_existing_objects_matched()
                except (AssertionError, ValueError, tf.errors.OpError) as e:
                    raise SystemExit(f"train.py: --restore_path: cannot restore {prefix!r} with these flags "
                                     f"({type(e).__name__}: {str(e).splitlines()[0]})") from None
    # Every worker continues from the chief's weights, optimiser state and counters.
    if not args.elastic:
        dist.broadcast_variables([*glow.variables, *optimizer.variables, *state.variables])
    return glow, optimizer, state, restore_kind == "run"


def worker_seed(args, dist):
    """The original's per-worker seed: rank + size * seed."""
    return dist.rank + dist.size * args.seed


# Flags each worker may set for itself: they do not change what is computed (the chief alone reads
# --restore_path and writes --logdir; data_dir may differ between machines).
WORKER_LOCAL_FLAGS = ("verbose", "progress", "data_dir", "fmap", "pmap", "logdir", "restore_path", "resume",
                      "config")


def run_settings(args, shape, config):
    """What every worker must agree on: the model's config, every other flag and the derived values
    (equal train_its and full_test_its give equal collectives on every worker)."""
    settings = config.to_dict()
    settings.update({k: v for k, v in vars(args).items() if k not in WORKER_LOCAL_FLAGS and k not in settings})
    settings.update(dataclasses.asdict(shape))
    return settings


# The original's cadence (its train.py): a report (and samples) at epochs 1-9, every 10th up to 50 and
# every --epochs_full_valid; a test pass every --epochs_full_valid; samples at epochs 1, 10 and every
# --epochs_full_sample among the reported epochs.
def reports(epoch, args):
    return epoch < 10 or (epoch < 50 and epoch % 10 == 0) or epoch % args.epochs_full_valid == 0


def tests(epoch, args):
    return epoch % args.epochs_full_valid == 0


def samples(epoch, args):
    return reports(epoch, args) and (epoch == 1 or epoch == 10 or epoch % args.epochs_full_sample == 0)


def main(argv=None):
    args = get_arguments(argv)
    if args.elastic and os.environ.get("HOROVOD_ELASTIC") != "1":
        raise SystemExit("train.py: --elastic 1 runs under an elastic horovodrun, e.g. horovodrun -np 2 --min-np 1 "
                         "--max-np 4 --host-discovery-script discover.sh python train.py ... (docs/elastic.md)")
    try:
        dist = Distributed(use_horovod=True if args.elastic else "auto")
    except RuntimeError as e:  # launched by horovodrun/mpirun without a usable Horovod
        raise SystemExit(f"train.py: {e}") from None

    # --- Data, config, restore and logdir checks: what may fail on one worker only happens before
    # any collective, and a failure on any worker stops every worker with one line (with --elastic,
    # where a joining worker runs this alone, each worker stops by itself) ------------------------
    with contextlib.nullcontext() if args.elastic else dist.stop_together():
        try:
            dist.pin_gpu()
        except RuntimeError as e:
            raise SystemExit(f"train.py: {e}") from None
        data = load_data(args, dist)
        config = model_config(args, data)
        shape = run_shape(args, data, dist, config)
        restore_kind, prefix = resolve_restore(args, config) if dist.is_chief else (None, None)
        if (dist.is_chief and restore_kind != "run"
                and list_checkpoints(os.path.join(args.logdir, CHECKPOINT_DIRS["latest"]))):
            raise SystemExit(f"train.py: {args.logdir!r} already holds a run; resume it with --resume (or "
                             f"--restore_path {args.logdir}) or choose another --logdir")
        if args.elastic:
            shape = elastic_shape(args, shape, dist, fresh=dist.is_chief and restore_kind != "run")
    if not args.elastic:
        dist.check_same(run_settings(args, shape, config))
        restore_kind = dist.broadcast_object(restore_kind)
    seed = worker_seed(args, dist)
    tf.random.set_seed(seed)
    np.random.seed(seed)
    if dist.is_chief:
        if args.config:
            import configs  # noqa: PLC0415
            print(f"train.py: --config {args.config}: should reach {configs.load(args.config)[1]}", flush=True)
        print(f"train.py: {args.problem} {data.image_size}x{data.image_size}, {dist.size} worker(s), batch "
              f"{data.local_batch_train} per worker, {shape.train_its} steps per epoch; model "
              f"{config.n_levels} levels x {config.depth} steps, width {config.width}", flush=True)

    # --- Model, optimiser, data-dependent init or restore -------------------------------------
    glow, optimizer, state, resumed = build_model(args, shape, config, data, dist, restore_kind, prefix)
    if dist.is_chief:
        os.makedirs(args.logdir, exist_ok=True)
        config.save(os.path.join(args.logdir, CONFIG_NAME))
    if args.inference:
        return infer(glow, data, args, dist, seed)
    run = Run(args, dist, config, shape, data, glow, optimizer, state, resumed)
    if args.elastic:
        return train_elastic(run, prefix if restore_kind == "run" else None)

    # --- Outputs (rank 0 only), the compiled steps, the epochs --------------------------------
    reporter, checkpoints = open_outputs(run, resume_epoch=int(state.epoch) if resumed else None)
    train_loop(run, reporter, checkpoints, EpochProgress(), start_batch=int(state.step))
    reporter.close()
    return glow


@dataclasses.dataclass
class Run:
    """What the training loop works with; under --elastic `dist`, `shape` and `data` follow the
    current world."""
    args: argparse.Namespace
    dist: Distributed
    config: GlowConfig
    shape: RunShape
    data: object
    glow: Glow
    optimizer: Optimizer
    state: RunState
    resumed: bool
    position: object = None  # glow_tf.elastic.DataPosition under --elastic


@dataclasses.dataclass
class EpochProgress:
    """What the epoch under way has gathered: its steps, their STAT_NAMES (finite steps), skipped
    steps, seconds; and the skipped steps in a row, counted across epochs. Under --elastic it is
    committed and rolled back with the variables."""
    steps: int = 0
    results: list = dataclasses.field(default_factory=list)
    n_skipped: int = 0
    seconds: float = 0.0
    lr: float = 0.0
    bad_in_a_row: int = 0


def open_outputs(run, resume_epoch):
    """(Reporter, Checkpoints): logs, TensorBoard, console and checkpoints, on the chief only.
    `resume_epoch`: drop the log lines of later epochs (None: a new run)."""
    hps = {**vars(run.args), **dataclasses.asdict(run.shape)}
    reporter = Reporter(run.args.logdir, hps, resume_epoch=resume_epoch, enabled=run.dist.is_chief,
                        classifier=run.config.has_classifier)
    saved = {"model": run.glow, "optimizer": run.optimizer, "progress": run.state}
    if run.position is not None:
        saved["data_position"] = run.position
    checkpoints = Checkpoints(run.args.logdir, tf.train.Checkpoint(**saved), run.config, run.args.keep_checkpoints,
                              enabled=run.dist.is_chief)
    return reporter, checkpoints


def train_loop(run, reporter, checkpoints, progress, start_batch, elastic_state=None):
    """The epochs from state.epoch + 1 to --epochs - 1 (the original's train()), the first one
    continuing `progress`, the data from batch `start_batch` of each worker's stream.

    With `elastic_state` (--elastic) the state is committed every --elastic_commit_steps steps and
    at each epoch end (before its checkpoint; new hosts are looked for after it).
    """
    args, dist, data, state, glow = run.args, run.dist, run.data, run.state, run.glow
    seed = worker_seed(args, dist)
    train_step = make_train_step(glow, run.optimizer, dist, seed, jit=bool(args.jit))
    test_step = make_test_step(glow, dist, seed)
    sampler = make_sampler(glow, seed)
    averaged = run.optimizer.averaged_weights if args.use_ema else contextlib.nullcontext
    if not run.resumed and int(state.step) == 0:
        # Not in the original: the test loss right after the data-dependent init, logged as epoch 0,
        # the baseline a run's progress is measured against.
        reporter.report("test", 0, evaluate(test_step, data, args, 0), {"n_processed": 0, "n_images": 0})
    train_iterator = iter(data.train(start_batch=start_batch))
    show_progress = dist.is_chief and (args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty()))
    for epoch in range(int(state.epoch) + 1, args.epochs):
        train_epoch(run, train_step, train_iterator, epoch, progress, show_progress, elastic_state)
        state.train_time.assign_add(progress.seconds)
        state.epoch.assign(epoch)
        mean = np.mean(progress.results, axis=0) if progress.results else np.full(len(STAT_NAMES), np.nan)
        reporter.report("train", epoch, mean,
                        {"n_processed": int(state.n_processed), "n_images": int(state.n_images),
                         "train_time": int(state.train_time), "n_skipped": progress.n_skipped},
                        rates={"images_per_second": progress.steps * dist.size * data.local_batch_train
                               / progress.seconds, "lr": progress.lr, "seconds": progress.seconds},
                        echo=reports(epoch, args))

        # --- Evaluation, best checkpoint, samples: the original's cadence --------------------
        with averaged():  # --use_ema 1: the Polyak averages (the original used the raw weights)
            if tests(epoch, args):
                t1 = time.time()
                test_results = evaluate(test_step, data, args, epoch)
                best = test_results[0] < float(state.best_test_loss)
                if best:
                    state.best_test_loss.assign(test_results[0])
                    checkpoints.save_best(int(state.step))
                reporter.report("test", epoch, test_results,
                                {"n_processed": int(state.n_processed), "n_images": int(state.n_images)},
                                rates={"seconds": time.time() - t1}, note="best so far" if best else "")
            if dist.is_chief and samples(epoch, args):
                reporter.samples(epoch, draw_samples(sampler, run.config, epoch, data.local_batch_train))
        progress = EpochProgress(bad_in_a_row=progress.bad_in_a_row)
        if elastic_state is not None:
            elastic_state.progress = progress
            elastic_state.save()
        if epoch % args.epochs_checkpoint == 0:
            reporter.flush()
            checkpoints.save_latest(int(state.step))
        if elastic_state is not None:
            elastic_state.check_host_updates()
    checkpoints.save_latest(int(state.step))  # the final state (a no-op when the last epoch saved it)


def train_epoch(run, train_step, train_iterator, epoch, progress, show_progress, elastic_state):
    """Runs the steps left in `epoch` (train_its in all), gathering into `progress`. A step whose loss
    or gradient is not finite is skipped (every variable left as it was) and counted; the run stops
    after --max_nonfinite_steps in a row, counted across epochs."""
    args, shape, data, dist, state = run.args, run.shape, run.data, run.dist, run.state
    n_warmup = args.n_train * args.epochs_warmup
    commit_every = args.elastic_commit_steps
    bar = tqdm(total=shape.train_its, initial=progress.steps, desc=f"epoch {epoch}", disable=not show_progress,
               leave=False)
    t0 = time.time()
    while progress.steps < shape.train_its:
        progress.lr = warmup_lr(args.lr, int(state.n_processed), n_warmup)  # before the step: the first lr is 0
        try:
            x, y = next(train_iterator)
        except tf.errors.DataLossError as e:  # a corrupt TFRecord met mid-stream: name the file
            raise SystemExit(f"train.py: {data.explain_data_loss(e)}") from None
        t_step = time.time()
        stats, _, finite = train_step(x, y, tf.constant(progress.lr, tf.float32), state.step)
        state.step.assign_add(1)
        state.n_processed.assign_add(dist.size * args.n_batch_train)
        state.n_images.assign_add(dist.size * data.local_batch_train)
        progress.steps += 1
        if bool(finite):
            progress.results.append(stats.numpy())
            progress.bad_in_a_row = 0
        else:
            progress.n_skipped += 1
            progress.bad_in_a_row += 1
            state.n_nonfinite.assign_add(1)
            if progress.bad_in_a_row >= args.max_nonfinite_steps:
                raise SystemExit(
                    f"train.py: stopped at step {int(state.step)} (epoch {epoch}): {progress.bad_in_a_row} "
                    f"consecutive steps had a non-finite loss or gradient and were skipped; the last checkpoint "
                    f"is untouched. Lower --lr or raise --epochs_warmup.")
        if args.verbose and dist.is_chief:
            print(int(state.n_processed), time.time() - t_step, stats.numpy(), flush=True)
        bar.update(1)
        bar.set_postfix(bpd=f"{stats[1].numpy():.3f}",
                        img_s=f"{dist.size * data.local_batch_train / max(time.time() - t_step, 1e-9):.0f}")
        if elastic_state is not None and int(state.step) % commit_every == 0 and progress.steps < shape.train_its:
            progress.seconds += time.time() - t0
            t0 = time.time()
            elastic_state.progress = progress
            elastic_state.commit()
    progress.seconds += time.time() - t0
    bar.close()


# --- Elastic training (--elastic 1, docs/elastic.md) -------------------------------------------------
def elastic_shape(args, shape, dist, fresh):
    """`shape` with the run's steps per epoch fixed when it started (glow_tf.elastic.fixed_train_its)."""
    from glow_tf import elastic  # noqa: PLC0415 (needs horovod)
    train_its = elastic.fixed_train_its(args.logdir, shape.train_its, write=fresh)
    return dataclasses.replace(shape, train_its=train_its)


def train_elastic(run, prefix):
    """The training loop under Horovod's elastic API: entered again after every reset (a worker lost
    or added) with every worker holding the last commit of the lowest surviving rank, the data
    re-sharded for the new world and the position re-derived (glow_tf.elastic.DataPosition)."""
    from glow_tf import elastic  # noqa: PLC0415 (needs horovod)
    args, state = run.args, run.state
    run.position = elastic.DataPosition(run.dist.size, int(state.step), int(state.step))
    if prefix is not None and elastic.has_data_position(prefix):  # a checkpoint of an elastic run
        tf.train.Checkpoint(data_position=run.position).read(prefix).expect_partial()
    variables = [*run.glow.variables, *run.optimizer.variables, *state.variables, *run.position.variables]
    elastic_state = elastic.ElasticState(run.dist, variables, state.step, holds_state=run.dist.is_chief,
                                         progress=EpochProgress(), resumed=run.resumed)

    def train(elastic_state):
        dist = run.dist
        run.resumed = elastic_state.resumed
        with dist.stop_together():
            run.data = load_data(args, dist)  # this worker's shard of the new world
        run.shape = dataclasses.replace(run_shape(args, run.data, dist, run.config), train_its=run.shape.train_its)
        dist.check_same(run_settings(args, run.shape, run.config))
        start = run.position.start_batch(int(state.step), dist.size)
        if dist.is_chief:
            print(f"elastic: {dist.size} worker(s) from step {int(state.step)} (epoch {int(state.epoch) + 1}, "
                  f"{elastic_state.progress.steps} of its steps done), data batch {start} of each worker's stream",
                  flush=True)
        # Log lines after the committed epoch were written by a world that did not reach the commit.
        committed = int(state.epoch) if run.resumed or int(state.step) > 0 else -1
        reporter, checkpoints = open_outputs(run, resume_epoch=committed)
        try:
            train_loop(run, reporter, checkpoints, elastic_state.progress, start, elastic_state)
        finally:
            reporter.close()

    elastic.run(train, elastic_state)
    return run.glow


def evaluate(test_step, data, args, epoch):
    """Means of STAT_NAMES over full_test_its test batches.

    The test stream continues from one evaluation to the next, as the original's test iterator did:
    the k-th evaluation (epoch k * epochs_full_valid) starts at batch (k - 1) * full_test_its, and the
    evaluation right after the init (epoch 0, not in the original) reads the same batches as the first.
    """
    start = max(epoch // args.epochs_full_valid - 1, 0) * data.full_test_its
    try:
        results = [test_step(x, y, tf.constant(epoch * 1_000_000 + i, tf.int64)).numpy()
                   for i, (x, y) in enumerate(data.test(start_batch=start))]
    except tf.errors.DataLossError as e:
        raise SystemExit(f"train.py: {data.explain_data_loss(e)}") from None
    return np.mean(results, axis=0)


def infer(glow, data, args, dist, seed):
    """The original's --inference: encode the test set, decode it; z.npy (flat eps), x.npy
    (reconstructions, uint8) and y.npy into --logdir (the original wrote to a hard-coded logs/)."""
    batches = [(np.asarray(x), np.asarray(y)) for x, y in data.test()]
    x, y = (np.concatenate([b[k] for b in batches]) for k in range(2))
    labels = y if glow.config.ycond else None
    z = glow.encode(x, labels, seed=seed, batch_size=len(batches[0][0]), progress=dist.is_chief)
    x = glow.decode(z, labels, batch_size=len(batches[0][0]), progress=dist.is_chief)
    gathered = dist.allgather_object((z, x, y))
    if dist.is_chief:
        z, x, y = (np.concatenate([g[k] for g in gathered]) for k in range(3))
        for name, array in (("z", z), ("x", x), ("y", y)):
            np.save(os.path.join(args.logdir, f"{name}.npy"), array)
        print(f"inference: wrote z.npy {z.shape}, x.npy {x.shape}, y.npy {y.shape} to {args.logdir}")
    return glow


if __name__ == "__main__":
    try:
        main()
    except tf.errors.OpError as e:
        if not peer_stopped(e):
            raise
        # Another worker failed and Horovod shut down: its own error is the one to read.
        raise SystemExit("train.py: stopping: another worker stopped (its error is printed above)") from None
