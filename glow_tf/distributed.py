"""A thin adapter over Horovod for data-parallel training, with a single-process fallback.

The original ran one process per GPU under `mpiexec` + Horovod (its train.py and tfops.allreduce_mean).
Here `Distributed()` initialises Horovod when the process was started by a launcher (horovodrun,
mpirun) and is a no-op world of size 1 otherwise, so train.py runs unchanged either way.
Only plain `tf.Variable`s are handled (the model holds no Keras variables; see horovod_notes.md).
"""
import os

import tensorflow as tf

# Environment variables a launcher sets for its workers: horovodrun (Gloo), Open MPI, MPICH/Intel MPI, Slurm.
_LAUNCHER_RANK_VARS = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
_LAUNCHER_SIZE_VARS = ("HOROVOD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


def launched_size():
    """The world size a launcher announced in the environment, or 1 for a plain process."""
    for var in _LAUNCHER_SIZE_VARS:
        if os.environ.get(var):
            return int(os.environ[var])
    return 1


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

    def allreduce_mean(self, tensors):
        """The mean over workers of each tensor (the original's allreduce_mean): one grouped collective."""
        if self.hvd is None or self.size == 1:
            return list(tensors)
        return self.hvd.grouped_allreduce(list(tensors), op=self.hvd.Average)

    def broadcast_variables(self, variables, root_rank=0):
        """Gives every worker rank 0's values (eagerly; the original's broadcast_global_variables)."""
        if self.hvd is None or self.size == 1:
            return
        for v in variables:
            if v.dtype == tf.bool:  # Horovod has no bool collectives
                v.assign(tf.cast(self.hvd.broadcast(tf.cast(v, tf.int32), root_rank), tf.bool))
            else:
                v.assign(self.hvd.broadcast(v, root_rank))

    def broadcast_object(self, obj, root_rank=0):
        """A picklable Python object from rank 0 to every worker."""
        if self.hvd is None or self.size == 1:
            return obj
        return self.hvd.broadcast_object(obj, root_rank)

    def allgather_object(self, obj):
        if self.hvd is None or self.size == 1:
            return [obj]
        return self.hvd.allgather_object(obj)
