#!/usr/bin/env bash
# The glow-tf image's entrypoint (Dockerfile ENTRYPOINT; with Apptainer, whose `exec` skips it, put
# `bash scripts/entrypoint.sh` before the command). It runs the command after two checks of the host's
# NVIDIA driver, and writes only to stderr: stdout is the command's (gpu_acceptance.sh prints JSON there).
#
# 1. A driver older than the image's CUDA (12.5: driver 555.42.06) gets CUDA's forward-compatibility
#    libraries (the image's cuda-compat-12-5, in GLOW_CUDA_COMPAT_DIR) put first on LD_LIBRARY_PATH,
#    when they work with this GPU and driver (NVIDIA supports them on data-centre GPUs and some driver
#    branches only; a probe calls their cuInit and keeps them only when it succeeds).
# 2. Without them, a Hopper GPU (compute capability 9.x) on a driver older than R545 cannot run
#    TensorFlow 2.18.1: the wheel carries compiled kernels for sm_60/70/80/89 only and for Hopper PTX of
#    ISA 8.3 (CUDA 12.3), which only R545+ drivers can compile. That stops here with one message naming
#    the GPU and the driver and what to do (GLOW_SKIP_DRIVER_CHECK=1 starts anyway). Other GPUs on a
#    driver older than 555 start with a warning (XLA's --jit 1 kernels may need the newer driver).
#
# No NVIDIA driver (a CPU machine, the CPU image): the command runs unchanged.
set -euo pipefail

compat_dir="${GLOW_CUDA_COMPAT_DIR:-/usr/local/cuda/compat}"
driver_file="${GLOW_DRIVER_VERSION_FILE:-/proc/driver/nvidia/version}"
python="${GLOW_PROBE_PYTHON:-python3}"
HOPPER_PTX_DRIVER=545  # the first driver branch that compiles PTX ISA 8.3

say() { echo "glow-tf: $*" >&2; }

driver_version() {  # e.g. 535.154.05, or nothing without a driver
    local version=""
    if [ -r "$driver_file" ]; then
        version="$(grep -m 1 '^NVRM' "$driver_file" | grep -oE '[0-9]{3,}\.[0-9]+(\.[0-9]+)?' | head -n 1 || true)"
    fi
    if [ -z "$version" ] && command -v nvidia-smi >/dev/null; then
        version="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1 || true)"
    fi
    echo "$version"
}

compat_version() {  # the driver version the compatibility libcuda implements, e.g. 555.42.06
    local target
    target="$(readlink "$compat_dir/libcuda.so.1" 2>/dev/null || true)"
    echo "${target#libcuda.so.}"
}

compat_works() {  # cuInit through the compatibility libcuda; prints its result code
    LD_LIBRARY_PATH="$compat_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$python" -c \
        'import ctypes; print(ctypes.CDLL("libcuda.so.1").cuInit(0))' 2>/dev/null || echo "no result"
}

hopper_gpus() {  # "NAME (compute capability 9.0)" for each Hopper GPU nvidia-smi lists
    command -v nvidia-smi >/dev/null || return 0
    nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader 2>/dev/null \
        | awk -F', *' '$2 ~ /^9\./ { printf "%s (compute capability %s)\n", $1, $2 }' | sort | uniq -c \
        | sed 's/^ *\([0-9]*\) /\1x /'
}

check_driver() {
    local driver compat result gpus
    driver="$(driver_version)"
    [ -n "$driver" ] || return 0
    compat="$(compat_version)"
    if [ -z "$compat" ] || [ "${driver%%.*}" -ge "${compat%%.*}" ]; then
        return 0  # new enough for the image's CUDA (or no compatibility libraries to offer)
    fi
    result="$(compat_works)"
    if [ "$result" = 0 ]; then
        export LD_LIBRARY_PATH="$compat_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        say "NVIDIA driver $driver is older than CUDA 12.5's $compat: using CUDA's forward-compatibility" \
            "libraries ($compat_dir)"
        return 0
    fi
    gpus="$(hopper_gpus)"
    if [ -n "$gpus" ] && [ "${driver%%.*}" -lt "$HOPPER_PTX_DRIVER" ]; then
        say "cannot run TensorFlow 2.18.1 on $(echo "$gpus" | paste -sd ';' -) with NVIDIA driver $driver:" \
            "TensorFlow has no compiled kernels for Hopper, only PTX that drivers before R$HOPPER_PTX_DRIVER" \
            "cannot compile, and CUDA's forward-compatibility libraries do not work with this GPU and driver" \
            "(cuInit returned $result). Upgrade the host's NVIDIA driver to R555 or newer (docs/cluster.md," \
            "'NVIDIA driver'); GLOW_SKIP_DRIVER_CHECK=1 starts anyway."
        [ "${GLOW_SKIP_DRIVER_CHECK:-0}" = 1 ] || exit 1
        return 0
    fi
    say "warning: NVIDIA driver $driver is older than CUDA 12.5's $compat and CUDA's forward-compatibility" \
        "libraries do not work here (cuInit returned $result); TensorFlow's compiled kernels run, XLA's" \
        "(--jit 1) may not. A driver of R555 or newer avoids it."
}

check_driver
[ "$#" -gt 0 ] || set -- bash
exec "$@"
