"""Samples from a trained Glow at one or more temperatures, and the latent-space tools.

    python sample.py --logdir RUN --temperature 0.7 --n 64 --seed 0 --out grid.png
    python sample.py --logdir RUN --temperature 0 .25 .5 .6 .7 .8 .9 1 --n 10 --out rows.png
    python sample.py encode|decode|reconstruct|interpolate|direction|manipulate|export --logdir RUN ...

The first argument may name a command of `python -m glow_tf` (see `python sample.py COMMAND -h`);
without one, the command is `sample` (see `python sample.py -h`). Ports openai train.py's sampling
(f_sample; temperature at the top prior and every split) and the demo's latent tools. Installed, the
same commands are `glow-tf sample ...`, `glow-tf encode ...`, ...
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines, before it loads

from glow_tf.cli.quiet import import_tensorflow_quietly  # noqa: E402 (imports no TensorFlow)

import_tensorflow_quietly()

from glow_tf.__main__ import COMMANDS, main  # noqa: E402


def run(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        argv = ["sample", *argv]
    return main(argv, prog="sample.py")


if __name__ == "__main__":
    sys.exit(run())
