"""TrainConfig: a training run's settings, one frozen object built from train.py's flags and checked here.

The fields are train.py's flags, named as the original's (openai/glow train.py `hps`); their defaults
and help live in the parser (glow_tf/cli/train.py), the one place a user reads them. A new flag is
one add_argument there and one field here (with its check in __post_init__, and its use in
model_config or configure when it changes the model). Everything the
loop needs to know about the flags is a field or a method of this class: the checks that run before
anything else, the model they describe (`model_config`), how the model computes (`configure`), the
original's cadence of reports, tests and samples (`cadence`), and what every worker must agree on.
"""
import dataclasses
import os
from typing import NamedTuple

from glow_tf.checkpoint import CHECKPOINT_DIRS, list_checkpoints
from glow_tf.config import GlowConfig
from glow_tf import reversible
from glow_tf.errors import ConfigError

# Flags each worker may set for itself: they do not change what is computed (the chief alone reads
# --restore_path and writes --logdir; data_dir may differ between machines).
WORKER_LOCAL_FLAGS = ("verbose", "progress", "data_dir", "fmap", "pmap", "logdir", "restore_path", "resume",
                      "config")
# Flags that must be positive integers.
_POSITIVE = ("epochs", "n_train", "n_batch_train", "n_batch_init", "anchor_size", "epochs_full_valid",
             "epochs_full_sample", "epochs_checkpoint", "keep_checkpoints", "max_nonfinite_steps",
             "elastic_commit_steps")


class Cadence(NamedTuple):
    """What happens at the end of an epoch: a console report, a test pass, sample grids."""
    report: bool
    test: bool
    sample: bool


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """train.py's flags (see its --help for each one's meaning and default), checked on creation:
    a bad value raises ConfigError naming it and what was expected."""
    config: str
    verbose: bool
    restore_path: str
    inference: bool
    logdir: str
    resume: bool
    # data
    problem: str
    category: str
    data_dir: str
    dal: int
    fmap: int
    pmap: int
    # optimisation
    n_train: int
    n_test: int
    n_batch_train: int
    n_batch_test: int
    n_batch_init: int
    optimizer: str
    lr: float
    beta1: float
    polyak_epochs: float
    weight_decay: float
    epochs: int
    epochs_warmup: int
    epochs_full_valid: int
    gradient_checkpointing: int
    # model
    image_size: int
    anchor_size: int
    width: int
    depth: int
    weight_y: float
    n_bits_x: int
    n_levels: int
    # sampling
    n_sample: int
    epochs_full_sample: int
    # ablation
    learntop: bool
    ycond: bool
    seed: int
    flow_permutation: str
    flow_coupling: str
    # added by this port
    lu: bool
    use_ema: int
    jit: int
    backprop: str | None
    reversible_check_every: int
    epochs_checkpoint: int
    keep_checkpoints: int
    max_nonfinite_steps: int
    progress: str
    init_allreduce: int
    elastic: int
    elastic_commit_steps: int
    deterministic: int

    @classmethod
    def from_flags(cls, namespace):
        """The config of parsed flags (an argparse.Namespace): one field per flag, so a flag added to
        the parser without its field here (or the reverse) is a TypeError naming it."""
        return cls(**vars(namespace))

    def __post_init__(self):
        if self.optimizer not in ("adam", "adamax"):
            raise ConfigError(f"--optimizer {self.optimizer!r}: expected adam or adamax (the original's adam2 is "
                              f"not ported)")
        for name in _POSITIVE:
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} {getattr(self, name)}: expected a positive integer")
        if self.epochs_warmup < 0:
            raise ConfigError(f"--epochs_warmup {self.epochs_warmup}: expected >= 0")
        if self.image_size != -1 and (self.image_size < 1 or self.image_size & (self.image_size - 1)):
            raise ConfigError(f"--image_size {self.image_size}: expected a power of two (or -1 for the problem's "
                              f"default)")
        if self.inference and not self.restore_source():
            raise ConfigError("--inference needs --restore_path (the original silently encoded with an untrained "
                              "model)")
        try:
            mode = reversible.backprop_mode(self.backprop, self.gradient_checkpointing)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if self.reversible_check_every < 0:
            raise ConfigError(f"--reversible_check_every {self.reversible_check_every}: expected N >= 0 (0: off)")
        if self.reversible_check_every and mode != "reversible":
            raise ConfigError(f"--reversible_check_every {self.reversible_check_every} checks reversible backprop; "
                              f"this run's is {mode!r} (add --backprop reversible, or drop the check)")
        if self.elastic not in (0, 1):
            raise ConfigError(f"--elastic {self.elastic}: expected 0 or 1")
        if self.elastic and (self.inference or self.init_allreduce):
            raise ConfigError(f"--elastic 1 trains; it does not combine with "
                              f"--{'inference' if self.inference else 'init_allreduce 1'}")

    def restore_source(self):
        """What to restore: --restore_path, or with --resume --logdir when it holds a checkpoint ("" for none)."""
        if self.restore_path:
            return self.restore_path
        if self.resume and self.logdir_holds_a_run():
            return self.logdir
        return ""

    def logdir_holds_a_run(self):
        return bool(list_checkpoints(os.path.join(self.logdir, CHECKPOINT_DIRS["latest"])))

    # --- where the flags become model settings ----------------------------------------------------
    def model_config(self, image_size, n_y):
        """The GlowConfig the flags describe for data of `image_size` with `n_y` classes."""
        try:
            return GlowConfig(image_size=image_size, n_levels=self.n_levels, depth=self.depth, width=self.width,
                              flow_permutation=self.flow_permutation, flow_coupling=self.flow_coupling,
                              learntop=self.learntop, ycond=self.ycond, n_bits_x=self.n_bits_x, n_y=n_y,
                              weight_y=self.weight_y, lu=self.lu)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def configure(self, glow):
        """Sets how `glow` computes (not what): the flags that are no part of its GlowConfig."""
        glow.configure_backprop(self.backprop, self.gradient_checkpointing, self.reversible_check_every)

    # --- the loop's schedule -------------------------------------------------------------------------
    @property
    def n_warmup(self):
        """Anchored images of the linear learning-rate warm-up (the original's n_train * epochs_warmup)."""
        return self.n_train * self.epochs_warmup

    def cadence(self, epoch):
        """The original's cadence (its train.py): a report at epochs 1-9, every 10th up to 50 and every
        --epochs_full_valid; a test pass every --epochs_full_valid; samples at epochs 1, 10 and every
        --epochs_full_sample among the reported epochs."""
        report = epoch < 10 or (epoch < 50 and epoch % 10 == 0) or epoch % self.epochs_full_valid == 0
        return Cadence(report=report, test=epoch % self.epochs_full_valid == 0,
                       sample=report and (epoch == 1 or epoch == 10 or epoch % self.epochs_full_sample == 0))

    def shared_settings(self):
        """The flags every worker must have been given alike (all but WORKER_LOCAL_FLAGS)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in WORKER_LOCAL_FLAGS}
