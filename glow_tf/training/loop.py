"""The training loop (the original's train()): evaluate, step, report, checkpoint, stop.

`train(run, hooks)` runs the epochs after the run's last completed one up to --epochs - 1. Each epoch
is train_its steps; its end updates the run's counters, evaluates on the original's cadence
(TrainConfig.cadence), and hands an EpochEnd to every hook. What happens to the
figures and the state (console, logs, TensorBoard, checkpoints, elastic commits) is the hooks'
business (glow_tf.training.hooks, glow_tf.elastic); the loop itself is the same for every run.
"""
import contextlib
import dataclasses
import time

import numpy as np
import tensorflow as tf

from glow_tf.errors import DataError, TrainingStopped
from glow_tf.optim import warmup_lr
from glow_tf.seeds import test_counter
from glow_tf.training.hooks import default_hooks
from glow_tf.training.steps import STAT_NAMES, make_test_step, make_train_step


@dataclasses.dataclass
class EpochProgress:
    """What the epoch under way has gathered: its steps, their STAT_NAMES (finite steps), skipped
    steps, seconds, the last learning rate; and the skipped steps in a row, counted across epochs.
    Under --elastic it is committed and rolled back with the variables."""
    steps: int = 0
    results: list = dataclasses.field(default_factory=list)
    n_skipped: int = 0
    seconds: float = 0.0
    lr: float = 0.0
    bad_in_a_row: int = 0


@dataclasses.dataclass
class Run:
    """What the loop works with (glow_tf.training.setup.build_run makes it); under --elastic `dist`,
    `shape` and `data` follow the current world."""
    config: object  # TrainConfig
    dist: object  # glow_tf.distributed.Distributed
    model_config: object  # GlowConfig
    shape: object  # glow_tf.training.setup.RunShape
    data: object
    glow: object
    optimizer: object
    state: object  # glow_tf.training.steps.RunState, saved with every checkpoint
    resumed: bool
    seed: int  # this worker's seed (the original's rank + size * seed)
    load_data: object = None  # load_data(config, dist): this worker's data (for a new elastic world)
    progress: EpochProgress = dataclasses.field(default_factory=EpochProgress)  # the epoch under way
    position: object = None  # glow_tf.elastic.DataPosition under --elastic

    def evaluation_weights(self):
        """The weights to evaluate and sample with: the Polyak averages with --use_ema 1 (the original
        used the raw weights), restored to the raw ones on leaving the context."""
        return self.optimizer.averaged_weights() if self.config.use_ema else contextlib.nullcontext()


@dataclasses.dataclass(frozen=True)
class EpochEnd:
    """What an epoch produced, for the hooks: the means of STAT_NAMES over its finite steps, its
    figures, and on the cadence a test pass (`test`, None otherwise; `best`: a new best test loss)."""
    epoch: int
    cadence: object  # TrainConfig.Cadence
    train: np.ndarray
    progress: EpochProgress
    test: np.ndarray | None = None
    test_seconds: float = 0.0
    best: bool = False


def fit(run):
    """Trains `run` with the default hooks; returns the model. (Under --elastic 1 the CLI calls
    glow_tf.elastic.train_elastic, which runs this same loop with commit hooks added.)"""
    train(run, default_hooks(run, resume_epoch=int(run.state.epoch) if run.resumed else None))
    return run.glow


def train(run, hooks, start_batch=None):
    """The epochs from state.epoch + 1 to --epochs - 1, the first one continuing `run.progress`, the
    data from batch `start_batch` of each worker's stream (default: the run's step)."""
    config, state, data = run.config, run.state, run.data
    train_step = make_train_step(run.glow, run.optimizer, run.dist, run.seed, jit=bool(config.jit))
    test_step = make_test_step(run.glow, run.dist, run.seed)
    try:
        # Not in the original: the test loss right after the data-dependent init, logged as epoch 0,
        # the baseline a run's progress is measured against.
        baseline = evaluate(test_step, data, config, 0) if not run.resumed and int(state.step) == 0 else None
        train_iterator = iter(data.train(start_batch=int(state.step) if start_batch is None else start_batch))
        for hook in hooks:
            hook.on_train_start(run, baseline)
        for epoch in range(int(state.epoch) + 1, config.epochs):
            train_epoch(run, train_step, train_iterator, epoch, hooks)
            progress = run.progress
            state.train_time.assign_add(progress.seconds)
            state.epoch.assign(epoch)
            cadence, test, test_seconds, best = config.cadence(epoch), None, 0.0, False
            if cadence.test:
                t0 = time.time()
                with run.evaluation_weights():
                    test = evaluate(test_step, data, config, epoch)
                test_seconds, best = time.time() - t0, test[0] < float(state.best_test_loss)
                if best:
                    state.best_test_loss.assign(test[0])
            run.progress = EpochProgress(bad_in_a_row=progress.bad_in_a_row)
            means = np.mean(progress.results, axis=0) if progress.results else np.full(len(STAT_NAMES), np.nan)
            for hook in hooks:
                hook.on_epoch_end(run, EpochEnd(epoch=epoch, cadence=cadence, train=means, progress=progress, test=test,
                                                test_seconds=test_seconds, best=best))
        for hook in hooks:
            hook.on_train_end(run)
    finally:
        for hook in hooks:
            hook.close()


def train_epoch(run, train_step, train_iterator, epoch, hooks):
    """The steps left in `epoch` (train_its in all), gathered into run.progress. A step whose loss or
    gradient is not finite is skipped (every variable left as it was) and counted; the run stops
    after --max_nonfinite_steps in a row, counted across epochs."""
    config, state, dist, progress = run.config, run.state, run.dist, run.progress
    for hook in hooks:
        hook.on_epoch_start(run, epoch)
    mark = time.time()
    while progress.steps < run.shape.train_its:
        progress.lr = warmup_lr(config.lr, int(state.n_processed), config.n_warmup)  # the first lr is 0
        try:
            x, y = next(train_iterator)
        except tf.errors.DataLossError as e:  # a corrupt TFRecord met mid-stream: name the file
            raise DataError(run.data.explain_data_loss(e)) from None
        t_step = time.time()
        stats, _, finite = train_step(x, y, tf.constant(progress.lr, tf.float32), state.step)
        state.step.assign_add(1)
        state.n_processed.assign_add(dist.size * config.n_batch_train)
        state.n_images.assign_add(dist.size * run.data.local_batch_train)
        progress.steps += 1
        stats = stats.numpy()
        if bool(finite):
            progress.results.append(stats)
            progress.bad_in_a_row = 0
        else:
            progress.n_skipped += 1
            progress.bad_in_a_row += 1
            state.n_nonfinite.assign_add(1)
            if progress.bad_in_a_row >= config.max_nonfinite_steps:
                raise TrainingStopped(
                    f"stopped at step {int(state.step)} (epoch {epoch}): {progress.bad_in_a_row} consecutive "
                    f"steps had a non-finite loss or gradient and were skipped; the last checkpoint is "
                    f"untouched. Lower --lr or raise --epochs_warmup.")
        now = time.time()
        progress.seconds += now - mark  # a hook's time (an elastic commit) counts in the next step's
        mark = now
        for hook in hooks:
            hook.on_step_end(run, epoch, stats, now - t_step)


def evaluate(test_step, data, config, epoch):
    """Means of STAT_NAMES over full_test_its test batches.

    The test stream continues from one evaluation to the next, as the original's test iterator did:
    the k-th evaluation (epoch k * epochs_full_valid) starts at batch (k - 1) * full_test_its, and the
    evaluation right after the init (epoch 0, not in the original) reads the same batches as the first.
    """
    start = max(epoch // config.epochs_full_valid - 1, 0) * data.full_test_its
    try:
        results = [test_step(x, y, tf.constant(test_counter(epoch, i), tf.int64)).numpy()
                   for i, (x, y) in enumerate(data.test(start_batch=start))]
    except tf.errors.DataLossError as e:
        raise DataError(data.explain_data_loss(e)) from None
    return np.mean(results, axis=0)
