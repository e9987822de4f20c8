"""train.py --deterministic 1: TensorFlow's op determinism, so that a run (and its resume) repeats
bit for bit on a GPU as it already does on the CPU. docs/training.md#exact-resume says what holds where.

On a GPU, cuDNN and cuBLAS pick among several kernels per convolution and matmul, some of which sum in
an order that depends on thread scheduling (atomics); XLA's GPU compiler makes the same choices for
jit-compiled steps. `tf.config.experimental.enable_op_determinism()` restricts TensorFlow's cuDNN
autotuning to the deterministic algorithms, makes tf.data deterministic and makes the ops without a
deterministic GPU kernel raise `UnimplementedError` instead of silently differing. XLA reads its own
switch, `--xla_gpu_deterministic_ops` in XLA_FLAGS, once, when it first compiles: it is set here
before any compilation. TensorFlow's documentation says it plainly: determinism comes at the expense
of speed (how much depends on the model and GPU; bench/determinism.py measures it).

TF32 (on by default on Ampere and newer, as in training) is deterministic and stays as it is.
"""
import os

import tensorflow as tf

XLA_DETERMINISM_FLAG = "--xla_gpu_deterministic_ops=true"


def set_determinism(enabled):
    """With `enabled`, makes every TensorFlow op of this process deterministic (see the module
    docstring); call it before the first op runs. Without, changes nothing (TensorFlow's default:
    the fastest kernels). Returns `enabled` as a bool, for the run's settings."""
    if not enabled:
        return False
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_gpu_deterministic_ops" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {XLA_DETERMINISM_FLAG}".strip()
    # The older, deprecated spelling of the same switch, for worker processes this one starts.
    os.environ["TF_DETERMINISTIC_OPS"] = "1"
    tf.config.experimental.enable_op_determinism()
    return True


def determinism_enabled():
    """True when op determinism is on in this process (set_determinism(True) or the user's own call)."""
    from tensorflow.python.framework import config  # noqa: PLC0415 (not exported under tf.config)

    return bool(config.is_op_determinism_enabled())
