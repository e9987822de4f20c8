#!/usr/bin/env bash
# Sets up glow-tf: a virtual environment (created when missing), the pinned requirements.txt, the project
# itself (editable: `pip install -e .`), then Horovod 0.28.1 built from its PyPI sdist against the installed
# TensorFlow, and finally
# `horovodrun --check-build` as proof that the build has TensorFlow and Gloo (and NCCL / MPI when asked).
# The README, CI and the Dockerfile all install through this one script.
#
# Idempotent: with nothing changed, a second run installs and builds nothing (about 30 s, spent importing
# TensorFlow for the checks). It rebuilds Horovod only when the installed build differs from the wanted
# one: another Horovod version, another TensorFlow than it was compiled against, or other features.
#
# Environment (the defaults give the CPU build; the Dockerfile sets the GPU ones):
#   PYTHON                     interpreter that creates the venv (default: python3; must be Python 3.11)
#   GLOW_VENV                  the virtual environment (default: <repo>/.venv; the image uses /opt/venv)
#   GLOW_SKIP_HOROVOD=1        install the requirements only; single-process training needs no Horovod
#   GLOW_SKIP_BROWSER=1        do not apt-get install chromium + chromium-driver (the demo's browser tests)
#   HOROVOD_GPU_OPERATIONS     unset (CPU build) or NCCL (GPU allreduce over NCCL; needs CUDA + libnccl-dev)
#   HOROVOD_WITH_MPI           0 (default: Gloo only) or 1 (also the MPI controller; needs libopenmpi-dev)
#   HOROVOD_BUILD_CUDA_CC_LIST and the other HOROVOD_* build variables pass through to Horovod's build.
set -euo pipefail

HOROVOD_VERSION=0.28.1

log() { echo "install.sh: $*"; }
die() { echo "install.sh: error: $*" >&2; exit 1; }

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
python="${PYTHON:-python3}"
venv="${GLOW_VENV:-$repo/.venv}"

gpu_ops="${HOROVOD_GPU_OPERATIONS:-}"
case "$gpu_ops" in
    "" | NCCL) ;;
    *) die "HOROVOD_GPU_OPERATIONS=$gpu_ops; expected NCCL (GPU build) or unset (CPU build)" ;;
esac
with_mpi="${HOROVOD_WITH_MPI:-0}"
case "$with_mpi" in
    0 | 1) ;;
    *) die "HOROVOD_WITH_MPI=$with_mpi; expected 1 (build the MPI controller) or 0 (Gloo only)" ;;
esac
skip_horovod="${GLOW_SKIP_HOROVOD:-0}"
case "$skip_horovod" in
    0 | 1) ;;
    *) die "GLOW_SKIP_HOROVOD=$skip_horovod; expected 1 (skip the Horovod build) or 0" ;;
esac

# 1. The virtual environment.
if [ ! -x "$venv/bin/python" ]; then
    command -v "$python" >/dev/null || die "PYTHON=$python is not an executable; set PYTHON to a Python 3.11 interpreter"
    base_version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    [ "$base_version" = "3.11" ] || die "PYTHON=$python is Python $base_version; expected 3.11 (set PYTHON=python3.11)"
    log "creating virtual environment $venv with $python"
    "$python" -m venv "$venv"
fi
py="$venv/bin/python"
py_version="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[ "$py_version" = "3.11" ] || die "$venv runs Python $py_version; expected 3.11 (remove $venv and set PYTHON=python3.11)"
# The venv's bin first: Horovod's build needs the cmake 3.x pinned in requirements.txt (CMake 4 cannot
# configure its bundled gloo), and the final check needs the venv's horovodrun.
export PATH="$venv/bin:$PATH"

# 2. The pinned requirements; skipped while requirements.txt is unchanged since the last successful install.
stamp="$venv/.glow_tf_requirements.sha256"
want_reqs="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_reqs" ]; then
    log "requirements.txt already installed"
else
    log "installing requirements.txt"
    "$py" -m pip install --quiet --upgrade pip
    "$py" -m pip install --quiet -r requirements.txt
    echo "$want_reqs" > "$stamp"
fi

# 2a. The project itself, editable (pyproject.toml): the `glow-tf` command, and `import glow_tf` from any folder
#     (horovodrun's ranks, the tests' subprocesses) runs this work tree. Without build isolation or dependencies:
#     setuptools and every dependency are the pins just installed, so this is quick and needs no network.
#     Skipped while pyproject.toml and the tree's location are unchanged since the last successful install, and
#     where the sources are not there yet (the Dockerfile's first layer copies only what the dependencies need).
project_stamp="$venv/.glow_tf_project.sha256"
if [ ! -f pyproject.toml ] || [ ! -d glow_tf ]; then
    log "no pyproject.toml and glow_tf/ in $repo: glow-tf itself not installed (dependencies only)"
elif [ -f "$project_stamp" ] && [ "$(cat "$project_stamp")" = "$( (cat pyproject.toml; echo "$repo") | sha256sum)" ] \
        && [ -x "$venv/bin/glow-tf" ]; then
    log "glow-tf already installed (editable, $repo)"
else
    log "installing glow-tf (editable, $repo)"
    # (PYTHONWARNINGS: the setuptools of the venv calls its pyproject.toml support beta, at length)
    PYTHONWARNINGS=ignore "$py" -m pip install --quiet --no-deps --no-build-isolation --editable .
    (cat pyproject.toml; echo "$repo") | sha256sum > "$project_stamp"
fi

# --- the demo's browser (tests/test_demo.py) --------------------------------------------------------------
# 2b. Debian's chromium + chromium-driver, which the demo's page tests drive through selenium. Installed with
#     apt-get when missing, as root, where Debian's packages exist (Ubuntu only has snap wrappers: there, and
#     without root or apt-get, a warning; the browser tests then skip, and fail under CI=true).
#     Before the Horovod steps so that GLOW_SKIP_HOROVOD=1 installs it too; GLOW_SKIP_BROWSER=1 skips it.
skip_browser="${GLOW_SKIP_BROWSER:-0}"
case "$skip_browser" in
    0 | 1) ;;
    *) die "GLOW_SKIP_BROWSER=$skip_browser; expected 1 (do not install chromium) or 0" ;;
esac
browser_hint="the demo's browser tests will skip (and fail under CI=true)"
if [ "$skip_browser" = "1" ]; then
    log "GLOW_SKIP_BROWSER=1: chromium not installed; $browser_hint"
elif command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    log "chromium and chromedriver already installed"
elif [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null; then
    log "warning: chromium or chromedriver is missing and apt-get cannot run here (needs root); $browser_hint"
else
    apt-get update -qq
    if apt-cache show chromium chromium-driver >/dev/null 2>&1; then
        log "installing Debian's chromium and chromium-driver (the demo's browser tests)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        log "warning: this system has no apt packages chromium and chromium-driver (Debian's); $browser_hint"
    fi
fi
# --- end of the demo's browser ----------------------------------------------------------------------------

if [ "$skip_horovod" = "1" ]; then
    log "GLOW_SKIP_HOROVOD=1: Horovod not built; single-process training only"
    exit 0
fi

# 3. Horovod from its sdist (no wheels exist). --no-build-isolation lets its CMake find the TensorFlow
#    installed above; an isolated build env has no TensorFlow and fails (docs/stack.md#building-horovod).
nccl_want=0
if [ "$gpu_ops" = "NCCL" ]; then nccl_want=1; fi
want_build="horovod=$HOROVOD_VERSION built_for_tf=$("$py" -c 'import importlib.metadata as m; print(m.version("tensorflow"))') gloo=1 mpi=$with_mpi nccl=$nccl_want"
have_build="$(TF_CPP_MIN_LOG_LEVEL=3 "$py" - 2>/dev/null <<'EOF' || true
import json, pathlib
import horovod
import horovod.tensorflow as hvd  # raises ImportError when the TensorFlow extension was not built
meta = json.loads((pathlib.Path(horovod.__file__).parent / "metadata.json").read_text())
print(f"horovod={horovod.__version__} built_for_tf={meta.get('tensorflow')} gloo={int(bool(hvd.gloo_built()))} "
      f"mpi={int(bool(hvd.mpi_built()))} nccl={int(bool(hvd.nccl_built()))}")
EOF
)"
if [ "$have_build" = "$want_build" ]; then
    log "horovod already built ($have_build)"
else
    pip_args=(--no-build-isolation)
    if [ -n "$have_build" ] || [ "$with_mpi$nccl_want" != "00" ]; then
        # pip's wheel cache is keyed by the sdist alone, not by these build settings or the TensorFlow
        # version, so a cached wheel could be the wrong build: compile afresh instead.
        pip_args+=(--no-cache-dir)
    fi
    if "$py" -m pip show --quiet horovod >/dev/null 2>&1; then
        log "installed horovod (${have_build:-its TensorFlow extension does not load}) is not the wanted build"
        "$py" -m pip uninstall --quiet --yes horovod
    fi
    log "building horovod $HOROVOD_VERSION from source ($want_build); 3-6 min on 2 cores"
    export HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 HOROVOD_WITH_GLOO=1
    if [ "$with_mpi" = "1" ]; then
        export HOROVOD_WITH_MPI=1
        unset HOROVOD_WITHOUT_MPI
    else
        export HOROVOD_WITHOUT_MPI=1
        unset HOROVOD_WITH_MPI
    fi
    # Belt and braces with the cmake<4 pin: lets a CMake 4 found elsewhere configure gloo as well.
    export CMAKE_POLICY_VERSION_MINIMUM=3.5
    export MAKEFLAGS="${MAKEFLAGS:--j$(nproc)}"
    "$py" -m pip install "${pip_args[@]}" "horovod==$HOROVOD_VERSION"
fi

# 4. Final check: Horovod's own report must list every wanted piece, or the install fails here, loudly.
report="$(TF_CPP_MIN_LOG_LEVEL=3 horovodrun --check-build 2>&1)" || die "horovodrun --check-build failed:"$'\n'"$report"
# Each of its probes imports TensorFlow, which prints the same harmless start-up lines every time; not shown.
grep -v -E "Unable to register (cuDNN|cuFFT|cuBLAS) factory|All log messages before absl::InitializeLog" \
    <<<"$report" || true
has() {  # has SECTION ITEM: the report's "Available SECTION" block marks ITEM with [X]
    awk -v section="Available $1" -v item="$2" '
        /^Available / { in_section = index($0, section) == 1 }
        in_section && $1 == "[X]" && $2 == item { found = 1 }
        END { exit !found }' <<<"$report"
}
missing=()
has Frameworks TensorFlow || missing+=("TensorFlow framework")
has Controllers Gloo || missing+=("Gloo controller")
has "Tensor Operations" Gloo || missing+=("Gloo tensor operations")
if [ "$with_mpi" = "1" ]; then has Controllers MPI || missing+=("MPI controller"); fi
if [ "$nccl_want" = "1" ]; then has "Tensor Operations" NCCL || missing+=("NCCL tensor operations"); fi
if [ "${#missing[@]}" -gt 0 ]; then
    die "the horovod build lacks: ${missing[*]} (see the report above; rebuild with: $py -m pip uninstall -y horovod && $0)"
fi
log "ready: python $py_version, $want_build, venv $venv"
