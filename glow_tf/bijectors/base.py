"""The contract every Glow bijector follows, the data-dependent-init switch and its statistics reducer."""
import contextlib

import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors


class FlowBijector(tfb.Bijector):
    """A TFP bijector on [N, H, W, C] events written as two fused methods, side by side:

    - `decode(z) -> (x, fldj)`: TFP's forward (latent -> image), the original's `reverse=True` branch;
    - `encode(x) -> (z, ildj)`: TFP's inverse (image -> latent), the original's `reverse=False` branch,
      whose log-det is the original's `logdet` increment.

    The model calls `encode`/`decode` directly (one pass gives value and log-det); TFP's
    `forward`, `inverse` and their log-det methods are derived from them. Log-dets have shape [N]
    or are scalars that broadcast to it.
    """

    def __init__(self, name, event_ndims=3):
        super().__init__(forward_min_event_ndims=event_ndims, inverse_min_event_ndims=event_ndims,
                         validate_args=False, name=name)

    def encode(self, x, **condition):
        raise NotImplementedError

    def decode(self, z, **condition):
        raise NotImplementedError

    def _forward(self, z, **condition):
        return self.decode(z, **condition)[0]

    def _inverse(self, x, **condition):
        return self.encode(x, **condition)[0]

    # Volume-preserving layers return the Python float 0.0; TFP's log-det reduction needs a tensor.
    def _forward_log_det_jacobian(self, z, **condition):
        return tf.convert_to_tensor(self.decode(z, **condition)[1], dtype_hint=z.dtype)

    def _inverse_log_det_jacobian(self, x, **condition):
        return tf.convert_to_tensor(self.encode(x, **condition)[1], dtype_hint=x.dtype)


class _DataDependentInit:
    """While active, every ActNorm that is not yet initialised sets itself from its input; `reduce`
    turns the per-channel statistics of the local batch into those the init uses (None: unchanged)."""

    active = False
    reduce = None


@contextlib.contextmanager
def data_dependent_init():
    """The original's `arg_scope([get_variable_ddi, actnorm], init=True)`, as a context (eager only)."""
    previous, _DataDependentInit.active = _DataDependentInit.active, True
    try:
        yield
    finally:
        _DataDependentInit.active = previous


def ddi_active():
    return _DataDependentInit.active


@contextlib.contextmanager
def statistics_reducer(reduce):
    """While active, ActNorm's init passes its per-channel batch means through `reduce`.

    `reduce` maps a list of tensors (means over this process's batch) to a list of tensors of the same
    shapes; with every worker's means averaged, the init sees the statistics of all workers' batches
    together (distributed.Distributed.allreduced_actnorm_init). Eager only, like the init itself.
    """
    previous, _DataDependentInit.reduce = _DataDependentInit.reduce, reduce
    try:
        yield
    finally:
        _DataDependentInit.reduce = previous


def reduce_statistics(means):
    """`means` through the active statistics reducer; the same list when there is none."""
    reduce = _DataDependentInit.reduce
    return list(means) if reduce is None else list(reduce(list(means)))
