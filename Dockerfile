# glow-tf: TensorFlow 2.18 + Horovod 0.28.1 (Gloo, MPI and, on GPU, NCCL), installed by scripts/install.sh.
#   GPU image (default): docker build -t glow-tf .
#   CPU image:           docker build --build-arg DEVICE=cpu -t glow-tf:cpu .
# Data is read from the /data volume, logs and checkpoints go to /logs; the default command runs the
# quick tests. Multi-machine runs, Slurm and Apptainer: docs/cluster.md.
ARG DEVICE=gpu

# CUDA 12.5.1: what the tensorflow 2.18.1 wheel was built against (tf.sysconfig.get_build_info()). Not the
# -cudnn- variant of this tag: it ships cuDNN 9.2.1, older than the 9.3.0 TensorFlow was built with (its
# and-cuda extra pins nvidia-cudnn-cu12==9.3.0.75), and TensorFlow refuses an older cuDNN minor version at
# the first convolution. The CUDA apt repository configured in the image keeps every cuDNN release, so
# the exact pin below stays installable; it is held so that no later install moves it, and
# scripts/check_gpu_libs.py checks what was installed at the end of the build.
#
# Drivers older than CUDA 12.5's (555): cuda-compat-12-5 is CUDA's forward-compatibility package (a
# libcuda of driver 555 for data-centre GPUs on older driver branches, in /usr/local/cuda/compat, not on
# the loader's path). scripts/entrypoint.sh, the image's entrypoint, puts it first on LD_LIBRARY_PATH when
# the host's driver is older and the library works with its GPU, and stops with one message where
# TensorFlow cannot run at all (a Hopper GPU on a driver before R545: docs/cluster.md, "NVIDIA driver").
# The base image's own entrypoint is replaced: it prints a banner on stdout.
FROM nvidia/cuda:12.5.1-devel-ubuntu22.04 AS base-gpu
ARG DEBIAN_FRONTEND=noninteractive
# cuda-compat-12-5 is not pinned: its newest build is the 12.5 driver library NVIDIA still fixes.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcudnn9-cuda-12=9.3.0.75-1 cuda-compat-12-5 \
    && apt-mark hold libcudnn9-cuda-12 \
    && rm -rf /var/lib/apt/lists/* \
    && test -e /usr/local/cuda/compat/libcuda.so.1
# The devel image ships libnccl2 + libnccl-dev matched to its CUDA (and held by apt-mark); Horovod's
# NCCL build needs the headers, so stop here if a future tag drops them.
RUN dpkg-query --show libnccl-dev libnccl2
# Compute capabilities: the ones the TensorFlow wheel carries (sm_60,70,80,89 + compute_90).
ENV HOROVOD_GPU_OPERATIONS=NCCL \
    HOROVOD_BUILD_CUDA_CC_LIST=60,70,80,89,90 \
    NCCL_DEBUG=WARN

FROM ubuntu:22.04 AS base-cpu

# The stage is base-gpu or base-cpu above, both tagged; hadolint cannot follow a stage name made from an ARG.
# hadolint ignore=DL3006
FROM base-${DEVICE}
ARG DEBIAN_FRONTEND=noninteractive
ARG SSH_PORT=12345
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Python 3.11 from the deadsnakes PPA (Ubuntu 22.04 ships 3.10); a compiler, Open MPI and openssh for
# Horovod's build and its multi-machine launcher; the InfiniBand/RoCE user-space libraries, without which
# NCCL and Open MPI fall back to TCP between machines (the devices come from `docker run
# --device=/dev/infiniband --cap-add=IPC_LOCK`, docs/cluster.md).
# Apt packages are not pinned: Ubuntu's archive keeps only the newest build of each, so pins break the
# build within weeks; the base image tags above are what is pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        python3.11 python3.11-dev python3.11-venv \
        build-essential ca-certificates \
        openmpi-bin libopenmpi-dev \
        openssh-client openssh-server \
        libibverbs1 librdmacm1 ibverbs-providers \
    && rm -rf /var/lib/apt/lists/*

# sshd for `horovodrun -H host1:8,host2:8 -p $SSH_PORT`: key-only root login on $SSH_PORT, keys mounted
# read-only at /root/.ssh (StrictModes off because the mounted files keep the host's owner). Host keys
# are made when the container starts (ssh-keygen -A), not baked into the image where every user would
# share them; the containers trust each other's host keys without prompting.
RUN mkdir -p /run/sshd /root/.ssh \
    && chmod 700 /root/.ssh \
    && rm -f /etc/ssh/ssh_host_*key* \
    && printf 'Port %s\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nStrictModes no\n' \
        "${SSH_PORT}" > /etc/ssh/sshd_config.d/glow-tf.conf \
    && printf 'Host *\n    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n' \
        > /etc/ssh/ssh_config.d/glow-tf.conf
EXPOSE ${SSH_PORT} 5050

# The same install as on a workstation, into a venv at /opt/venv. ENV (not ARG) so that re-running
# scripts/install.sh in a container asks for the same build and finds it already there.
# OMPI_MCA_btl_vader_single_copy_mechanism=none: Open MPI's shared-memory transport (vader) copies
# between processes with CMA (process_vm_readv), which Docker's default seccomp profile and capabilities
# refuse; every message would print "Read -1, expected ..., errno = 1". Without single-copy it goes
# through the shared-memory segment (how horovodrun starts the workers of one machine when Horovod has
# MPI, and mpirun).
ENV GLOW_VENV=/opt/venv \
    GLOW_SKIP_BROWSER=1 \
    PYTHON=python3.11 \
    HOROVOD_WITH_MPI=1 \
    OMPI_MCA_btl_vader_single_copy_mechanism=none \
    PATH=/opt/venv/bin:$PATH
WORKDIR /opt/glow-tf
# Only what the install reads, so editing the code does not rebuild Horovod.
COPY requirements.txt ./
COPY scripts/install.sh scripts/
# The build host has no GPU driver: link and import against the CUDA stub libcuda while building and
# checking Horovod, then drop the stubs from the loader cache so the real driver is used at run time.
# PIP_NO_CACHE_DIR keeps pip's downloads and the built wheel out of the image.
RUN if [ -d /usr/local/cuda/lib64/stubs ]; then ldconfig /usr/local/cuda/lib64/stubs; fi \
    && PIP_NO_CACHE_DIR=1 scripts/install.sh \
    && ldconfig
COPY . .
# GPU image: the CUDA runtime, cuDNN and NCCL the loader finds must be at least the versions TensorFlow and
# Horovod were built against. Needs no GPU; the stub libcuda again, for importing Horovod.
ARG DEVICE
RUN if [ "${DEVICE}" = gpu ]; then \
        ldconfig /usr/local/cuda/lib64/stubs && python scripts/check_gpu_libs.py && ldconfig; \
    fi

VOLUME ["/data", "/logs"]
ENTRYPOINT ["bash", "/opt/glow-tf/scripts/entrypoint.sh"]
CMD ["python", "-m", "pytest", "-q", "-m", "not slow", "tests"]
