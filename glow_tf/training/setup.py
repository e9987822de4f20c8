"""From a TrainConfig to a run the loop can train: the workers, the data, the checks, the model.

    setup = open_run(config, load_data)   # the world, this worker's data, the checks, what to restore
    run = build_run(setup)                # the model: initialised from data, or restored
    infer(run) or glow_tf.training.loop.fit(run)

What may fail on one worker only (a missing file, a bad flag, a logdir that holds a run) happens in
open_run before any collective, and a failure on any worker stops every worker with one line
(Distributed.stop_together); with --elastic, where a worker joining later runs this alone, each worker
stops by itself.
"""
import contextlib
import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from glow_tf.checkpoint import CONFIG_NAME
from glow_tf.config import GlowConfig
from glow_tf.distributed import Distributed
from glow_tf.errors import WorldError
from glow_tf.io import atomic_write_text
from glow_tf.model import Glow
from glow_tf.optim import Optimizer, beta2_from
from glow_tf.seeds import INIT_NOISE, noise_seed, worker_seed
from glow_tf.training.config import TrainConfig
from glow_tf.training.loop import Run
from glow_tf.training.restore import (RestorePlan, load_original, plan_restore, restore_run)
from glow_tf.training.steps import RunState


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


def run_shape(config, data, size, model_config):
    return RunShape(image_size=data.image_size, n_y=data.n_y, local_batch_train=data.local_batch_train,
                    local_batch_test=data.local_batch_test, local_batch_init=data.local_batch_init,
                    train_its=int(np.ceil(config.n_train / (config.n_batch_train * size))),
                    full_test_its=data.full_test_its, n_bins=2.0 ** config.n_bits_x, size=size,
                    top_shape=list(model_config.top_shape))


def run_settings(config, shape, model_config):
    """What every worker must agree on: the model's config, the shared flags and the derived values
    (equal train_its and full_test_its give equal collectives on every worker)."""
    settings = model_config.to_dict()
    settings.update({k: v for k, v in config.shared_settings().items() if k not in settings})
    settings.update(dataclasses.asdict(shape))
    return settings


def connect(config):
    """This worker's Distributed: the one place the world of workers is checked."""
    if config.elastic and os.environ.get("HOROVOD_ELASTIC") != "1":
        raise WorldError("--elastic 1 runs under an elastic horovodrun, e.g. horovodrun -np 2 --min-np 1 --max-np 4 "
                         "--host-discovery-script discover.sh python train.py ... (docs/elastic.md)")
    try:
        return Distributed(use_horovod=True if config.elastic else "auto")
    except RuntimeError as e:  # launched by horovodrun/mpirun without a usable Horovod
        raise WorldError(str(e)) from None


@dataclasses.dataclass
class Setup:
    """What open_run found: the workers, this worker's data, the model's config, the run's shape and
    what to restore (the same kind on every worker; the prefix on the chief only)."""
    config: TrainConfig
    load_data: object  # load_data(config, dist) -> this worker's data (data_loaders.get_data's object)
    dist: Distributed
    data: object
    model_config: GlowConfig
    shape: RunShape
    plan: RestorePlan


def open_run(config, load_data):
    """The world, this worker's data, the checks and the restore plan (see the module docstring)."""
    dist = connect(config)
    with contextlib.nullcontext() if config.elastic else dist.stop_together():
        try:
            dist.pin_gpu()
        except RuntimeError as e:
            raise WorldError(str(e)) from None
        data = load_data(config, dist)
        model_config = config.model_config(data.image_size, data.n_y)
        shape = run_shape(config, data, dist.size, model_config)
        plan = plan_restore(config, model_config) if dist.is_chief else RestorePlan()
        if config.elastic:  # the steps per epoch of the world the run started with
            shape = dataclasses.replace(shape, train_its=fixed_train_its(
                config.logdir, shape.train_its, write=dist.is_chief and plan.kind != "run"))
    if not config.elastic:
        dist.check_same(run_settings(config, shape, model_config))
        plan = RestorePlan(dist.broadcast_object(plan.kind), plan.prefix)
    return Setup(config, load_data, dist, data, model_config, shape, plan)


def build_run(setup):
    """The Run: a fresh model initialised from data (the original's init pass), or one restored.

    Only the chief reads a checkpoint and every worker ends with the chief's variables. With
    --elastic the workers call no collective here (a worker joining later could not take part): the
    chief's variables reach the others when the elastic loop first syncs.
    """
    config, dist, data, plan, model_config = setup.config, setup.dist, setup.data, setup.plan, setup.model_config
    seed = worker_seed(config.seed, dist.rank, dist.size)
    tf.random.set_seed(seed)
    np.random.seed(seed)
    together = contextlib.nullcontext if config.elastic else dist.stop_together
    state, glow = RunState(), None
    if plan.kind == "original":
        with together():
            if dist.is_chief:
                glow = load_original(plan.prefix, model_config)
    if glow is None:
        glow = Glow(model_config, seed=seed)
    if plan.kind is None:
        # Data-dependent init on the chief's batch, then broadcast (the original's init pass + broadcast);
        # or, with --init_allreduce, on every worker's batch from the chief's initial weights.
        x, y = data.init_batch if dist.is_chief or config.init_allreduce else (None, None)
        init_seed = noise_seed(seed, INIT_NOISE, 0)
        if config.init_allreduce and dist.size > 1:
            dist.broadcast_variables(glow.variables)
            with dist.allreduced_actnorm_init():
                glow.initialize(x, y if model_config.ycond else None, seed=init_seed)
        elif dist.is_chief:
            glow.initialize(x, y if model_config.ycond else None, seed=init_seed)
    config.configure(glow)
    optimizer = Optimizer(glow.trainable_variables, kind=config.optimizer, beta1=config.beta1,
                          beta2=beta2_from(setup.shape.train_its, config.polyak_epochs),
                          weight_decay=config.weight_decay)
    if plan.kind == "run":
        with together():
            if dist.is_chief:
                restore_run(plan.prefix, glow, optimizer, state)
    if not config.elastic:  # every worker continues from the chief's weights, optimiser state and counters
        dist.broadcast_variables([*glow.variables, *optimizer.variables, *state.variables])
    if dist.is_chief:
        os.makedirs(config.logdir, exist_ok=True)
        model_config.save(os.path.join(config.logdir, CONFIG_NAME))
    return Run(config=config, dist=dist, model_config=model_config, shape=setup.shape, data=data, glow=glow,
               optimizer=optimizer, state=state, resumed=plan.kind == "run", seed=seed, load_data=setup.load_data)


def infer(run):
    """The original's --inference: encode the test set, decode it; z.npy (flat eps), x.npy
    (reconstructions, uint8) and y.npy into --logdir (the original wrote to a hard-coded logs/)."""
    glow, dist, logdir = run.glow, run.dist, run.config.logdir
    batches = [(np.asarray(x), np.asarray(y)) for x, y in run.data.test()]
    x, y = (np.concatenate([b[k] for b in batches]) for k in range(2))
    labels = y if glow.config.ycond else None
    z = glow.encode(x, labels, seed=run.seed, batch_size=len(batches[0][0]), progress=dist.is_chief)
    x = glow.decode(z, labels, batch_size=len(batches[0][0]), progress=dist.is_chief)
    gathered = dist.allgather_object((z, x, y))
    if dist.is_chief:
        z, x, y = (np.concatenate([g[k] for g in gathered]) for k in range(3))
        for name, array in (("z", z), ("x", x), ("y", y)):
            np.save(os.path.join(logdir, f"{name}.npy"), array)
        print(f"inference: wrote z.npy {z.shape}, x.npy {x.shape}, y.npy {y.shape} to {logdir}")
    return glow


ELASTIC_SHAPE_FILE = "elastic.json"  # in --logdir: the steps per epoch fixed when an elastic run started


def fixed_train_its(logdir, computed, write):
    """The run's steps per epoch: `computed` (from the current number of workers) when `write` (the
    chief of a new run, which records it in LOGDIR/elastic.json), else the number recorded there
    when the run started (`computed` when there is none: a run started without --elastic). Epochs,
    the warm-up and beta2 thus keep the starting world's length whatever the number of workers."""
    path = os.path.join(logdir, ELASTIC_SHAPE_FILE)
    if write:
        atomic_write_text(path, json.dumps({"train_its": computed}) + "\n")
        return computed
    if os.path.exists(path):
        with open(path) as f:
            return int(json.load(f)["train_its"])
    return computed
