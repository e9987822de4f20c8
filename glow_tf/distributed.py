"""A thin adapter over Horovod for data-parallel training, with a single-process fallback.

The original ran one process per GPU under `mpiexec` + Horovod (its train.py and tfops.allreduce_mean).
Here `Distributed()` initialises Horovod when the process was started by a launcher (horovodrun,
mpirun) and is a no-op world of size 1 otherwise, so train.py runs unchanged either way.
Only plain `tf.Variable`s are handled (the model holds no Keras variables; see docs/stack.md#no-keras-3-layers), and
only Horovod's low-level ops are used (`grouped_allreduce`, `broadcast`, `allgather_object`).

Every worker must call the collectives in the same order and the same number of times. What can fail
on one worker only (a missing file, a wrong flag) is done inside `stop_together()`, before the
next collective, so that a failure stops every worker with one line instead of leaving the others
waiting.
"""
import contextlib
import os

import numpy as np
import tensorflow as tf

from glow_tf.bijectors.actnorm import ActNorm

# Environment variables a launcher sets for its workers: horovodrun (Gloo), Open MPI, MPICH/Intel MPI, Slurm.
_LAUNCHER_RANK_VARS = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
_LAUNCHER_SIZE_VARS = ("HOROVOD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
# Elements per broadcast: variables are sent in flat groups of about this size (64 MiB of float32),
# a few collectives instead of one per variable (~4900 for the CIFAR-10 model with its optimiser).
_BROADCAST_GROUP_ELEMENTS = 1 << 24
# What Horovod's ops raise on the surviving workers once a worker has stopped.
_SHUTDOWN_MESSAGE = "Horovod has been shut down"


def launched_size():
    """The world size a launcher announced in the environment, or 1 for a plain process."""
    for var in _LAUNCHER_SIZE_VARS:
        if os.environ.get(var):
            return int(os.environ[var])
    return 1


def peer_stopped(error):
    """True for the error Horovod raises in a collective after another worker stopped."""
    return isinstance(error, tf.errors.OpError) and _SHUTDOWN_MESSAGE in str(error)


class Distributed:
    """rank / size / local_rank, gradient and statistics averaging, and broadcasts from rank 0.

    Args:
      use_horovod: "auto" (Horovod when launched by horovodrun/mpirun, else single-process), True
        (require Horovod) or False (single process even under a launcher: refused when size > 1,
        since the workers would all write the same logdir).
    """

    def __init__(self, use_horovod="auto"):
        self.hvd = None
        size = launched_size()
        if use_horovod is True or (use_horovod == "auto" and size > 1):
            try:
                import horovod.tensorflow as hvd  # noqa: PLC0415 (optional dependency)
            except ImportError as e:
                raise RuntimeError(
                    f"this process was launched as one of {size} workers, but horovod is not installed "
                    f"({e}); run scripts/install.sh (it builds horovod 0.28.1) or start a single process "
                    f"without horovodrun/mpirun") from None
            hvd.init()
            self.hvd = hvd
        elif size > 1:
            raise RuntimeError(f"launched as one of {size} workers but Horovod is disabled; every worker would "
                               f"train alone and write the same logdir")

    @property
    def rank(self):
        return self.hvd.rank() if self.hvd else 0

    @property
    def size(self):
        return self.hvd.size() if self.hvd else 1

    @property
    def local_rank(self):
        return self.hvd.local_rank() if self.hvd else 0

    @property
    def is_chief(self):
        """Rank 0: the only worker that writes logs, samples and checkpoints."""
        return self.rank == 0

    @property
    def _collective(self):
        return self.hvd is not None and self.size > 1

    def pin_gpu(self):
        """Makes only this worker's local GPU visible (one process per GPU), with memory growth."""
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        if len(gpus) <= self.local_rank:
            raise RuntimeError(f"worker with local rank {self.local_rank} found only {len(gpus)} GPU(s) on "
                               f"this machine; start at most {len(gpus)} workers per machine")
        gpu = gpus[self.local_rank]
        tf.config.set_visible_devices(gpu, "GPU")
        tf.config.experimental.set_memory_growth(gpu, True)
        return gpu

    # --- collectives -----------------------------------------------------------------------------
    def allreduce_mean(self, tensors):
        """The mean over workers of each tensor (the original's allreduce_mean): one grouped collective."""
        if not self._collective:
            return list(tensors)
        return self.hvd.grouped_allreduce(list(tensors), op=self.hvd.Average)

    def broadcast_variables(self, variables, root_rank=0):
        """Gives every worker rank 0's values (eagerly; the original's broadcast_global_variables).

        Variables of one dtype are concatenated into flat groups of about 2**24 elements and each
        group is one broadcast: a few collectives for the whole model and optimiser, about twice as
        fast as one per variable (measured: 8.4 s vs 21.3 s for the 4933 variables, 178M elements,
        of the CIFAR-10 model + optimiser between 2 CPU workers over Gloo).
        """
        if not self._collective:
            return
        by_dtype = {}
        for v in variables:
            by_dtype.setdefault(v.dtype, []).append(v)
        for group in by_dtype.values():
            for chunk in _chunks(group, _BROADCAST_GROUP_ELEMENTS):
                sizes = [int(np.prod(v.shape)) for v in chunk]
                flat = self.hvd.broadcast(tf.concat([tf.reshape(v, [-1]) for v in chunk], 0), root_rank)
                for v, part in zip(chunk, tf.split(flat, sizes)):
                    v.assign(tf.reshape(part, v.shape))

    def broadcast_object(self, obj, root_rank=0):
        """A picklable Python object from rank 0 to every worker."""
        if not self._collective:
            return obj
        return self.hvd.broadcast_object(obj, root_rank)

    def allgather_object(self, obj):
        """[obj of rank 0, obj of rank 1, ...] on every worker."""
        if not self._collective:
            return [obj]
        return self.hvd.allgather_object(obj)

    # --- failing together ------------------------------------------------------------------------
    @contextlib.contextmanager
    def stop_together(self):
        """Runs the block on every worker; a SystemExit raised in it on any worker stops all of them.

        The block must not call collectives. At its end the workers exchange their outcome (one
        allgather): a worker that failed exits with its own message; the others exit with a line
        naming the failed worker and its message, so no worker waits in a later collective for one
        that is gone. In a single process the SystemExit passes through unchanged.
        """
        error = None
        try:
            yield
        except SystemExit as e:
            if not self._collective:
                raise
            error = str(e.code)
        if not self._collective:
            return
        errors = self.allgather_object(error)
        if error is not None:
            raise SystemExit(error)
        failed = [(r, e) for r, e in enumerate(errors) if e is not None]
        if failed:
            r, message = failed[0]
            others = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise SystemExit(f"{_program(message)}worker {self.rank} of {self.size} stops: worker {r}"
                             f"{others} failed: {_strip_program(message)}")

    def check_same(self, settings, program="train.py"):
        """Stops every worker, naming the differences, unless all were given the same `settings`.

        `settings` is a dict of what must agree across workers (the model's config, the flags that
        change the computation). One allgather; the comparison is against rank 0's values.
        """
        if not self._collective:
            return
        gathered = self.allgather_object(dict(settings))
        reference = gathered[0]
        differences = []
        for key in sorted(set().union(*gathered), key=str):
            values = [g.get(key, "<missing>") for g in gathered]
            if any(v != reference.get(key, "<missing>") for v in values):
                differences.append(f"{key}: " + ", ".join(f"{v!r} on worker {r}" for r, v in enumerate(values)))
        if differences:
            raise SystemExit(f"{program}: the {self.size} workers were started with different settings ("
                             + "; ".join(differences) + "); start every worker with the same flags")

    # --- data-dependent init over every worker's batch -------------------------------------------
    @contextlib.contextmanager
    def allreduced_actnorm_init(self, glow):
        """While active, every actnorm of `glow` initialises itself from the statistics of all workers'
        batches together (not in the original, which used rank 0's batch: train.py --init_allreduce).

        For equal-sized batches (every worker has local_batch_init images) this is exactly the init on
        the concatenation of the batches: mean = the mean over workers of the per-worker means, then
        var = the mean over workers of each worker's mean of (x - mean)^2 (two allreduces per actnorm),
        and the actnorm's own formula b = -mean, logs = log(1 / (sqrt(var) + 1e-6)) / logscale_factor
        (tfops.actnorm_center/_scale). Every worker must hold the same weights before the init pass
        (later actnorms see the outputs of earlier layers), and every worker calls `glow.initialize`
        inside the block.
        """
        if not self._collective:
            yield
            return
        actnorms = [m for m in glow.submodules if isinstance(m, ActNorm)]
        for actnorm in actnorms:
            # An instance attribute shadows ActNorm.initialize, which the init pass calls.
            actnorm.initialize = self._allreduced_initialize(actnorm)
        try:
            yield
        finally:
            for actnorm in actnorms:
                del actnorm.initialize

    def _allreduced_initialize(self, actnorm):
        def initialize(x, scale=1.0):
            mean = self.allreduce_mean([tf.reduce_mean(x, axis=[0, 1, 2], keepdims=True)])[0]
            var = self.allreduce_mean([tf.reduce_mean(tf.square(x - mean), axis=[0, 1, 2], keepdims=True)])[0]
            actnorm.b.assign(-mean)
            actnorm.logs_var.assign(tf.math.log(scale / (tf.sqrt(var) + 1e-6)) / actnorm.logscale_factor)
            actnorm.initialized.assign(True)
        return initialize


def _chunks(variables, max_elements):
    """Consecutive runs of `variables` of at most max_elements elements each (a bigger variable alone)."""
    chunk, n = [], 0
    for v in variables:
        size = int(np.prod(v.shape))
        if chunk and n + size > max_elements:
            yield chunk
            chunk, n = [], 0
        chunk.append(v)
        n += size
    if chunk:
        yield chunk


def _program(message):
    """'train.py: ' when message starts with it (the program name prefix of our errors), else ''."""
    head, sep, _ = message.partition(": ")
    return head + sep if sep and head.endswith(".py") else ""


def _strip_program(message):
    return message[len(_program(message)):]
