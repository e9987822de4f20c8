"""Checks that the CUDA runtime, cuDNN and NCCL this process loads are at least the versions TensorFlow and
Horovod were built against; needs no GPU and no driver, so `docker build` runs it for the GPU image.

    python scripts/check_gpu_libs.py [--json]

Exit status 0 when every library is new enough, 1 (one line per problem) otherwise.

Where the wanted versions come from:
- CUDA: `tf.sysconfig.get_build_info()["cuda_version"]` (12.5.1 for TensorFlow 2.18.1).
- cuDNN: the build info names only the major version ("9"); the wheel's `and-cuda` extra pins the cuDNN
  release its build uses (nvidia-cudnn-cu12 9.3.0.75 for 2.18.1). TensorFlow refuses, at the first
  convolution, a cuDNN of another major version or an older minor one.
- NCCL: the `and-cuda` pin (nvidia-nccl-cu12) and the NCCL Horovod was compiled with
  (`hvd.nccl_built()` returns its NCCL_VERSION_CODE), whichever is newer.

The libraries are loaded by soname (libcudart.so.12, libcudnn.so.9, libnccl.so.2), as TensorFlow's
loader does, so the loader's search path decides which file is checked; the report names it.
"""
import argparse
import ctypes
import importlib.metadata
import json
import os
import re
import sys

# library key -> (what to call it, pip package of TensorFlow's and-cuda extra that pins it)
LIBRARIES = {
    "cuda_runtime": ("CUDA runtime", "nvidia-cuda-runtime-cu12"),
    "cudnn": ("cuDNN", "nvidia-cudnn-cu12"),
    "nccl": ("NCCL", "nvidia-nccl-cu12"),
}


def parse_version(text):
    """'9.3.0.75' -> (9, 3, 0, 75); ValueError naming the text otherwise."""
    if not re.fullmatch(r"\d+(\.\d+)*", str(text)):
        raise ValueError(f"version {text!r}; expected numbers separated by dots, e.g. 9.3.0")
    return tuple(int(part) for part in str(text).split("."))


def version_string(version):
    return ".".join(str(part) for part in version)


def decode_cuda_runtime(code):
    """cudaRuntimeGetVersion's integer: 1000 * major + 10 * minor (12050 -> (12, 5); no patch level)."""
    return code // 1000, code % 1000 // 10


def decode_cudnn(code):
    """cudnnGetVersion's integer: 10000 * major + 100 * minor + patch from cuDNN 9 on (90300 -> 9.3.0),
    1000 * major + 100 * minor + patch before (8907 -> 8.9.7)."""
    if code >= 90000:
        return code // 10000, code % 10000 // 100, code % 100
    return code // 1000, code % 1000 // 100, code % 100


def decode_nccl(code):
    """ncclGetVersion's integer (also NCCL_VERSION_CODE): 10000 * major + 100 * minor + patch from NCCL
    2.9 on (22203 -> 2.22.3), 1000 * major + 100 * minor + patch before (2708 -> 2.7.8)."""
    if code >= 20900:
        return code // 10000, code % 10000 // 100, code % 100
    return code // 1000, code % 1000 // 100, code % 100


def too_old(name, found, wanted):
    """None when `found` can serve a build against `wanted`, else the reason.

    The major versions must be equal (each is another ABI and another soname); then `found` must be at
    least `wanted`, compared part by part over the parts both have (the CUDA runtime reports no patch
    level, and a pip pin's fourth part is a build number the libraries do not report).
    """
    n = min(len(found), len(wanted), 3)
    if found[0] != wanted[0]:
        return (f"{name} {version_string(found)} is another major version than the {version_string(wanted)} "
                f"it was built against")
    if found[:n] < wanted[:n]:
        return (f"{name} {version_string(found)} is older than the {version_string(wanted[:n])} it was built "
                f"against; install {name} >= {version_string(wanted[:n])} with major version {wanted[0]}")
    return None


def _and_cuda_pins(requirements):
    """{pip package: version} of the `== X` pins under the and-cuda extra in a wheel's Requires-Dist."""
    pins = {}
    for requirement in requirements or ():
        match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*==\s*([0-9.]+)\s*;(.*)", requirement)
        if match and re.search(r"extra\s*==\s*['\"]and-cuda['\"]", match.group(3)):
            pins[match.group(1).lower()] = match.group(2)
    return pins


def wanted_versions(build_info, tf_requirements, horovod_nccl_code=0):
    """{library key: (version, where it comes from)} of the versions TensorFlow and Horovod were built
    against, from TensorFlow's build info, its wheel's Requires-Dist and hvd.nccl_built()."""
    pins = _and_cuda_pins(tf_requirements)
    wanted = {"cuda_runtime": (parse_version(build_info["cuda_version"]), "tf.sysconfig.get_build_info()")}
    cudnn_major = parse_version(build_info["cudnn_version"])
    cudnn_pin = pins.get(LIBRARIES["cudnn"][1])
    if cudnn_pin and parse_version(cudnn_pin)[0] == cudnn_major[0]:
        wanted["cudnn"] = (parse_version(cudnn_pin), f"tensorflow[and-cuda] pins {LIBRARIES['cudnn'][1]}=={cudnn_pin}")
    else:
        wanted["cudnn"] = (cudnn_major, "tf.sysconfig.get_build_info()")
    candidates = []
    nccl_pin = pins.get(LIBRARIES["nccl"][1])
    if nccl_pin:
        candidates.append((parse_version(nccl_pin), f"tensorflow[and-cuda] pins {LIBRARIES['nccl'][1]}=={nccl_pin}"))
    if horovod_nccl_code:
        candidates.append((decode_nccl(horovod_nccl_code), f"horovod was compiled with NCCL {horovod_nccl_code}"))
    if candidates:
        wanted["nccl"] = max(candidates, key=lambda c: c[0][:3])
    return wanted


def _loaded_path(soname):
    """The file the dynamic loader mapped for `soname` in this process (from /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if len(line.split()) >= 6}
    except OSError:
        return None
    base = soname.split(".so")[0] + ".so"
    return next((p for p in sorted(paths) if os.path.basename(p).startswith(base)), None)


# library key -> (soname without the major version, version function, decoder). cudnnGetVersion returns the
# version; the other two write it through an int pointer and return a status (0 = success).
_VERSION_CALLS = {
    "cuda_runtime": ("libcudart.so", "cudaRuntimeGetVersion", decode_cuda_runtime),
    "cudnn": ("libcudnn.so", "cudnnGetVersion", decode_cudnn),
    "nccl": ("libnccl.so", "ncclGetVersion", decode_nccl),
}


def load_version(key, major):
    """(version, path) of the library `key` as the loader finds it; OSError when it cannot be loaded."""
    if key not in _VERSION_CALLS:
        raise ValueError(f"unknown library {key!r}; expected one of {sorted(_VERSION_CALLS)}")
    base, function, decode = _VERSION_CALLS[key]
    soname = f"{base}.{major}"
    call = getattr(ctypes.CDLL(soname), function)
    if key == "cudnn":
        call.restype = ctypes.c_size_t
        code = call()
    else:
        out = ctypes.c_int()
        if call(ctypes.byref(out)) != 0:
            raise OSError(f"{soname}: {function} failed")
        code = out.value
    return decode(code), _loaded_path(soname)


def check(wanted, load=load_version):
    """{library key: report dict} for every wanted library, each with `ok` and, when not ok, `problem`."""
    reports = {}
    for key, (version, source) in wanted.items():
        name = LIBRARIES[key][0]
        report = {"wanted": version_string(version), "wanted_because": source}
        try:
            found, path = load(key, version[0])
        except OSError as e:
            report.update(ok=False, problem=f"{name}: cannot load it ({e})")
        else:
            problem = too_old(name, found, version)
            report.update(found=version_string(found), path=path, ok=problem is None)
            if problem:
                report["problem"] = problem
        reports[key] = report
    return reports


def installed_wanted_versions():
    """wanted_versions() for the TensorFlow (and Horovod, when importable) of this environment."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf  # noqa: PLC0415 (slow import, only when checking for real)

    try:
        import horovod.tensorflow as hvd  # noqa: PLC0415
        nccl_code = int(hvd.nccl_built())
    except ImportError:
        nccl_code = 0
    return wanted_versions(tf.sysconfig.get_build_info(), importlib.metadata.requires("tensorflow"), nccl_code)


def main(argv=None, wanted=None, load=load_version):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    args = parser.parse_args(argv)
    reports = check(installed_wanted_versions() if wanted is None else wanted, load)
    if args.json:
        print(json.dumps(reports, sort_keys=True))
    else:
        for key, report in reports.items():
            status = "ok" if report["ok"] else "TOO OLD OR MISSING"
            print(f"check_gpu_libs.py: {LIBRARIES[key][0]}: found {report.get('found', '-')} "
                  f"({report.get('path') or 'not loaded'}), wanted >= {report['wanted']} "
                  f"({report['wanted_because']}): {status}")
    problems = [r["problem"] for r in reports.values() if not r["ok"]]
    for problem in problems:
        print(f"check_gpu_libs.py: error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
