#!/usr/bin/env bash
# The `docker run` flags a glow-tf GPU container needs on this machine, for use as $(...):
#
#   docker run --rm $(bash examples/docker_flags.sh) -v /path/to/data:/data:ro glow-tf bash scripts/gpu_acceptance.sh
#
# Always: every GPU; the host's IPC namespace, whose /dev/shm NCCL uses between the GPUs of a machine
# (Docker's default /dev/shm is 64 MB, too small; `--shm-size=8g` instead of `--ipc host` works too);
# unlimited locked memory (NCCL and InfiniBand pin their buffers). Only where the machine has
# InfiniBand/RoCE devices (GLOW_INFINIBAND_DIR, default /dev/infiniband, exists): the devices and the
# right to pin memory; passing --device for a missing path makes `docker run` fail.
set -euo pipefail

ib_dir="${GLOW_INFINIBAND_DIR:-/dev/infiniband}"
flags=(--gpus all --ipc host --ulimit memlock=-1)
if [ -e "$ib_dir" ]; then
    flags+=("--device=$ib_dir" --cap-add=IPC_LOCK)
fi
echo "${flags[*]}"
