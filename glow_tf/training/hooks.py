"""What the training loop tells the rest of a run: the Hook protocol and the hooks of every run.

The loop (glow_tf.training.loop.train) calls, in the order of its `hooks` list:

    on_train_start(run, baseline)   before the first epoch; baseline: the test figures right after the
                                    init (None for a resumed run)
    on_epoch_start(run, epoch)      before the epoch's first step
    on_step_end(run, epoch, stats, seconds)   after each step: its STAT_NAMES, its seconds
    on_epoch_end(run, end)          after the epoch's evaluation and samples (a loop.EpochEnd)
    on_train_end(run)               after the last epoch (not when the run stops on an error)
    close()                         always, last

Hooks: ProgressBar (tqdm and --verbose lines), Reporting (logs, TensorBoard, console, sample grids),
Checkpointing (best and latest); ElasticCommits under --elastic (glow_tf.elastic.train_elastic).
"""
import dataclasses
import sys

import tensorflow as tf
from tqdm import tqdm

from glow_tf.training.outputs import Checkpoints, Reporter
from glow_tf.training.steps import draw_samples, make_sampler


class Hook:
    """Does nothing at every point of the loop; a hook overrides the points it needs."""

    def on_train_start(self, run, baseline):
        pass

    def on_epoch_start(self, run, epoch):
        pass

    def on_step_end(self, run, epoch, stats, seconds):
        pass

    def on_epoch_end(self, run, end):
        pass

    def on_train_end(self, run):
        pass

    def close(self):
        pass


class ProgressBar(Hook):
    """A progress bar per epoch with bits/dim and images/s (`show`), and with --verbose a line per step
    (n_processed, seconds, STAT_NAMES) on the chief."""

    def __init__(self, show, verbose):
        self.show, self.verbose, self.bar = show, verbose, None

    def on_epoch_start(self, run, epoch):
        self.bar = tqdm(total=run.shape.train_its, initial=run.progress.steps, desc=f"epoch {epoch}",
                        disable=not self.show, leave=False)

    def on_step_end(self, run, epoch, stats, seconds):
        images = run.dist.size * run.data.local_batch_train
        if self.verbose:
            print(int(run.state.n_processed), seconds, stats, flush=True)
        self.bar.update(1)
        self.bar.set_postfix(bpd=f"{stats[1]:.3f}", img_s=f"{images / max(seconds, 1e-9):.0f}")

    def on_epoch_end(self, run, end):
        self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Reporting(Hook):
    """Every epoch's figures to the Reporter (train.txt, test.txt, TensorBoard; a console line on the
    original's cadence) and, on the cadence, sample grids (drawn with run.evaluation_weights) to PNG
    files and TensorBoard; on the chief only. `resume_epoch`: drop the log lines of later epochs
    (None: a new run)."""

    def __init__(self, run, resume_epoch):
        hps = {**dataclasses.asdict(run.config), **dataclasses.asdict(run.shape)}
        self.reporter = Reporter(run.config.logdir, hps, resume_epoch=resume_epoch, enabled=run.dist.is_chief,
                                 classifier=run.model_config.has_classifier)
        self.sampler = make_sampler(run.glow, run.seed)

    def on_train_start(self, run, baseline):
        if baseline is not None:
            self.reporter.report("test", 0, baseline, {"n_processed": 0, "n_images": 0})

    def on_epoch_end(self, run, end):
        state, progress = run.state, end.progress
        counters = {"n_processed": int(state.n_processed), "n_images": int(state.n_images)}
        self.reporter.report("train", end.epoch, end.train,
                             {**counters, "train_time": int(state.train_time), "n_skipped": progress.n_skipped},
                             rates={"images_per_second": progress.steps * run.dist.size * run.data.local_batch_train
                                    / progress.seconds, "lr": progress.lr, "seconds": progress.seconds},
                             echo=end.cadence.report)
        if end.test is not None:
            self.reporter.report("test", end.epoch, end.test, counters, rates={"seconds": end.test_seconds},
                                 note="best so far" if end.best else "")
        if end.cadence.sample and run.dist.is_chief:
            with run.evaluation_weights():
                grids = draw_samples(self.sampler, run.model_config, end.epoch, run.data.local_batch_train)
            self.reporter.samples(end.epoch, grids)
        self.reporter.flush()

    def close(self):
        self.reporter.close()


class Checkpointing(Hook):
    """The best test loss to best/ when an evaluation beats it; the latest state to checkpoints/ every
    --epochs_checkpoint epochs and at the end (chief only; glow_tf.training.outputs.Checkpoints)."""

    def __init__(self, run):
        saved = {"model": run.glow, "optimizer": run.optimizer, "progress": run.state}
        if run.position is not None:
            saved["data_position"] = run.position
        self.every = run.config.epochs_checkpoint
        self.checkpoints = Checkpoints(run.config.logdir, tf.train.Checkpoint(**saved), run.model_config,
                                       run.config.keep_checkpoints, enabled=run.dist.is_chief)

    def on_epoch_end(self, run, end):
        if end.best:
            self.checkpoints.save_best(int(run.state.step))
        if end.epoch % self.every == 0:
            self.checkpoints.save_latest(int(run.state.step))

    def on_train_end(self, run):
        self.checkpoints.save_latest(int(run.state.step))  # a no-op when the last epoch saved it


class ElasticCommits(Hook):
    """--elastic: the loop's state committed in memory every --elastic_commit_steps steps (not at an
    epoch's last step) and at every epoch end, after its checkpoint. `state` is a
    glow_tf.elastic.ElasticState (whose commit also looks for new hosts), or anything with a
    `progress` attribute and a `commit()` method."""

    def __init__(self, state):
        self.state = state

    def on_step_end(self, run, epoch, stats, seconds):
        if int(run.state.step) % run.config.elastic_commit_steps == 0 and run.progress.steps < run.shape.train_its:
            self.commit(run)

    def on_epoch_end(self, run, end):
        self.commit(run)

    def commit(self, run):
        self.state.progress = run.progress
        self.state.commit()


def default_hooks(run, resume_epoch):
    """The hooks of every run, in their order: progress bar, reports, checkpoints."""
    config = run.config
    show = run.dist.is_chief and (config.progress == "on" or (config.progress == "auto" and sys.stderr.isatty()))
    return [ProgressBar(show, config.verbose and run.dist.is_chief), Reporting(run, resume_epoch), Checkpointing(run)]
