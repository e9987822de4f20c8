"""A seconds-long check that a launcher's workers form one Horovod world, before a long run is queued on it.

    srun --mpi=pmix [apptainer exec --nv IMAGE] python scripts/world_check.py
    horovodrun -np 4 -H host1:2,host2:2 python scripts/world_check.py

Each worker starts Horovod the way train.py does (glow_tf.distributed.Distributed: the launcher's
variables, then the check that Horovod connected as many workers as the launcher started), takes the
GPU of its local rank, and takes part in one allreduce of its rank + 1; every worker must get
size * (size + 1) / 2. Each prints one line (`world_check: rank R of N on HOST (DEVICE): ok`) and
exits 0, or one line saying what is wrong and exits 1. Under `srun --mpi=pmix` inside Apptainer this
is the test that the container's PMIx (the image's Open MPI) and the host's Slurm PMIx plugin talk:
when they do not, each task stops with "... started N workers ... but Horovod sees 1", or the step
hangs until srun's --time (examples/slurm_srun_pmix.sbatch gives it a few minutes).
"""
import os
import socket
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    import tensorflow as tf  # noqa: PLC0415 (after the log level)

    from glow_tf.distributed import Distributed  # noqa: PLC0415

    host = socket.gethostname()
    try:
        dist = Distributed()
        dist.pin_gpu()
    except RuntimeError as e:
        raise SystemExit(f"world_check: on {host}: {e}") from None
    device = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    if dist.size > 1:
        total = float(dist.hvd.allreduce(tf.constant(dist.rank + 1.0), op=dist.hvd.Sum))
    else:
        total = 1.0
    expected = dist.size * (dist.size + 1) / 2
    if total != expected:
        raise SystemExit(f"world_check: rank {dist.rank} of {dist.size} on {host}: the allreduce gave {total}, "
                         f"expected {expected}")
    print(f"world_check: rank {dist.rank} of {dist.size} on {host} ({device}, local rank {dist.local_rank}): ok",
          flush=True)


if __name__ == "__main__":
    main()
