"""Where a run's figures and state go: the original's JSON-lines logs, TensorBoard, the console, PNG
sample grids (Reporter, ResultLogger) and the checkpoints (Checkpoints); written by the chief only."""
import json
import os
import sys

import numpy as np
import tensorflow as tf

from glow_tf.checkpoint import (CHECKPOINT_DIRS, CONFIG_NAME, DAMAGED_DIR, MANIFEST_SUFFIX, describe_skipped,
                                set_aside_damaged, write_manifest)
from glow_tf.images import save_png
from glow_tf.io import atomic_write_text
from glow_tf.training.steps import SAMPLE_TEMPERATURES, STAT_NAMES


class Reporter:
    """The one place a run's figures go, each to every sink: the original's JSON-lines logs
    (train.txt, test.txt), TensorBoard, and a labelled console line; and its sample grids, to PNG
    files with the original's names and to TensorBoard.

    Only the chief reports (`enabled`); on the other workers every method does nothing. The console
    line leaves out bits_y and pred_loss for a model without a classifier head (`classifier=False`),
    where they are the constants 0 and 1 the original logs.
    """

    def __init__(self, logdir, hps, resume_epoch=None, enabled=True, classifier=True):
        self.logdir, self.enabled = logdir, enabled
        self.shown = STAT_NAMES if classifier else ("loss", "bits_x")
        if not enabled:
            return
        os.makedirs(logdir, exist_ok=True)
        self.logs = {split: ResultLogger(os.path.join(logdir, f"{split}.txt"), hps, resume_epoch)
                     for split in ("train", "test")}
        self.writer = tf.summary.create_file_writer(os.path.join(logdir, "tensorboard"))

    def report(self, split, epoch, results, counters, rates=None, echo=True, note=""):
        """Logs one epoch's figures of `split` ("train" or "test").

        results: the means of STAT_NAMES (to every sink); counters: ints such as n_processed (to the
        log and the console); rates: floats such as images_per_second, lr, seconds (to TensorBoard and
        the console); echo: print the console line (the original printed on its report cadence only).
        """
        if not self.enabled:
            return
        stats = dict(zip(STAT_NAMES, map(float, results)))
        self.logs[split].log(epoch=epoch, **counters, **stats)
        rates = rates or {}
        with self.writer.as_default():
            for name, value in {**stats, **rates}.items():
                tf.summary.scalar(f"{split}/{name}", value, step=epoch)
        if echo:
            figures = " ".join(f"{name} {stats[name]:.4f}" for name in self.shown)
            extra = []
            if "n_processed" in counters:
                extra.append(f"{counters['n_processed']:,} images seen")
            if "images_per_second" in rates:
                extra.append(f"{rates['images_per_second']:.1f} img/s")
            if "seconds" in rates:
                extra.append(f"{rates['seconds']:.1f} s")
            if counters.get("n_skipped"):
                extra.append(f"{counters['n_skipped']} steps skipped")
            if note:
                extra.append(note)
            print(f"epoch {epoch:>4} {split:<5} | {figures} | {', '.join(extra)}", flush=True)

    def samples(self, epoch, grids):
        """Writes `epoch_{epoch}_sample_{i}.png` (the original's names) and the grids to TensorBoard."""
        if not self.enabled:
            return
        for i, g in enumerate(grids):
            save_png(g, os.path.join(self.logdir, f"epoch_{epoch}_sample_{i}.png"))
        with self.writer.as_default():
            for t, g in zip(SAMPLE_TEMPERATURES, grids):
                tf.summary.image(f"samples/temperature_{t}", g[None], step=epoch)

    def flush(self):
        if self.enabled:
            self.writer.flush()

    def close(self):
        if self.enabled:
            self.writer.close()


class Checkpoints:
    """A run's checkpoints, written by the chief only: the latest few (for resume) in checkpoints/ and
    the best test loss in best/, each folder with the model's config.json beside the checkpoints.

    tf.train.CheckpointManager writes each checkpoint's files before it updates the folder's
    `checkpoint` state file, so a crash mid-save leaves the previous checkpoint the latest one. After
    each save the sizes and sha256 of the new files go to `ckpt-N.sha256.json` (written atomically),
    which loading verifies (glow_tf.checkpoint.verify_checkpoint). On start, checkpoints that fail
    verification are moved to `damaged/` in their folder, so that the manager neither deletes them
    (max_to_keep) nor writes a new checkpoint under their name.
    """

    def __init__(self, logdir, checkpoint, config, keep, enabled=True):
        self.enabled = enabled
        if not enabled:
            return
        for which, folder in CHECKPOINT_DIRS.items():
            path = os.path.join(logdir, folder)
            os.makedirs(path, exist_ok=True)
            moved = set_aside_damaged(path)
            if moved:
                print(f"checkpoints: moved damaged {describe_skipped(moved)} to "
                      f"{os.path.join(folder, DAMAGED_DIR)}/ (kept, not deleted)", file=sys.stderr, flush=True)
            config.save(os.path.join(path, CONFIG_NAME))
        self.managers = {which: tf.train.CheckpointManager(checkpoint, os.path.join(logdir, folder),
                                                           max_to_keep=keep if which == "latest" else 1)
                         for which, folder in CHECKPOINT_DIRS.items()}

    def _save(self, which, step):
        if not self.enabled:
            return
        manager = self.managers[which]
        if manager.latest_checkpoint == os.path.join(manager.directory, f"ckpt-{step}"):
            return
        kept = set(manager.checkpoints)
        write_manifest(manager.save(checkpoint_number=step))
        for prefix in kept - set(manager.checkpoints):  # deleted by the manager (max_to_keep): its manifest too
            if os.path.exists(prefix + MANIFEST_SUFFIX) and not os.path.exists(prefix + ".index"):
                os.remove(prefix + MANIFEST_SUFFIX)

    def save_latest(self, step):
        """Saves the run at `step` unless that step is already the latest checkpoint."""
        self._save("latest", step)

    def save_best(self, step):
        self._save("best", step)


class ResultLogger:
    """JSON lines (openai utils.ResultLogger): the first line is the run's hyper-parameters, each
    later line one dict whose float values are "{:.4f}" strings, as the original writes them.

    A resumed run first drops the lines of epochs after its checkpoint, so the log has neither gaps
    nor duplicates. Each line is flushed to disk when written.
    """

    def __init__(self, path, hps, resume_epoch=None):
        self.path = path
        if resume_epoch is not None and os.path.exists(path):
            self._truncate_after(resume_epoch)
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            self._write(hps)

    def _truncate_after(self, epoch):
        with open(self.path) as f:
            lines = f.read().splitlines(keepends=True)
        keep = lines[:1] + [line for line in lines[1:] if _line_epoch(line) is not None and _line_epoch(line) <= epoch]
        atomic_write_text(self.path, "".join(keep))

    def _write(self, record):
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def log(self, **kwargs):
        self._write({k: f"{v:.4f}" if isinstance(v, (float, np.floating)) else v for k, v in kwargs.items()})


def _line_epoch(line):
    try:
        return int(json.loads(line)["epoch"])
    except (ValueError, KeyError, TypeError):
        return None
