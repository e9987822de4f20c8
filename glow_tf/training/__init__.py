"""Training Glow: a run's configuration, its setup, the loop and what the loop reports to.

Read in this order:
  config.py   TrainConfig: train.py's flags as one checked object; the cadence; the model they describe
  setup.py    open_run (workers, data, checks, restore plan) and build_run (the model, initialised or
              restored): a Run
  loop.py     fit and train: the epochs (evaluate, step, report, checkpoint, stop), calling hooks
  hooks.py    the Hook protocol and the hooks of every run: progress bar, reports, checkpoints
              (elastic training is one more hook: glow_tf.elastic.ElasticCommits)
  restore.py  what --restore_path / --resume name, and reading it back
  steps.py    the compiled train and test steps, the sampler, the run's counters (RunState)
  outputs.py  Reporter (logs, TensorBoard, console, sample grids), Checkpoints

The command line is glow_tf/cli/train.py (train.py at the top of the repository runs it).
"""
from glow_tf.training.config import TrainConfig
from glow_tf.training.hooks import Hook
from glow_tf.training.loop import Run, fit, train
from glow_tf.training.outputs import Checkpoints, Reporter, ResultLogger
from glow_tf.training.setup import build_run, infer, open_run
from glow_tf.training.steps import (SAMPLE_TEMPERATURES, STAT_NAMES, RunState, draw_samples, make_sampler,
                                    make_test_step, make_train_step)

__all__ = ["TrainConfig", "Hook", "Run", "fit", "train", "Checkpoints", "Reporter", "ResultLogger", "build_run",
           "infer", "open_run", "SAMPLE_TEMPERATURES", "STAT_NAMES", "RunState", "draw_samples", "make_sampler",
           "make_test_step", "make_train_step"]
