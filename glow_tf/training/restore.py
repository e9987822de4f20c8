"""Restoring a run: what --restore_path / --resume name, and reading it into the model, the optimiser,
the run's counters and (under --elastic) the data position. Only the chief reads checkpoints; the
other workers get its values by broadcast (glow_tf.training.setup) or the elastic loop's first sync.
"""
import dataclasses

import tensorflow as tf

from glow_tf.checkpoint import find_checkpoint, find_config, load_original_checkpoint
from glow_tf.errors import RestoreError


@dataclasses.dataclass(frozen=True)
class RestorePlan:
    """kind: "run" (a checkpoint of this port: exact resume), "original" (a TF1 checkpoint of the
    original release: its weights, a fresh optimiser) or None (a new run); prefix: the checkpoint
    (None on the workers other than the chief, which never read checkpoints)."""
    kind: str | None = None
    prefix: str | None = None


def is_original_checkpoint(prefix):
    """True for a TF1 checkpoint of the original release (variables named model/...)."""
    names = [name for name, _ in tf.train.list_variables(prefix)]
    return any(n.startswith("model/") for n in names) and "_CHECKPOINTABLE_OBJECT_GRAPH" not in names


def plan_restore(config, model_config):
    """The chief's RestorePlan for `config` (a TrainConfig): a checkpoint of this port must have been
    written with `model_config`; a new run must not go into a --logdir that holds one."""
    source = config.restore_source()
    plan = RestorePlan()
    if source:
        try:
            prefix = find_checkpoint(source)  # a run directory (its latest checkpoint) or a prefix
            plan = RestorePlan("original" if is_original_checkpoint(prefix) else "run", prefix)
            saved = find_config(prefix) if plan.kind == "run" else model_config
        except FileNotFoundError as e:
            raise RestoreError(f"--restore_path: {e}") from None
        if saved != model_config:
            raise RestoreError(f"--restore_path {source!r} does not fit the flags: " + ", ".join(
                f"{k} is {v!r} in the checkpoint but {getattr(model_config, k)!r} here"
                for k, v in saved.to_dict().items() if getattr(model_config, k) != v))
    if plan.kind != "run" and config.logdir_holds_a_run():
        raise RestoreError(f"{config.logdir!r} already holds a run; resume it with --resume (or --restore_path "
                           f"{config.logdir}) or choose another --logdir")
    return plan


def load_original(prefix, model_config):
    """A Glow holding the weights of the original release's TF1 checkpoint `prefix`."""
    try:
        return load_original_checkpoint(prefix, model_config)
    except ValueError as e:
        raise RestoreError(f"--restore_path: {e}") from None


def restore_run(prefix, model, optimizer, progress):
    """Reads a checkpoint of this port into the model, the optimiser and the RunState `progress`."""
    try:
        tf.train.Checkpoint(model=model, optimizer=optimizer, progress=progress).restore(
            prefix).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise RestoreError(f"--restore_path: cannot restore {prefix!r} with these flags "
                           f"({type(e).__name__}: {str(e).splitlines()[0]})") from None


def restore_data_position(prefix, position):
    """Reads the elastic DataPosition saved in `prefix` into `position`; False when it holds none (a
    checkpoint written without --elastic)."""
    if not any(name.startswith("data_position/") for name, _ in tf.train.list_variables(prefix)):
        return False
    tf.train.Checkpoint(data_position=position).read(prefix).expect_partial()
    return True
