#!/usr/bin/env python
"""Train Glow: openai/glow's train.py in TensorFlow 2, with exact resume.

    python train.py --config digits --logdir runs/digits       # python train.py -h: every flag

The program is glow_tf/cli/train.py (also `glow-tf train`); the training loop it runs is
glow_tf/training/loop.py (docs/training.md).
"""
from glow_tf.cli.quiet import import_tensorflow_quietly

import_tensorflow_quietly()  # before TensorFlow loads: its start-up lines that are not failures

from glow_tf.cli.train import train  # noqa: E402


def main(argv=None):
    """Runs train.py with `argv` (default: the command line); returns the trained (or restored) Glow."""
    return train(argv)


if __name__ == "__main__":
    main()
