#!/usr/bin/env bash
# The Docker image as an Apptainer (Singularity) image, for clusters that run no Docker daemon, then the
# GPU acceptance run and a one-GPU training run in it. See docs/cluster.md.
#
#   bash examples/apptainer.sh build docker-daemon://glow-tf:latest   # from a local Docker engine
#   bash examples/apptainer.sh build docker://REGISTRY/glow-tf:TAG    # from a registry
#   bash examples/apptainer.sh build docker-archive://glow-tf.tar     # from `docker save glow-tf -o glow-tf.tar`
#   bash examples/apptainer.sh check                                  # the acceptance run, on a GPU node
#   GLOW_DATA=/shared/data GLOW_LOGS=/shared/logs bash examples/apptainer.sh train
#
# GLOW_SIF names the image file (default glow-tf.sif). Inside, the code is at /opt/glow-tf and the venv's
# python is first on the PATH, as in Docker; Apptainer starts in the host's working directory, hence --pwd.
# `apptainer exec` skips the image's entrypoint, so each command goes through scripts/entrypoint.sh (the
# driver checks and CUDA's forward-compatibility libraries, docs/cluster.md "NVIDIA driver").
set -euo pipefail

sif="${GLOW_SIF:-glow-tf.sif}"
command -v apptainer >/dev/null || { echo "apptainer is not on the PATH (module load apptainer?)" >&2; exit 1; }

case "${1:-}" in
    build)
        source="${2:?give the image to convert: docker-daemon://..., docker://... or docker-archive://...}"
        apptainer build "$sif" "$source"
        ;;
    check)
        apptainer exec --nv --pwd /opt/glow-tf "$sif" bash scripts/entrypoint.sh bash scripts/gpu_acceptance.sh
        ;;
    train)
        : "${GLOW_DATA:?set GLOW_DATA to the data directory (mounted at /data)}"
        : "${GLOW_LOGS:?set GLOW_LOGS to a directory for runs (mounted at /logs)}"
        apptainer exec --nv --bind "$GLOW_DATA:/data:ro,$GLOW_LOGS:/logs" --pwd /opt/glow-tf "$sif" \
            bash scripts/entrypoint.sh python train.py --problem cifar10 --data_dir /data/cifar10 --image_size 32 --n_level 3 --depth 32 \
            --flow_permutation 2 --flow_coupling 1 --seed 0 --learntop --lr 0.001 --n_bits_x 8 \
            --logdir /logs/cifar10 --resume
        ;;
    *)
        echo "usage: $0 build SOURCE | check | train (see the comments at the top)" >&2
        exit 2
        ;;
esac
