"""What the library raises when a run cannot go on: one line for the user, no traceback.

Library code raises these; only the command-line programs (glow_tf/cli) turn them into a line
`PROGRAM: message` on stderr and exit status 1. Catch `GlowError` to handle them all.
"""


class GlowError(Exception):
    """A run cannot go on; str(error) is one line naming the bad value and what was expected."""


class ConfigError(GlowError):
    """Flags or settings that cannot work together (train.py's flags, a model config)."""


class DataError(GlowError):
    """Data that cannot be read: an unknown problem, a missing folder, a corrupt TFRecord."""


class RestoreError(GlowError):
    """A checkpoint that cannot be restored (missing, damaged, or not fitting the flags), or a
    --logdir that already holds a run."""


class WorldError(GlowError):
    """The workers of a data-parallel run: started wrongly, with different settings, or one of them
    stopped."""


class TrainingStopped(GlowError):
    """Training stopped on purpose, e.g. after --max_nonfinite_steps non-finite steps in a row."""
